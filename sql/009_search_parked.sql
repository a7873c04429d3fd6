-- Documents the search indexer (src/app/indexer.c) could never index: the
-- bulk answer refused them for a reason retrying cannot change (a mapping
-- conflict, a malformed document). One row per event and index ("events" or
-- "orders"); the indexer writes it before its cursor moves past the event, so
-- nothing is skipped silently. `ordertrack search parked` lists the rows,
-- `ordertrack search retry` re-indexes the documents once the cause is fixed
-- and deletes the rows of the accepted ones.
CREATE TABLE IF NOT EXISTS search_parked (
    seq bigint NOT NULL,
    kind text NOT NULL CHECK (kind IN ('events', 'orders')),
    order_id uuid NOT NULL,
    reason text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seq, kind)
);
