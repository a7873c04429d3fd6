// The admin page: every order in a live, windowed table; moves limited to
// nextStatuses; event history; charts; CSV export; keyboard shortcuts.
//
// Data: GET /search/orders (cursor pages, freshness.seq) when the server has
// it; otherwise the WebSocket replay from since=0 builds the table from the
// events themselves. Either way live events then update rows in place, drop
// what a row already reflects (by version), and count orders that are new
// since the table was shown as "N new" instead of moving the list.
import uPlot from "./vendor/uplot-1.6.32.esm.js";
import { $, el, api, session, bindSignIn, Live, indicator, fmtTime, STATUSES, LABEL, ApiError } from "./common.js";

const ROW_H = 36; // px; style.css .grid td height
const OVERSCAN = 12;
const PAGE = 100; // the search endpoint's largest page

const all = new Map(); // id -> order
let view = []; // ids shown, newest first, filtered
const fresh = new Map(); // new orders not yet shown
let loaded = false;
let selected = null;
let seq = 0;
let source = "search";

const notice = $("#notice");
const showConn = indicator($("#conn"));
// Away from live the cards cannot follow events: they say since when they
// are as of, until the refetch after the reconnect replaces them.
const live = new Live({ onEvent, onResumed, onState: (s) => {
  showConn(s);
  if (s !== "live" && $("#an-asof").textContent) $("#an-msg").textContent = "Not live: these numbers are as of the time above.";
} });
session.onExpired = (msg) => { live.stop(); showAuth(msg); };
session.onRenewed = (token) => live.reauth(token);

/* ---------------------------------------------------------------- filters (in the URL) */

function filters() {
  const q = new URLSearchParams(location.search);
  return { status: q.get("status") || "", userId: q.get("userId") || "", from: q.get("from") || "", to: q.get("to") || "" };
}

function matches(o, f) {
  if (f.status && o.status !== f.status) return false;
  if (f.userId && o.userId !== f.userId.toLowerCase()) return false;
  const day = (o.createdAt || "").slice(0, 10);
  if (f.from && day < f.from) return false;
  if (f.to && day > f.to) return false;
  return true;
}

function fillFilterForm() {
  const f = filters();
  for (const [k, v] of Object.entries(f)) $(`#filters [name=${k}]`).value = v;
}

$("#filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(ev.target)) if (v) q.set(k, String(v));
  const range = new URLSearchParams(location.search).get("range");
  if (range) q.set("range", range);
  history.replaceState(null, "", q.toString() ? "?" + q : location.pathname);
  if (source === "search") reload();
  else refilter();
});

/* ---------------------------------------------------------------- loading */

function showAuth(message) {
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#conn").hidden = true;
  $("#auth").hidden = false;
  notice.textContent = message || "";
}

async function showApp() {
  if (session.user.role !== "ADMIN") {
    session.clear();
    showAuth("This page is for administrators.");
    return;
  }
  $("#auth").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
  $("#conn").hidden = false;
  $("#who-name").textContent = session.user.name || session.user.email;
  fillFilterForm();
  $("#range").value = new URLSearchParams(location.search).get("range") in RANGES ? new URLSearchParams(location.search).get("range") : "24h";
  scheduleCharts();
  await reload();
}

// The table's filters as /search/orders parameters (to: through that day).
function searchQuery(f, limit) {
  const q = new URLSearchParams({ limit: String(limit) });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, k === "from" ? v + "T00:00:00Z" : k === "to" ? nextDay(v) + "T00:00:00Z" : v);
  return q;
}

