-- /search/* on PostgreSQL (the embedded default, and the fallback without
-- Elasticsearch): the functions behind src/api/search.c and the indexes that
-- keep them index scans at a million orders (checked with EXPLAIN, see
-- docs/BENCHMARKS.md "Search on PostgreSQL").
--
-- Times travel as integer microseconds since the epoch: the C side parses and
-- checks the ISO-8601 text, so a bad date is a 400 before any query and the
-- value is exact both ways (the list cursor carries the same integer).
--
-- The functions are plpgsql with plan_cache_mode = force_custom_plan: every
-- filter is optional (`p IS NULL OR ...`), which a generic plan would have to
-- keep as a run-time test (and so scan); a custom plan folds the NULL ones
-- away and picks the index for the filters actually given.

CREATE FUNCTION ot_us_ts(us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'epoch'::timestamptz + us * interval '1 microsecond'
$$;

CREATE FUNCTION ot_ts_us(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM ts) * 1000000)::bigint
$$;

-- Admin listing without a filter (newest first, keyset on (created_at, id))
-- and the analytics range scan, index-only thanks to the INCLUDE columns.
-- orders_user_created_idx (001) serves customers.
CREATE INDEX orders_created_id_idx ON orders (created_at, id) INCLUDE (status, user_id);
-- A status filter with the same keyset order (001's (status, created_at) lacks
-- the id tie-break, so a page boundary inside one microsecond would sort).
CREATE INDEX orders_status_created_id_idx ON orders (status, created_at, id) INCLUDE (updated_at, user_id);
-- Time in status: both ends of every stint in the range, index-only (it
-- replaces 001's plain order_events (created_at) index); and for one customer.
CREATE INDEX order_events_created_cover_idx ON order_events (created_at) INCLUDE (order_id, version, status, user_id);
DROP INDEX order_events_created_idx;
CREATE INDEX order_events_user_created_idx ON order_events (user_id, created_at);

-- One page of GET /search/orders, newest first. from inclusive, to exclusive,
-- both on created_at; the cursor is the (created_at, id) of the last row of
-- the previous page. Returns limit rows at most: the caller asks one more to
-- know whether a next page exists.
CREATE FUNCTION ot_search_orders(p_user uuid, p_status order_status, p_order uuid, p_from_us bigint,
                                 p_to_us bigint, p_cur_us bigint, p_cur_id uuid, p_limit int)
RETURNS TABLE (order_json text, cursor_us bigint, id uuid)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    SELECT ot_order_json(o), ot_ts_us(o.created_at), o.id FROM orders o
    WHERE (p_user IS NULL OR o.user_id = p_user)
      AND (p_status IS NULL OR o.status = p_status)
      AND (p_order IS NULL OR o.id = p_order)
      AND (p_from_us IS NULL OR o.created_at >= ot_us_ts(p_from_us))
      AND (p_to_us IS NULL OR o.created_at < ot_us_ts(p_to_us))
      AND (p_cur_us IS NULL OR (o.created_at, o.id) < (ot_us_ts(p_cur_us), p_cur_id))
    ORDER BY o.created_at DESC, o.id DESC
    LIMIT p_limit;
END;
$$;

-- GET /search/analytics as one JSON object (the caller adds "freshness").
-- Scope: orders created in [from, to) (of p_user, unless NULL), except
-- timeInStatus, whose samples are the stints that began and ended in
-- [from, to) (a stint = one event to the order's next one, so a terminal or
-- still current status contributes nothing; bounding both ends keeps it two
-- range scans, however old the range). Delayed: orders of the scope
-- whose current, non-terminal status has lasted longer than its SLA at the
-- time of the query; p_sla holds seconds per status in enum order (0 = none),
-- oldest first, at most p_delayed_max. Buckets, hours and days are UTC.
CREATE FUNCTION ot_search_analytics(p_user uuid, p_from_us bigint, p_to_us bigint, p_interval text,
                                    p_sla int[], p_delayed_max int)
RETURNS text
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    f      timestamptz := ot_us_ts(p_from_us);
    t      timestamptz := ot_us_ts(p_to_us);
    step   interval := ('1 ' || p_interval)::interval;
    hours  bigint[];
    days   bigint[];
    counts json;
    trend  json;
    tis    json;
    late   json;
    peak_h int;
    peak_d int;
BEGIN
    IF p_interval NOT IN ('hour', 'day') THEN
        RAISE EXCEPTION 'interval must be hour or day' USING ERRCODE = '22023';
    END IF;
    -- One index-only scan of the range, grouped by (status, UTC hour) into at
    -- most 6 x hours rows, feeds all four histograms (GROUPING SETS over the
    -- orders themselves would sort them four times).
    WITH h AS MATERIALIZED (
        SELECT o.status AS s, date_trunc('hour', o.created_at AT TIME ZONE 'UTC') AS hb, count(*) AS n
        FROM orders o
        WHERE o.created_at >= f AND o.created_at < t AND (p_user IS NULL OR o.user_id = p_user)
        GROUP BY 1, 2),
    st AS (SELECT h.s, sum(h.n) AS n FROM h GROUP BY 1),
    bk AS (SELECT date_trunc(p_interval, h.hb) AS b, sum(h.n) AS n FROM h GROUP BY 1),
    hr AS (SELECT extract(hour FROM h.hb)::int AS k, sum(h.n) AS n FROM h GROUP BY 1),
    dw AS (SELECT extract(isodow FROM h.hb)::int AS k, sum(h.n) AS n FROM h GROUP BY 1)
    SELECT
        (SELECT json_object_agg(u.s::text, coalesce(st.n, 0) ORDER BY u.i)
         FROM unnest(enum_range(NULL::order_status)) WITH ORDINALITY AS u (s, i) LEFT JOIN st ON st.s = u.s),
        -- Every bucket from the one holding `from` to the one before `to`,
        -- empty ones included, so a chart needs no gap filling.
        (SELECT coalesce(json_agg(json_build_object('start', ot_iso(g AT TIME ZONE 'UTC'),
                                                    'count', coalesce(bk.n, 0)) ORDER BY g), '[]')
         FROM generate_series(date_trunc(p_interval, f AT TIME ZONE 'UTC'),
                              (t AT TIME ZONE 'UTC') - interval '1 microsecond', step) g
         LEFT JOIN bk ON bk.b = g WHERE f < t),
        (SELECT array_agg(coalesce(hr.n, 0) ORDER BY i) FROM generate_series(0, 23) i LEFT JOIN hr ON hr.k = i),
        (SELECT array_agg(coalesce(dw.n, 0) ORDER BY i) FROM generate_series(1, 7) i LEFT JOIN dw ON dw.k = i)
    INTO counts, trend, hours, days;

    -- The first maximum: ties go to the earlier hour / day; none without orders.
    SELECT i - 1 INTO peak_h FROM generate_subscripts(hours, 1) i WHERE hours[i] > 0
    ORDER BY hours[i] DESC, i LIMIT 1;
    SELECT i INTO peak_d FROM generate_subscripts(days, 1) i WHERE days[i] > 0
    ORDER BY days[i] DESC, i LIMIT 1;

    -- p95 interpolates linearly between the closest ranks (percentile_cont).
    SELECT json_object_agg(s::text, json_build_object('avgSeconds', x.avg_s, 'p95Seconds', x.p95_s) ORDER BY s)
    INTO tis
    FROM unnest(enum_range(NULL::order_status)) s
    LEFT JOIN (
        SELECT e.status AS st, round(avg(d)::numeric, 3) AS avg_s,
               round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d))::numeric, 3) AS p95_s
        FROM (SELECT e.status, extract(epoch FROM n.created_at - e.created_at)::float8 AS d
              FROM order_events e
              JOIN order_events n ON n.order_id = e.order_id AND n.version = e.version + 1
              WHERE e.created_at >= f AND e.created_at < t AND n.created_at >= f AND n.created_at < t
                AND (p_user IS NULL OR e.user_id = p_user)) e
        GROUP BY e.status) x ON x.st = s;

    SELECT coalesce(json_agg(json_build_object('orderId', l.id, 'userId', l.user_id, 'status', l.status,
                                               'since', ot_iso(l.updated_at),
                                               'seconds', floor(extract(epoch FROM now() - l.updated_at))::bigint)
                             ORDER BY l.updated_at, l.id), '[]') INTO late
    FROM (SELECT o.id, o.user_id, o.status, o.updated_at
          -- The SLA per status as a tiny table joined once, not looked up per row.
          FROM (SELECT u.s, p_sla[u.i] AS sla FROM unnest(enum_range(NULL::order_status)) WITH ORDINALITY AS u (s, i)
                WHERE u.s NOT IN ('DELIVERED', 'CANCELED') AND coalesce(p_sla[u.i], 0) > 0) z
          JOIN orders o ON o.status = z.s
          WHERE o.created_at >= f AND o.created_at < t AND (p_user IS NULL OR o.user_id = p_user)
            AND o.updated_at < now() - z.sla * interval '1 second'
          ORDER BY o.updated_at, o.id
          LIMIT p_delayed_max) l;

    RETURN json_build_object(
        'from', ot_iso(f), 'to', ot_iso(t), 'interval', p_interval,
        'countsByStatus', counts, 'trend', trend,
        'busiest', json_build_object(
            'hourOfDay', to_json(hours), 'dayOfWeek', to_json(days),
            'peakHour', peak_h,
            'peakDay', (ARRAY['MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN'])[peak_d]),
        'timeInStatus', tis,
        'delayed', late)::text;
END;
$$;

-- GET /search/orders/:id/history: the order's owner (for the role check) and
-- each event in seq order, with the actor only for admins.
CREATE FUNCTION ot_search_history(p_order uuid, p_admin boolean, p_max int)
RETURNS TABLE (user_id uuid, event_json text)
LANGUAGE sql STABLE AS $$
    SELECT e.user_id,
           CASE WHEN p_admin THEN
               json_build_object('eventId', e.event_id, 'seq', e.seq, 'version', e.version, 'type', e.type,
                                 'status', e.status, 'timestamp', ot_iso(e.created_at), 'actor', e.actor)
           ELSE
               json_build_object('eventId', e.event_id, 'seq', e.seq, 'version', e.version, 'type', e.type,
                                 'status', e.status, 'timestamp', ot_iso(e.created_at))
           END::text
    FROM order_events e WHERE e.order_id = p_order ORDER BY e.seq LIMIT p_max
$$;
