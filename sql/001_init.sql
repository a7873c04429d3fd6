-- ordertrack schema, version 1 (PostgreSQL 15; gen_random_uuid() is core since 13,
-- so no extension is needed).
--
-- Every write the server makes is ONE call to a stored function below: one
-- statement = one implicit transaction = one pipelined round trip from libpq.
-- The order row, its event row and the NOTIFY therefore commit or vanish
-- together: a committed change always has its event, a rolled-back one never.
--
-- `ordertrack migrate` runs this file inside a transaction together with its
-- schema_migrations record, so nothing here may refuse to run in a transaction
-- block (no CREATE INDEX CONCURRENTLY).

CREATE TYPE user_role AS ENUM ('CUSTOMER', 'ADMIN');
CREATE TYPE order_status AS ENUM
    ('CREATED', 'ACCEPTED', 'PREPARED', 'SHIPPED', 'DELIVERED', 'CANCELED');

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    email         text NOT NULL,
    role          user_role NOT NULL DEFAULT 'CUSTOMER',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Logins compare emails case-insensitively; the unique index makes the lookup
-- `WHERE lower(email) = lower($1)` an index scan and forbids case-twins.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE orders (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    status          order_status NOT NULL DEFAULT 'CREATED',
    items           jsonb NOT NULL CHECK (jsonb_typeof(items) = 'array'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         int NOT NULL DEFAULT 1 CHECK (version >= 1),
    idempotency_key text NULL,
    -- NULL keys never conflict (NULLs are distinct), so orders created without
    -- an Idempotency-Key take the same INSERT ... ON CONFLICT path.
    CONSTRAINT orders_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
-- GET /orders (a customer's own, newest first, keyset-paginated on (created_at, id)).
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);
-- Admin listing filtered by status.
CREATE INDEX orders_status_created_idx ON orders (status, created_at);

-- The outbox AND the audit log. Rows are only ever appended (trigger below);
-- `seq` is the global order readers tail by, (order_id, version) the per-order one.
CREATE TABLE order_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    order_id   uuid NOT NULL,
    version    int NOT NULL,
    user_id    uuid NOT NULL,
    type       text NOT NULL CHECK (type IN
                   ('order.created', 'order.updated', 'order.completed', 'order.canceled')),
    status     order_status NOT NULL,
    payload    jsonb NOT NULL,
    actor      uuid NULL,
    -- clock_timestamp(), not now(): two events of one transaction stay ordered.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT order_events_order_version_key UNIQUE (order_id, version)
);
CREATE INDEX order_events_created_idx ON order_events (created_at);
-- Replay for a reconnecting customer: `WHERE user_id = $1 AND seq > $2 ORDER BY seq`.
CREATE INDEX order_events_user_seq_idx ON order_events (user_id, seq);

CREATE FUNCTION ot_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only'
        USING ERRCODE = 'P0001',
              HINT = 'events are never changed or removed; append a new event instead';
END;
$$;

-- Statement-level, so it also covers TRUNCATE and refuses even a zero-row
-- UPDATE/DELETE: the table's contract is visible, not data-dependent.
CREATE TRIGGER order_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION ot_refuse_event_change();

-- ISO-8601 UTC with milliseconds, the one timestamp format of the API.
CREATE FUNCTION ot_iso(ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION ot_order_json(o orders) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', o.id,
        'userId', o.user_id,
        'status', o.status,
        'items', o.items,
        'createdAt', ot_iso(o.created_at),
        'updatedAt', ot_iso(o.updated_at),
        'version', o.version)::text
$$;

CREATE FUNCTION ot_event_json(e order_events) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'seq', e.seq,
        'version', e.version,
        'eventId', e.event_id,
        'orderId', e.order_id,
        'userId', e.user_id,
        'type', e.type,
        'status', e.status,
        'timestamp', ot_iso(e.created_at),
        'payload', e.payload,
        'actor', e.actor)::text
$$;