async function reload() {
  live.stop();
  all.clear();
  fresh.clear();
  loaded = false;
  const f = filters();
  try {
    let cursor = null;
    let first = true;
    do {
      const q = searchQuery(f, PAGE);
      if (cursor) q.set("cursor", cursor);
      const page = await api("GET", "/search/orders?" + q);
      if (first) seq = page.freshness ? page.freshness.seq : 0;
      first = false;
      for (const o of page.orders) all.set(o.id, o);
      cursor = page.nextCursor;
      refilter();
    } while (cursor && all.size < 200000);
    source = "search";
    loaded = true;
    live.start(seq);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      // No search endpoint on this server: the event stream is the source.
      source = "events";
      live.start(0);
      return;
    }
    if (e.status === 401) return;
    notice.textContent = e.status === 0 ? "The server cannot be reached; retrying…" : e.message;
    setTimeout(() => { if (session.token) reload(); }, 2000);
  }
}

function onResumed() {
  scheduleCharts(); // back after a cut: what changed meanwhile
  if (!loaded) {
    loaded = true;
    refilter();
  }
}

function onEvent(ev) {
  const cur = all.get(ev.orderId) || fresh.get(ev.orderId);
  if (cur && ev.version <= cur.version) return; // already reflected
  const o = cur ? { ...cur } : { id: ev.orderId, userId: ev.userId, items: ev.payload && ev.payload.items, createdAt: ev.timestamp };
  Object.assign(o, { status: ev.status, version: ev.version, updatedAt: ev.timestamp, nextStatuses: ev.nextStatuses });
  if (!cur && loaded) {
    fresh.set(o.id, o);
  } else if (fresh.has(o.id)) {
    fresh.set(o.id, o);
  } else {
    all.set(o.id, o);
    if (!cur && !loaded) view.push(o.id); // replay: oldest first, sorted at refilter
  }
  if (selected === o.id) addHistory(ev);
  // A row that stays in the view is redrawn alone; anything that changes
  // the view (a new row, a row leaving the status filter) redraws the window.
  if (cur && loaded && all.has(o.id) && matches(o, filters())) patchRow(o.id);
  else if (fresh.has(o.id)) schedule();
  else refilterSoon();
  scheduleCharts();
}

const dirty = new Set();
function patchRow(id) {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

let refilterTimer = 0;
function refilterSoon() {
  if (!loaded) { schedule(); return; }
  if (!refilterTimer) refilterTimer = setTimeout(() => { refilterTimer = 0; refilter(); }, 0);
}

$("#new").addEventListener("click", showNew);
function showNew() {
  for (const [id, o] of fresh) all.set(id, o);
  fresh.clear();
  refilter();
  $("#grid-wrap").scrollTop = 0;
}

/* ---------------------------------------------------------------- table (windowed) */

function refilter() {
  const f = filters();
  view = [...all.values()].filter((o) => matches(o, f))
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1))
    .map((o) => o.id);
  schedule();
  scheduleCharts();
}

