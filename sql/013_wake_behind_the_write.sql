-- The wake-up of sql/012 sent right behind its write, on the same connection
-- under a Sync of its own (ot_pg_exec_next): it runs once the write has
-- committed, and costs no round trip of its own, so a commit reaches the
-- other workers' readers as soon as it did when the write itself notified.
-- It names the seq this session took last: the write's, if the write
-- appended an event; an older one (nothing to read, the readers skip it) or
-- none (0, no NOTIFY) otherwise. Returns what it named.
CREATE FUNCTION ot_wake_listeners_last() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
BEGIN
    BEGIN
        s := currval(pg_get_serial_sequence('order_events', 'seq'));
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        RETURN 0; -- this session never took a seq
    END;
    PERFORM ot_wake_listeners(s);
    RETURN s;
END;
$$;
