-- The NOTIFY that wakes the event readers moves out of the writing
-- transaction. PostgreSQL serializes every commit that has a NOTIFY queued
-- (one lock per database, held through the commit and its WAL flush), so a
-- NOTIFY in each order write took group commit away from all of them: the
-- same insert ran at ~13,000 tx/s as a two-statement transaction and at
-- ~4,700 with a pg_notify beside it (pgbench, 32 clients, this 2-core box,
-- synchronous_commit on), and on a loaded box the waiters convoyed.
--
-- Now a write only appends its event. The server wakes the readers after the
-- COMMIT with ot_wake_listeners, at most one call in flight per process (a
-- call covers every commit of that process before it), in a transaction of
-- its own that commits without waiting for the flush: a wake-up is a hint,
-- not data. A writer that dies between its COMMIT and the wake costs the
-- readers at most their 1 s idle tail; nothing is lost (the row is the truth).
-- Writers other than the server (SQL by hand) are found by that tail too.
CREATE OR REPLACE FUNCTION ot_append_event(o orders, p_type text, p_actor uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    e order_events;
BEGIN
    INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor)
    VALUES (o.id, o.version, o.user_id, p_type, o.status,
            jsonb_build_object('items', o.items), p_actor)
    RETURNING * INTO e;
    RETURN ot_event_json(e);
END;
$$;

-- {"seq":N}: the readers at or past N skip their tail query. Local to this
-- call's transaction: the flush it skips is that of a commit record with
-- nothing but the notification in it.
CREATE FUNCTION ot_wake_listeners(p_seq bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_notify('ot_events', '{"seq":' || p_seq || '}');
END;
$$;