let frame = 0;
let version = 0; // bumped by every data change, so an unmoved window still redraws
let drawn = "";
function schedule() {
  version++;
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

function render() {
  const wrap = $("#grid-wrap");
  const tbody = $("#rows");
  const h = wrap.clientHeight || 600;
  // The window moves in steps of OVERSCAN rows: scrolling within a step
  // redraws nothing, and the rows around the viewport are always real.
  const top = Math.floor(wrap.scrollTop / ROW_H);
  const first = Math.max(0, Math.floor(top / OVERSCAN) * OVERSCAN - OVERSCAN);
  const last = Math.min(view.length, first + Math.ceil(h / ROW_H) + 3 * OVERSCAN);
  const key = `${first}:${last}:${view.length}:${version}`;
  if (key === drawn) {
    for (const id of dirty) {
      const tr = document.getElementById("row-" + id);
      if (tr) tr.replaceWith(row(all.get(id), Number(tr.getAttribute("aria-rowindex")) - 2));
    }
    dirty.clear();
    renderCounts();
    return;
  }
  drawn = key;
  dirty.clear();
  const rows = [];
  rows.push(spacer(first * ROW_H));
  for (let i = first; i < last; i++) rows.push(row(all.get(view[i]), i));
  rows.push(spacer((view.length - last) * ROW_H));
  tbody.replaceChildren(...rows);
  $("#grid").setAttribute("aria-rowcount", String(view.length + 1));
  renderCounts();
}

function renderCounts() {
  $("#count").textContent = loaded ? `${view.length} orders` : `Loading… ${view.length} orders`;
  const nb = $("#new");
  nb.hidden = fresh.size === 0;
  nb.textContent = `${fresh.size} new`;
}

function spacer(px) {
  const td = el("td", { colspan: "6" });
  td.style.height = px + "px";
  return el("tr", { class: "spacer", "aria-hidden": "true" }, td);
}

function row(o, i) {
  const tr = el("tr", { id: "row-" + o.id, "data-status": o.status, "aria-rowindex": String(i + 2),
    "data-updated": o.updatedAt, "aria-selected": selected === o.id ? "true" : "false", class: selected === o.id ? "sel" : null,
    onclick: () => select(o.id) },
    el("td", {}, el("button", { type: "button", class: "link", text: o.id.slice(0, 8), "aria-label": "Order " + o.id, onclick: () => select(o.id) })),
    el("td", { text: o.userId ? o.userId.slice(0, 8) : "" }),
    el("td", {}, el("span", { class: "badge s-" + o.status, text: LABEL[o.status] })),
    el("td", { class: "opt", text: fmtTime(o.createdAt) }),
    el("td", { class: "opt", text: fmtTime(o.updatedAt) }),
    el("td", { class: "moves" }, ...(o.nextStatuses || []).map((s) =>
      el("button", { type: "button", "data-move": s, text: LABEL[s], "aria-label": `Move order ${o.id.slice(0, 8)} to ${LABEL[s]}`,
        onclick: (ev) => { ev.stopPropagation(); move(o.id, s); } }))));
  return tr;
}

$("#grid-wrap").addEventListener("scroll", () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); }); }, { passive: true });

/* ---------------------------------------------------------------- moves and history */

async function move(id, status) {
  const o = all.get(id);
  $("#move-msg").textContent = "";
  try {
    const r = await fetchMove(id, status, o.version);
    if (r.version > (all.get(id).version || 0)) all.set(id, r);
    schedule();
    scheduleCharts();
  } catch (e) {
    if (e.status === 409 || e.status === 412) {
      $("#move-msg").textContent = `Not moved: ${e.message}`;
      try { const cur = await api("GET", "/orders/" + id); all.set(id, cur); schedule(); scheduleCharts(); if (selected === id) select(id); } catch { /* shown above */ }
    } else {
      $("#move-msg").textContent = e.message;
    }
  }
}

