-- Where a starting event reader may begin (issue 10, finding 4).
--
-- A reader starting at max(seq) + 1 treats every lower seq as delivered, but
-- seqs are taken before commit: a transaction still running may own a lower
-- one and commit a moment later. Neither MVCC nor xids tell a newcomer which
-- seqs are still in flight (a transaction's xid says nothing about when it took
-- its seq), so every writer now says so itself, in the one place every other
-- session can see at once: the lock table.
--
-- Before any row of an INSERT is formed (a BEFORE ... FOR EACH STATEMENT
-- trigger runs before the identity default takes its seq), the writer
--   1. takes its transaction id, so "xid before seq" holds for every writer,
--      not only the stored functions (the reader's gap bound relies on it);
--   2. reads the sequence's last value V and holds a shared advisory lock keyed
--      with V until it ends: every seq it takes is > V.
-- ot_event_start_seq() reads the sequence's last value C first, then the locks
-- held: any seq <= C still in flight was taken after its owner's lock, so that
-- lock is in the table and its V is below the seq. Every seq below
-- least(C, min V) + 1 is therefore committed or rolled back for good.
--
-- Shared locks never conflict with each other, so writers do not wait on each
-- other or on the reader (which takes no lock). Key: 0x6f74 ('ot') in the top
-- 16 bits, V in the low 48 (2^48 events). The sequence must keep CACHE 1 (the
-- identity default): a session cache would hand out values below C later.

CREATE FUNCTION ot_event_writer_fence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    PERFORM pg_advisory_xact_lock_shared(
        (x'6f74'::bigint << 48)
        | coalesce(pg_sequence_last_value(pg_get_serial_sequence('order_events', 'seq')::regclass), 0));
    RETURN NULL;
END;
$$;

CREATE TRIGGER order_events_writer_fence
    BEFORE INSERT ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION ot_event_writer_fence();

-- VOLATILE and in plpgsql so that the two reads happen in this order at run
-- time (neither is an MVCC read: both see the present, not a snapshot).
CREATE FUNCTION ot_event_start_seq() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c bigint;
    v bigint;
BEGIN
    c := coalesce(pg_sequence_last_value(pg_get_serial_sequence('order_events', 'seq')::regclass), 0);
    SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) INTO v
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND (l.classid::bigint >> 16) = x'6f74'::bigint;
    RETURN least(c, coalesce(v, c)) + 1;
END;
$$;
