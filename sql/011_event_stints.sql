-- Time in status without joining order_events to itself. A stint is one
-- event to the order's next one; its sample for /search/analytics (sql/007)
-- was found by joining every event in the range to version + 1, one index
-- probe per event: at a million orders a 30-day range took 1.8 s p50 (13-20x
-- Elasticsearch, docs/BENCHMARKS.md). Each event now carries the stint it
-- ends: the previous version's status and time, filled on insert by a row
-- trigger whoever writes the row (the API's functions, a bulk load, a test),
-- so the samples are one range scan of one index.
ALTER TABLE order_events ADD COLUMN prev_status order_status, ADD COLUMN prev_at timestamptz;

CREATE FUNCTION ot_event_prev() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version > 1 AND NEW.prev_at IS NULL THEN
        SELECT e.status, e.created_at INTO NEW.prev_status, NEW.prev_at
        FROM order_events e WHERE e.order_id = NEW.order_id AND e.version = NEW.version - 1;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER order_events_prev
    BEFORE INSERT ON order_events
    FOR EACH ROW EXECUTE FUNCTION ot_event_prev();

-- The rows written before this migration: the two derived columns only, the
-- events themselves (everything ot_event_json reads) stay as they were; the
-- append-only trigger is back on in the same transaction.
ALTER TABLE order_events DISABLE TRIGGER order_events_append_only;
UPDATE order_events n SET prev_status = e.status, prev_at = e.created_at
FROM order_events e WHERE e.order_id = n.order_id AND e.version = n.version - 1;
ALTER TABLE order_events ENABLE TRIGGER order_events_append_only;

-- The stints ending in a range, index-only; one customer's through
-- order_events_user_created_idx (007) and a filter.
CREATE INDEX order_events_stint_idx ON order_events (created_at) INCLUDE (prev_status, prev_at, user_id)
    WHERE prev_at IS NOT NULL;

-- timeInStatus of /search/analytics: per status, avgSeconds and p95Seconds
-- (percentile_cont: linear between the closest ranks) over the stints that
-- began and ended in [f, t), as before.
CREATE FUNCTION ot_search_time_in_status(p_user uuid, f timestamptz, t timestamptz) RETURNS json
-- plpgsql with custom plans, as ot_search_analytics: p_user is a constant when
-- the query is planned, so a customer's range goes through
-- order_events_user_created_idx (as a generic plan it scanned everyone's
-- range: a customer's year 22 -> 478 ms p50 in bench-search-scale.sh).
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    r json;
BEGIN
    SELECT json_object_agg(s::text, json_build_object('avgSeconds', x.avg_s, 'p95Seconds', x.p95_s) ORDER BY s)
    INTO r
    FROM unnest(enum_range(NULL::order_status)) s
    LEFT JOIN (
        SELECT n.prev_status AS st, round(avg(d)::numeric, 3) AS avg_s,
               round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d))::numeric, 3) AS p95_s
        FROM (SELECT n.prev_status, extract(epoch FROM n.created_at - n.prev_at)::float8 AS d
              FROM order_events n
              WHERE n.created_at >= f AND n.created_at < t AND n.prev_at >= f AND n.prev_at < t
                AND n.prev_at IS NOT NULL AND (p_user IS NULL OR n.user_id = p_user)) n
        GROUP BY n.prev_status) x ON x.st = s;
    RETURN r;
END;
$$;

-- The same analytics with timeInStatus from the function above.
CREATE OR REPLACE FUNCTION ot_search_analytics(p_user uuid, p_from_us bigint, p_to_us bigint, p_interval text,
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

    tis := ot_search_time_in_status(p_user, f, t);

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
