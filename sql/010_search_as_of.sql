-- GET /search/orders?asOf=S: the orders as they stood at stream position S
-- (order_events.seq), so that every page of one listing (the admin page's CSV
-- export) describes the same moment however long the paging takes and
-- whatever changes meanwhile. Numbered 010, not 009: another branch holds a
-- 009; migrations apply by name, so either merge order works.
--
-- An order's state at S is its latest event with seq <= S (order_events is
-- append-only: ot_refuse_event_change); an order whose first event is after S
-- did not exist yet. Items never change after creation. updatedAt: the
-- current version keeps the row's and version 1 is createdAt (as the row had
-- it then), so those are byte for byte what a plain listing said; a version
-- in between is its event's time (the row's updated_at of then is not kept;
-- the two differ by the microseconds between the UPDATE and the event INSERT
-- of one transaction). The status filter applies to the
-- status at S, so it cannot use the status index: a scan in keyset order with
-- one (order_id, version) index probe per row, which is what an export pages
-- through anyway. The caller (api/search.c) only passes an S every event up
-- to which has committed (at most its freshness), so the answer is final.
CREATE FUNCTION ot_search_orders_at(p_user uuid, p_status order_status, p_order uuid, p_from_us bigint,
                                    p_to_us bigint, p_cur_us bigint, p_cur_id uuid, p_limit int, p_seq bigint)
RETURNS TABLE (order_json text, cursor_us bigint, id uuid)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    SELECT ot_order_json(CASE WHEN e.version = o.version THEN o ELSE
               jsonb_populate_record(o, jsonb_build_object('status', e.status, 'version', e.version,
                                                           'updated_at', CASE WHEN e.version = 1 THEN o.created_at
                                                                              ELSE e.created_at END)) END),
           ot_ts_us(o.created_at), o.id
    FROM orders o
    CROSS JOIN LATERAL (SELECT x.status, x.version, x.created_at FROM order_events x
                        WHERE x.order_id = o.id AND x.seq <= p_seq
                        ORDER BY x.version DESC LIMIT 1) e
    WHERE (p_user IS NULL OR o.user_id = p_user)
      AND (p_status IS NULL OR e.status = p_status)
      AND (p_order IS NULL OR o.id = p_order)
      AND (p_from_us IS NULL OR o.created_at >= ot_us_ts(p_from_us))
      AND (p_to_us IS NULL OR o.created_at < ot_us_ts(p_to_us))
      AND (p_cur_us IS NULL OR (o.created_at, o.id) < (ot_us_ts(p_cur_us), p_cur_id))
    ORDER BY o.created_at DESC, o.id DESC
    LIMIT p_limit;
END;
$$;