async function fetchMove(id, status, version) {
  const res = await fetch(`/orders/${id}/status`, {
    method: "PATCH",
    headers: { Authorization: "Bearer " + session.token, "Content-Type": "application/json", "If-Match": `"${version}"` },
    body: JSON.stringify({ status }),
  }).catch(() => { throw new ApiError(0, "unreachable", "The server cannot be reached."); });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401) session.expire("Your session has ended. Please sign in again.");
    const err = (data && data.error) || { code: "http_" + res.status, message: res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

async function select(id) {
  selected = id;
  schedule();
  $("#hist-for").textContent = "Order " + id;
  $("#history").replaceChildren();
  try {
    const h = await api("GET", `/orders/${id}/events`);
    if (selected !== id) return;
    $("#history").replaceChildren();
    for (const ev of h.events) addHistory(ev);
  } catch (e) {
    $("#hist-for").textContent = `Order ${id}: ${e.message}`;
  }
}

function addHistory(ev) {
  const list = $("#history");
  if (list.querySelector(`[data-version="${ev.version}"]`)) return;
  list.append(el("li", { "data-version": String(ev.version) },
    el("strong", { text: LABEL[ev.status] }), " ",
    el("span", { text: ev.actor ? `by ${ev.actor.slice(0, 8)}` : "by the system" }), " — ",
    el("time", { datetime: ev.timestamp, text: fmtTime(ev.timestamp) })));
}

/* ---------------------------------------------------------------- keyboard */

document.addEventListener("keydown", (ev) => {
  if ($("#app").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, select, textarea")) return;
  const i = selected ? view.indexOf(selected) : -1;
  const go = (j) => {
    if (j < 0 || j >= view.length) return;
    select(view[j]);
    const wrap = $("#grid-wrap");
    const top = j * ROW_H;
    if (top < wrap.scrollTop + ROW_H) wrap.scrollTop = Math.max(0, top - ROW_H);
    else if (top > wrap.scrollTop + wrap.clientHeight - 2 * ROW_H) wrap.scrollTop = top - wrap.clientHeight + 2 * ROW_H;
  };
  const o = selected && all.get(selected);
  if (ev.key === "j") go(i + 1);
  else if (ev.key === "k") go(Math.max(0, i - 1));
  else if (ev.key === "a" && o && o.nextStatuses && o.nextStatuses.length && o.nextStatuses[0] !== "CANCELED") move(o.id, o.nextStatuses[0]);
  else if (ev.key === "x" && o && (o.nextStatuses || []).includes("CANCELED")) move(o.id, "CANCELED");
  else if (ev.key === "n") showNew();
  else if (ev.key === "/") $("#filters select").focus();
  else return;
  ev.preventDefault();
});

/* ---------------------------------------------------------------- charts (GET /search/analytics) */

// The numbers come from the server, which sees every order (the table may
// hold a filtered or partial set): refetched after events arrive, at most
// once a second (CHART_GAP) and CHART_DELAY after the first event of a
// burst, so 100 events/s cost one query a second; and every CHART_TICK, since
// an order becomes delayed by the clock alone. A slow answer (a big range on
// a busy database) stretches the gap to CHART_COST times its duration, so
// the numbers never take more than a tenth of the server's time.
const CHART_DELAY = 250, CHART_GAP = 1000, CHART_TICK = 30000, CHART_COST = 10;
const RANGES = { "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const DAYS = { MON: "Monday", TUE: "Tuesday", WED: "Wednesday", THU: "Thursday", FRI: "Friday", SAT: "Saturday", SUN: "Sunday" };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
let chartTimer = 0, chartBusy = false, chartAgain = false, chartLast = 0, chartTick = 0, chartGap = CHART_GAP;
let plot = null;

const nextDay = (d) => new Date(Date.parse(d + "T00:00:00Z") + 86400e3).toISOString().slice(0, 10);

// The date filters bound the numbers when set (to: through that whole day);
// otherwise the range menu does, up to now.
function analyticsQuery() {
  const f = filters();
  const span = RANGES[$("#range").value] || RANGES["24h"];
  const to = f.to ? Date.parse(nextDay(f.to) + "T00:00:00Z") : Date.now();
  const from = f.from ? Date.parse(f.from + "T00:00:00Z") : to - span;
  const q = new URLSearchParams({ from: new Date(from).toISOString(), interval: to - from <= RANGES["7d"] ? "hour" : "day" });
  if (f.to) q.set("to", new Date(to).toISOString());
  if (f.userId && UUID.test(f.userId)) q.set("userId", f.userId.toLowerCase());
  return q;
}

function scheduleCharts() {
  if (chartBusy) { chartAgain = true; return; }
  if (chartTimer || $("#app").hidden) return;
  chartTimer = setTimeout(fetchCharts, Math.max(CHART_DELAY, chartLast + chartGap - Date.now()));
}

async function fetchCharts() {
  chartTimer = 0;
  chartBusy = true;
  chartAgain = false;
  chartLast = Date.now();
  clearTimeout(chartTick);
  chartTick = setTimeout(scheduleCharts, CHART_TICK);
  try {
    const a = await api("GET", "/search/analytics?" + analyticsQuery());
    chartGap = Math.max(CHART_GAP, CHART_COST * (Date.now() - chartLast));
    drawCharts(a);
    $("#an-msg").textContent = "";
    $("#an-asof").textContent = `As of ${fmtTime(new Date().toISOString())} (stream position ${a.freshness.seq}).`;
  } catch (e) {
    // Stale numbers stay, saying so; the next event, reconnect or tick retries.
    if (e.status !== 401) $("#an-msg").textContent = `Numbers not updated: ${e.message}`;
  } finally {
    chartBusy = false;
    if (chartAgain) scheduleCharts();
  }
}

$("#range").addEventListener("change", () => {
  const q = new URLSearchParams(location.search);
  if ($("#range").value === "24h") q.delete("range"); else q.set("range", $("#range").value);
  history.replaceState(null, "", q.toString() ? "?" + q : location.pathname);
  scheduleCharts();
});

function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

function drawCharts(a) {
  const f = filters();
  const hourly = a.interval === "hour";
  $("#an-scope").textContent = `Orders created ${fmtTime(a.from)} – ${fmtTime(a.to)}` +
    (f.userId ? `, customer ${f.userId.slice(0, 8)}` : "") + (f.status ? " (all statuses: the status filter applies to the table)" : "") + ".";
  const counts = a.countsByStatus;
  const max = Math.max(1, ...Object.values(counts));
  $("#counts tbody").replaceChildren(...STATUSES.map((s) => {
    const bar = el("span", { class: "bar-fill s-" + s });
    bar.style.width = (100 * counts[s] / max).toFixed(1) + "%";
    return el("tr", { "data-status": s }, el("th", { scope: "row", text: LABEL[s] }), el("td", { class: "num", text: String(counts[s]) }),
      el("td", { class: "bar-cell", "aria-hidden": "true" }, bar));
  }));

  // Trend: the server sends every bucket, empty ones included.
  const xs = a.trend.map((t) => Date.parse(t.start) / 1000), ys = a.trend.map((t) => t.count);
  const total = ys.reduce((x, y) => x + y, 0);
  $("#trend-h").textContent = hourly ? "Orders per hour" : "Orders per day";
  $("#trend").setAttribute("aria-label", `Orders created per ${a.interval}: ${total} in ${xs.length} ${a.interval}s` +
    (total ? `, at most ${Math.max(...ys)} in one` : "") + ". The table below the chart has the values.");
  $("#trend-table tbody").replaceChildren(...a.trend.map((t) => el("tr", { "data-start": t.start },
    el("td", { text: hourly ? t.start.slice(0, 16).replace("T", " ") : t.start.slice(0, 10) }), el("td", { class: "num", text: String(t.count) }))));
  const b = a.busiest;
  $("#busiest").textContent = b.peakHour === null ? "No orders in this range." :
    `Busiest hour of day (UTC): ${String(b.peakHour).padStart(2, "0")}:00 (${b.hourOfDay[b.peakHour]} orders); ` +
    `busiest weekday: ${DAYS[b.peakDay]} (${b.dayOfWeek[Object.keys(DAYS).indexOf(b.peakDay)]} orders).`;
  const box = $("#trend");
  const width = Math.max(240, box.clientWidth || 320);
  if (!plot) {
    plot = new uPlot({ width, height: 180,
      series: [{}, { label: "Orders", stroke: "#0a58ca", fill: "rgba(10,88,202,0.15)" }],
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor" }], legend: { show: false } }, [xs, ys], box);
  } else {
    plot.setData([xs, ys]);
  }

  // Terminal statuses have no next change, so no time in them.
  $("#tis tbody").replaceChildren(...STATUSES.filter((s) => s !== "DELIVERED" && s !== "CANCELED").map((s) => {
    const t = a.timeInStatus[s] || {};
    const cell = (v) => el("td", { class: "num", "data-seconds": v === null || v === undefined ? "" : String(v), text: fmtDuration(v),
      title: v === null || v === undefined ? "no change out of this status in the range" : `${v} s` });
    return el("tr", { "data-status": s }, el("th", { scope: "row", text: LABEL[s] }), cell(t.avgSeconds), cell(t.p95Seconds));
  }));

  const late = a.delayed;
  $("#delayed-count").dataset.n = String(late.length);
  $("#delayed-count").textContent = late.length === 0 ? "None delayed." : `${late.length} delayed order${late.length === 1 ? "" : "s"}.`;
  $("#delayed").replaceChildren(...late.slice(0, 20).map((d) => el("li", { "data-order": d.orderId },
    el("button", { type: "button", class: "link", text: d.orderId.slice(0, 8), "aria-label": "Order " + d.orderId, onclick: () => select(d.orderId) }),
    " ", el("span", { class: "badge s-" + d.status, text: LABEL[d.status] }),
    ` for ${fmtDuration(d.seconds)} (since `, el("time", { datetime: d.since, text: fmtTime(d.since) }), ")")));
  if (late.length > 20) $("#delayed").append(el("li", { text: `and ${late.length - 20} more` }));
}

/* ---------------------------------------------------------------- CSV */

// The export is one moment of the stream: the position S is taken first,
// then every page is asked "as of S" (the server rebuilds each order's state
// at S from the event log), so a change or a new order while the pages come
// in cannot make one row newer than another. The file names S and says it
// on every row. Without the search endpoint the table itself, built from the
// events up to live.seq, is that moment.
const CSV_COLS = ["id", "userId", "status", "version", "createdAt", "updatedAt", "items", "asOfSeq"];
const csvCell = (v) => (/[",\n\r]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
const csvItems = (items) => (items || []).map((i) => `${i.qty}x${i.productId}`).join(" ");

async function exportRows() {
  if (source !== "search") return { seq: live.seq, orders: view.map((id) => all.get(id)) };
  const f = filters();
  const seq = (await api("GET", "/search/orders?" + searchQuery(f, 1))).freshness.seq;
  const orders = [];
  let cursor = null;
  do {
    const q = searchQuery(f, PAGE);
    q.set("asOf", String(seq));
    if (cursor) q.set("cursor", cursor);
    let page;
    for (let tries = 0; ; tries++) {
      try {
        page = await api("GET", "/search/orders?" + q);
        break;
      } catch (e) {
        // Another worker a moment behind the one that gave S: wait for it.
        if (e.code !== "not_yet" || tries >= 20) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    orders.push(...page.orders);
    cursor = page.nextCursor;
    $("#csv-msg").textContent = `Exporting… ${orders.length} orders`;
  } while (cursor);
  return { seq, orders };
}

$("#csv").addEventListener("click", async () => {
  const btn = $("#csv");
  btn.disabled = true;
  $("#csv-msg").textContent = "Exporting…";
  try {
    const { seq, orders } = await exportRows();
    const lines = [CSV_COLS.join(",")];
    for (const o of orders)
      lines.push([o.id, o.userId, o.status, o.version, o.createdAt, o.updatedAt, csvItems(o.items), seq].map(csvCell).join(","));
    const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    const a = el("a", { href: url, download: `orders-seq-${seq}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    $("#csv-msg").textContent = `Exported ${orders.length} orders as of stream position ${seq}.`;
  } catch (e) {
    $("#csv-msg").textContent = `Export failed: ${e.message}`;
  } finally {
    btn.disabled = false;
  }
});

/* ---------------------------------------------------------------- start */

bindSignIn($("#signin"), $("#signin-msg"), () => showApp());
$("#signout").addEventListener("click", () => { live.stop(); session.clear(); showAuth("Signed out."); });
if (session.load()) showApp();
else showAuth();
