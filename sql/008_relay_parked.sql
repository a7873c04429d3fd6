-- Events the Kafka relay could not publish for good (too large, refused by
-- the topic), and every later event of the same order: the order is parked
-- (its consumers would otherwise see a history with a hole), every other order
-- keeps flowing. The relay reads the parked orders when it starts.
CREATE TABLE IF NOT EXISTS relay_parked (
    seq bigint PRIMARY KEY,
    order_id uuid NOT NULL,
    error text NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS relay_parked_order_idx ON relay_parked (order_id);
