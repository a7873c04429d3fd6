-- An Idempotency-Key reused with a DIFFERENT request is a client bug, not a
-- retry: answering with the first order would hide it. ot_create_order now also
-- reports whether the replayed order matches the request (jsonb equality is
-- semantic: key order and spacing do not matter), so the API can answer 422.
DROP FUNCTION ot_create_order(uuid, jsonb, text, uuid);

CREATE FUNCTION ot_create_order(p_user uuid, p_items jsonb, p_idem text, p_actor uuid)
RETURNS TABLE (created boolean, order_json text, event_json text, same_request boolean)
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
            RAISE EXCEPTION 'idempotent order not visible yet' USING ERRCODE = '40001';
        END IF;
        RETURN QUERY SELECT false, ot_order_json(o), NULL::text, o.items = p_items;
        RETURN;
    END IF;

    RETURN QUERY SELECT true, ot_order_json(o), ot_append_event(o, 'order.created', p_actor), true;
END;
$$;