-- The order life cycle: CREATED -> ACCEPTED -> PREPARED -> SHIPPED -> DELIVERED,
-- and CANCELED from any state before SHIPPED. Same-state "changes" are refused.
CREATE FUNCTION ot_transition_allowed(f order_status, t order_status) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE f
        WHEN 'CREATED'  THEN t IN ('ACCEPTED', 'CANCELED')
        WHEN 'ACCEPTED' THEN t IN ('PREPARED', 'CANCELED')
        WHEN 'PREPARED' THEN t IN ('SHIPPED', 'CANCELED')
        WHEN 'SHIPPED'  THEN t = 'DELIVERED'
        ELSE false
    END
$$;

-- Appends the event for the order's current state and announces it. NOTIFY is
-- transactional (delivered at commit, dropped on rollback) and its payload is
-- limited to 8000 bytes: bigger events travel as {"seq":N} and listeners read
-- the row. Returns the event json.
CREATE FUNCTION ot_append_event(o orders, p_type text, p_actor uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    e  order_events;
    ej text;
BEGIN
    INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor)
    VALUES (o.id, o.version, o.user_id, p_type, o.status,
            jsonb_build_object('items', o.items), p_actor)
    RETURNING * INTO e;
    ej := ot_event_json(e);
    IF octet_length(ej) < 7900 THEN
        PERFORM pg_notify('ot_events', ej);
    ELSE
        PERFORM pg_notify('ot_events', '{"seq":' || e.seq || '}');
    END IF;
    RETURN ej;
END;
$$;

-- created = false: the Idempotency-Key was already used by this user; the
-- existing order is returned and nothing is written. Concurrent calls with one
-- key are safe: ON CONFLICT waits for the first inserter to commit, and the
-- follow-up SELECT (a new snapshot under READ COMMITTED) then sees its row.
-- An unknown p_user surfaces as the FK violation 23503.
CREATE FUNCTION ot_create_order(p_user uuid, p_items jsonb, p_idem text, p_actor uuid)
RETURNS TABLE (created boolean, order_json text, event_json text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    o orders;
BEGIN
    INSERT INTO orders (user_id, status, items, created_at, updated_at, version, idempotency_key)
    VALUES (p_user, 'CREATED', p_items, now(), now(), 1, p_idem)
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING * INTO o;

    IF NOT FOUND THEN
        SELECT * INTO o FROM orders WHERE user_id = p_user AND idempotency_key = p_idem;
        IF NOT FOUND THEN
            -- Only possible under REPEATABLE READ or stricter callers: let them retry.
            RAISE EXCEPTION 'idempotent order not visible yet' USING ERRCODE = '40001';
        END IF;
        RETURN QUERY SELECT false, ot_order_json(o), NULL::text;
        RETURN;
    END IF;

    RETURN QUERY SELECT true, ot_order_json(o), ot_append_event(o, 'order.created', p_actor);
END;
$$;

-- result: 'ok' | 'not_found' | 'version_mismatch' | 'invalid_transition'.
-- FOR UPDATE serialises writers of one order, so versions never skip or repeat.
CREATE FUNCTION ot_update_status(p_order uuid, p_status order_status,
                                 p_expected_version int, p_actor uuid)
RETURNS TABLE (result text, order_json text, event_json text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    o orders;
BEGIN
    SELECT * INTO o FROM orders WHERE id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> o.version THEN
        RETURN QUERY SELECT 'version_mismatch'::text, ot_order_json(o), NULL::text;
        RETURN;
    END IF;
    IF NOT ot_transition_allowed(o.status, p_status) THEN
        RETURN QUERY SELECT 'invalid_transition'::text, ot_order_json(o), NULL::text;
        RETURN;
    END IF;

    UPDATE orders SET status = p_status, version = version + 1, updated_at = now()
     WHERE id = p_order
    RETURNING * INTO o;

    RETURN QUERY SELECT 'ok'::text, ot_order_json(o),
        ot_append_event(o, CASE p_status
                               WHEN 'DELIVERED' THEN 'order.completed'
                               WHEN 'CANCELED'  THEN 'order.canceled'
                               ELSE 'order.updated'
                           END, p_actor);
END;
$$;
