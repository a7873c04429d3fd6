-- Durable event sinks (src/app/sink.c): each keeps the seq up to which its
-- downstream (Kafka, Elasticsearch) has made every event durable. A sink reads
-- its row at start and replays order_events above it, so a crash costs
-- duplicates of unacknowledged events, never a gap. The write is a GREATEST,
-- so a late write from a holder that lost its lease never moves it back.
CREATE TABLE IF NOT EXISTS ot_sink_cursors (
    name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    seq bigint NOT NULL CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
