-- The search benchmarks' data set (psql -v orders=N -f scripts/lib/search-data.sql):
-- 10,000 customers; N orders, one every 29 s from 2026-01-01, a uniform mix of
-- the six statuses (version = steps taken); each order's last three events (or
-- fewer), 10 minutes apart, inserted in time order (seq order).
INSERT INTO users (id, email, name, password_hash, role)
SELECT gen_random_uuid(), 'scale' || i || '@example.com', 'Scale ' || i, 'x', 'CUSTOMER' FROM generate_series(1, 10000) i;
CREATE TEMP TABLE u AS SELECT id, row_number() OVER () AS n FROM users;
CREATE TEMP TABLE o AS
SELECT gen_random_uuid() AS id, u.id AS uid, timestamptz '2026-01-01' + i * interval '29 seconds' AS t,
       (ARRAY['CREATED','ACCEPTED','PREPARED','SHIPPED','DELIVERED','CANCELED'])[1 + i % 6]::order_status AS st,
       (ARRAY[1, 2, 3, 4, 5, 2])[1 + i % 6] AS v
FROM generate_series(1, :orders) i JOIN u ON u.n = 1 + i % 10000;
INSERT INTO orders (id, user_id, status, items, created_at, updated_at, version)
SELECT id, uid, st, '[{"productId":"sku-1","qty":2}]', t, t + (v - 1) * interval '10 minutes', v FROM o;
INSERT INTO order_events (order_id, version, user_id, type, status, payload, actor, created_at)
SELECT o.id, k, o.uid,
       CASE WHEN k = 1 THEN 'order.created' WHEN o.st = 'CANCELED' THEN 'order.canceled'
            WHEN o.st = 'DELIVERED' AND k = 5 THEN 'order.completed' ELSE 'order.updated' END,
       CASE WHEN o.st = 'CANCELED' AND k = 2 THEN 'CANCELED'
            ELSE (ARRAY['CREATED','ACCEPTED','PREPARED','SHIPPED','DELIVERED'])[k] END::order_status,
       '{"items":[{"productId":"sku-1","qty":2}]}', o.uid, o.t + (k - 1) * interval '10 minutes'
FROM o, generate_series(1, 5) k WHERE k <= o.v AND k > o.v - 3 ORDER BY o.t + (k - 1) * interval '10 minutes';
VACUUM ANALYZE;
