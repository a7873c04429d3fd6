// The admin page in a real Chromium against the real server and database.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, freePort, browser, newPage, api, login, sql, axe, email, sleep, ADMIN, ARTIFACTS } from "./harness.mjs";

let srv, b;
before(async () => {
  // ACCEPTED is late after 1 s, so the test can make an order delayed.
  srv = await new Server(await freePort(), ["--search-sla-accepted-seconds", "1"]).start();
  b = await browser();
});
after(async () => {
  if (b) await b.close();
  if (srv) await srv.stop();
});

async function signIn(page, who) {
  await page.fill("#signin input[name=email]", who.email);
  await page.fill("#signin input[name=password]", who.password);
  await page.click("#signin button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector('#conn[data-state="live"]');
}

// What the admin page's number cards show, read back from the DOM.
const readCharts = () => {
  const cells = (sel) => [...document.querySelectorAll(sel)];
  return {
    counts: Object.fromEntries(cells("#counts tr[data-status]").map((r) => [r.dataset.status, r.querySelector(".num").textContent])),
    trendTotal: cells("#trend-table tbody td.num").reduce((x, td) => x + Number(td.textContent), 0),
    busiest: document.querySelector("#busiest").textContent.match(/(\d\d):00/)?.[1] ?? null,
    tis: Object.fromEntries(cells("#tis tr[data-status]").map((r) => [r.dataset.status, [...r.querySelectorAll("td")].map((td) => td.dataset.seconds)])),
    delayedN: document.querySelector("#delayed-count").dataset.n,
    delayed: cells("#delayed li[data-order]").map((li) => li.dataset.order),
  };
};

// The cards must equal GET /search/analytics for the same (default, last
// 24 h) range, and its counts what the database says; polled, since the page
// refetches a moment after the events.
async function chartsMatchApi(page, token, params = {}, where = "true") {
  const q = new URLSearchParams({ interval: "hour", ...params });
  const a = (await api(srv, "GET", "/search/analytics?" + q, undefined, token)).body;
  const since = q.get("from") ? `'${q.get("from")}'::timestamptz` : "now() - interval '24 hours'";
  const db = Object.fromEntries(sql(`SELECT status, count(*) FROM orders WHERE created_at >= ${since} AND ${where} GROUP BY 1`)
    .split("\n").filter(Boolean).map((l) => l.split("|")));
  for (const [s, n] of Object.entries(a.countsByStatus)) assert.equal(String(n), db[s] || "0", `database count of ${s}`);
  const sec = (v) => (v === null ? "" : String(v));
  const want = {
    counts: Object.fromEntries(Object.entries(a.countsByStatus).map(([k, v]) => [k, String(v)])),
    trendTotal: a.trend.reduce((x, t) => x + t.count, 0),
    busiest: a.busiest.peakHour === null ? null : String(a.busiest.peakHour).padStart(2, "0"),
    tis: Object.fromEntries(["CREATED", "ACCEPTED", "PREPARED", "SHIPPED"].map((s) => [s, [sec(a.timeInStatus[s].avgSeconds), sec(a.timeInStatus[s].p95Seconds)]])),
    delayedN: String(a.delayed.length),
    delayed: a.delayed.slice(0, 20).map((d) => d.orderId),
  };
  let got;
  for (const end = Date.now() + 5000; Date.now() < end; await sleep(100)) {
    got = await page.evaluate(readCharts);
    if (JSON.stringify(got) === JSON.stringify(want)) break;
  }
  assert.deepEqual(got, want);
  return a;
}

async function customer(tag) {
  const who = { name: "Customer " + tag, email: email(tag), password: tag + "-pass-12345" };
  const r = await api(srv, "POST", "/auth/register", who);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { ...who, ...(await login(srv, who.email, who.password)) };
}

test("admin: live table, only offered moves, history, N new, keys, number cards, server restart, filters in the URL, a11y", async () => {
  const c = await customer("carol");
  const o = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-a", qty: 3 }] }, c.token)).body;
  const pc = await newPage(b, srv, "/");
  await signIn(pc, c);
  await pc.waitForSelector(`#order-${o.id}`);

  // The admin's socket passes through the test, which can hold the server's
  // pushes back to make the page stale on purpose.
  let holdPushes = false;
  const pa = await newPage(b, srv, "/admin", {}, (page) => page.routeWebSocket(/\/ws\/orders/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => { if (!holdPushes) ws.send(m); });
  }));
  await signIn(pa, ADMIN);
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  await pa.waitForSelector(`#row-${o.id}`);

  // Through every status with the buttons the page offers, which are exactly
  // the server's nextStatuses; the customer sees each move within 1 s.
  const path = [];
  for (;;) {
    const offered = await pa.$$eval(`#row-${o.id} [data-move]`, (bs) => bs.map((x) => x.dataset.move));
    const truth = (await api(srv, "GET", `/orders/${o.id}`, undefined, adm.token)).body.nextStatuses;
    assert.deepEqual(offered, truth);
    const next = offered.find((s) => s !== "CANCELED");
    if (!next) break;
    const t0 = Date.now();
    await pa.click(`#row-${o.id} [data-move=${next}]`);
    await pc.waitForSelector(`#order-${o.id}[data-status=${next}]`, { timeout: 1000 });
    path.push([next, Date.now() - t0]);
    await pa.waitForSelector(`#row-${o.id}[data-status=${next}]`);
  }
  console.log("admin click -> customer page (ms):", JSON.stringify(path));
  assert.deepEqual(path.map((p) => p[0]), ["ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"]);
  assert.equal(await pa.locator(`#row-${o.id} [data-move]`).count(), 0, "a delivered order offers no move");

  // History: who did what, when.
  await pa.click(`#row-${o.id} td:nth-child(2)`);
  await pa.waitForFunction(() => document.querySelectorAll("#history li").length === 5);
  assert.match(await pa.textContent("#history"), /Created.*Accepted.*Prepared.*Shipped.*Delivered/s);

  // A new order is announced, not inserted under the reader's eyes.
  const o2 = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-b", qty: 1 }] }, c.token)).body;
  await pa.waitForSelector("#new:not([hidden])");
  assert.equal(await pa.textContent("#new"), "1 new");
  assert.equal(await pa.locator(`#row-${o2.id}`).count(), 0);
  await pa.locator("#grid-wrap").focus();
  await pa.keyboard.press("n");
  await pa.waitForSelector(`#row-${o2.id}`);
  // Keyboard: select it (j/k), advance (a), cancel (x).
  await pa.click(`#row-${o2.id} td:nth-child(2)`);
  await pa.keyboard.press("a");
  await pa.waitForSelector(`#row-${o2.id}[data-status=ACCEPTED]`);
  await pa.keyboard.press("x");
  await pa.waitForSelector(`#row-${o2.id}[data-status=CANCELED]`);
  await pc.waitForSelector(`#order-${o2.id}[data-status=CANCELED]`, { timeout: 1000 });

  // A move the server refuses is said plainly: the order was canceled
  // behind the page's back while its pushes were held, so the page still
  // offers ACCEPTED; the 409 names the current status.
  const o3 = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-c", qty: 1 }] }, c.token)).body;
  await pa.waitForSelector("#new:not([hidden])");
  await pa.keyboard.press("n");
  await pa.waitForSelector(`#row-${o3.id} [data-move=ACCEPTED]`);
  holdPushes = true;
  assert.equal((await api(srv, "PATCH", `/orders/${o3.id}/status`, { status: "CANCELED" }, adm.token)).status, 200);
  await pa.click(`#row-${o3.id} [data-move=ACCEPTED]`);
  await pa.waitForSelector("#move-msg:not(:empty)");
  assert.match(await pa.textContent("#move-msg"), /Not moved: .*CANCELED/);
  await pa.waitForSelector(`#row-${o3.id}[data-status=CANCELED]`); // refreshed from the 409
  assert.equal(await pa.locator(`#row-${o3.id} [data-move]`).count(), 0);
  holdPushes = false;
  // The counts follow (debounced): 2 canceled, 1 delivered.
  await pa.waitForFunction(() => document.querySelector("#counts tr[data-status=CANCELED] .num")?.textContent === "2");
  assert.equal(await pa.textContent("#counts tr[data-status=DELIVERED] .num"), "1");
  const a1 = await chartsMatchApi(pa, adm.token);
  assert.ok(a1.timeInStatus.CREATED.avgSeconds > 0, "three orders left CREATED: time in CREATED is known");

  // Delayed follows the events: an order ACCEPTED over 1 s ago (its SLA here)
  // is listed once any event makes the page refetch, and leaves the list
  // when it moves on.
  const o4 = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-d", qty: 1 }] }, c.token)).body;
  assert.equal((await api(srv, "PATCH", `/orders/${o4.id}/status`, { status: "ACCEPTED" }, adm.token)).status, 200);
  await sleep(1200);
  await api(srv, "POST", "/orders", { items: [{ productId: "sku-e", qty: 1 }] }, c.token);
  await pa.waitForSelector(`#delayed li[data-order="${o4.id}"]`, { timeout: 3000 });
  assert.match(await pa.textContent(`#delayed li[data-order="${o4.id}"]`), /Accepted for \d/);
  await chartsMatchApi(pa, adm.token);
  assert.equal((await api(srv, "PATCH", `/orders/${o4.id}/status`, { status: "PREPARED" }, adm.token)).status, 200);
  await pa.waitForSelector(`#delayed li[data-order="${o4.id}"]`, { state: "detached", timeout: 3000 });
  const a2 = await chartsMatchApi(pa, adm.token);
  assert.equal(a2.countsByStatus.PREPARED, a1.countsByStatus.PREPARED + 1);
  await pa.screenshot({ path: ARTIFACTS + "admin.png", fullPage: true });

  // The server restarted while an order changes: the page says it is
  // reconnecting, then shows the change in place, once, without reload.
  // (CANCELED: terminal, so not delayed by the clock between two refetches.)
  const o6 = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-f", qty: 1 }] }, c.token)).body;
  await pa.waitForSelector("#new:not([hidden])");
  await pa.click("#new");
  await pa.waitForSelector(`#row-${o6.id}[data-status=CREATED]`);
  const shown = await pa.textContent("#count");
  const loads = await pa.evaluate(() => performance.getEntriesByType("navigation").length);
  await srv.stop();
  await pa.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 3000 });
  assert.match(await pa.textContent("#an-msg"), /^Not live: these numbers are as of/);
  assert.equal(sql(`SELECT result FROM ot_update_status('${o6.id}'::uuid, 'CANCELED'::order_status, NULL, NULL)`), "ok");
  await srv.start();
  await pa.waitForSelector(`#row-${o6.id}[data-status=CANCELED]`, { timeout: 8000 });
  await pa.waitForSelector('#conn[data-state="live"]');
  assert.equal(await pa.locator(`#row-${o6.id}`).count(), 1, "no duplicate row");
  assert.equal(await pa.textContent("#count"), shown, "no extra order");
  assert.equal(await pa.locator("#new:not([hidden])").count(), 0, "the change is not announced as new");
  assert.equal(await pa.evaluate(() => performance.getEntriesByType("navigation").length), loads, "no reload");
  await chartsMatchApi(pa, adm.token); // the numbers caught up too
  await pa.waitForFunction(() => document.querySelector("#an-msg").textContent === "");

  // Filters live in the URL and survive a reload.
  await pa.selectOption("#filters select[name=status]", "DELIVERED");
  await pa.click("#filters button[type=submit]");
  assert.match(pa.url(), /status=DELIVERED/);
  await pa.reload();
  await pa.waitForSelector(`#row-${o.id}`);
  assert.equal(await pa.inputValue("#filters select[name=status]"), "DELIVERED");
  assert.deepEqual([...new Set(await pa.$$eval("#rows tr[data-status]", (rs) => rs.map((r) => r.dataset.status)))], ["DELIVERED"]);

  // By customer and date range: the table holds exactly that customer's
  // orders, and the numbers are that customer's too.
  const today = new Date().toISOString().slice(0, 10);
  await pa.selectOption("#filters select[name=status]", "");
  await pa.fill("#filters input[name=userId]", c.user.id);
  await pa.fill("#filters input[name=from]", today);
  await pa.fill("#filters input[name=to]", today);
  await pa.click("#filters button[type=submit]");
  const mine = Number(sql(`SELECT count(*) FROM orders WHERE user_id = '${c.user.id}' AND created_at >= '${today}'::date`));
  await pa.waitForFunction((n) => document.querySelector("#count").textContent === `${n} orders`, mine);
  assert.ok(mine >= 6);
  assert.deepEqual([...new Set(await pa.$$eval("#rows tr[data-status] td:nth-child(2)", (ts) => ts.map((t) => t.textContent)))], [c.user.id.slice(0, 8)]);
  assert.match(pa.url(), new RegExp(`userId=${c.user.id}.*from=${today}.*to=${today}`));
  const dayAfter = new Date(Date.parse(today) + 86400e3).toISOString();
  await chartsMatchApi(pa, adm.token, { userId: c.user.id, from: today + "T00:00:00Z", to: dayAfter },
    `user_id = '${c.user.id}' AND created_at < '${dayAfter}'`);
  // Without dates, the range menu: 30 days go by day.
  for (const n of ["from", "to", "userId"]) await pa.fill(`#filters input[name=${n}]`, "");
  await pa.click("#filters button[type=submit]");
  await pa.selectOption("#range", "30d");
  await pa.waitForFunction(() => document.querySelector("#trend-h").textContent === "Orders per day");
  assert.match(pa.url(), /range=30d/);
  await chartsMatchApi(pa, adm.token, { interval: "day", from: new Date(Date.now() - 30 * 86400e3).toISOString() });

  const v = (await axe(pa)).filter((x) => x.impact === "serious" || x.impact === "critical");
  assert.deepEqual(v, [], JSON.stringify(v, null, 1));
  assert.deepEqual(pa.errors, []);
  assert.deepEqual(pc.errors, []);
  await pa.context().close();
  await pc.context().close();
});

test("admin: 10,000 orders — table and counts right, scrolling smooth (frame times)", async () => {
  const c = await customer("bulk");
  sql(`SELECT count(*) FROM generate_series(1, 10000) g, LATERAL ot_create_order('${c.user.id}'::uuid, ('[{"productId":"bulk-' || g || '","qty":1}]')::jsonb, NULL, NULL)`);
  sql(`SELECT count(*) FROM (SELECT id FROM orders WHERE user_id = '${c.user.id}' LIMIT 2500) o, LATERAL ot_update_status(o.id, 'ACCEPTED'::order_status, NULL, NULL)`);
  const total = Number(sql("SELECT count(*) FROM orders"));
  const accepted = Number(sql("SELECT count(*) FROM orders WHERE status = 'ACCEPTED'"));
  const pa = await newPage(b, srv, "/admin");
  const t0 = Date.now();
  await signIn(pa, ADMIN);
  await pa.waitForFunction((n) => document.querySelector("#count").textContent === `${n} orders`, total, { timeout: 60000 });
  const loadMs = Date.now() - t0;
  await pa.waitForFunction((n) => document.querySelector("#counts tr[data-status=ACCEPTED] .num")?.textContent === String(n), accepted);
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  const a = await chartsMatchApi(pa, adm.token);
  assert.equal(a.delayed.length, 100, "2,500 orders ACCEPTED over 1 s ago: the list is capped (--search-delayed-max)");
  assert.equal(await pa.textContent("#delayed li:last-child"), "and 80 more");
  const domRows = await pa.locator("#rows tr[data-status]").count();
  assert.ok(domRows > 10 && domRows < 120, `windowed: ${domRows} rows in the DOM`);
  assert.equal(await pa.getAttribute("#grid", "aria-rowcount"), String(total + 1));

  // Wheel-like scrolling (120 px a frame) down the first 30,000 px, then
  // jumps across the whole table; every frame timed.
  const frames = await pa.evaluate(async () => {
    const wrap = document.querySelector("#grid-wrap");
    const times = [];
    let last = performance.now();
    const tick = async () => {
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      times.push(now - last);
      last = now;
    };
    for (let y = 0; y < 30000; y += 120) { wrap.scrollTop = y; await tick(); }
    for (let i = 0; i <= 40; i++) { wrap.scrollTop = (wrap.scrollHeight * i) / 40; await tick(); }
    return times.sort((a, b) => a - b);
  });
  const p50 = frames[Math.floor(frames.length * 0.5)], p95 = frames[Math.floor(frames.length * 0.95)];
  console.log(`10k orders: loaded in ${loadMs} ms; ${domRows} DOM rows; scroll frame p50 ${p50.toFixed(1)} ms p95 ${p95.toFixed(1)} ms max ${frames.at(-1).toFixed(1)} ms`);
  // 60 Hz is 16.7 ms a frame. The bounds leave room for a 2-core machine
  // shared with other work (software rendering, no GPU): most frames on
  // time, and no frame near the ~1 s a 10,000-row DOM takes to lay out.
  assert.ok(p50 < 34, `p50 frame ${p50} ms`);
  assert.ok(p95 < 250, `p95 frame ${p95} ms`);
  // The rows at the bottom are real rows with the right index.
  const lastIdx = await pa.$$eval("#rows tr[data-status]", (rs) => Number(rs.at(-1).getAttribute("aria-rowindex")));
  assert.equal(lastIdx, total + 1);
  await pa.screenshot({ path: ARTIFACTS + "admin-10k.png" });
  assert.deepEqual(pa.errors, []);
});

test("admin: CSV export is one stream position, even with changes while its pages come in", async () => {
  // After the 10,000-order test: about 100 pages of 100.
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  const c = await customer("csv");
  const pa = await newPage(b, srv, "/admin");
  // The export's second page waits until the test has changed the orders.
  let release, pagesAsOf = 0;
  const gate = new Promise((r) => { release = r; });
  await pa.route(/\/search\/orders\?.*asOf=/, async (route) => {
    if (pagesAsOf++ === 1) await gate;
    await route.continue();
  });
  await signIn(pa, ADMIN);
  const total = Number(sql("SELECT count(*) FROM orders"));
  await pa.waitForFunction((n) => document.querySelector("#count").textContent === `${n} orders`, total, { timeout: 60000 });
  // The oldest and the newest CREATED order: the last page and the first.
  const oldest = sql("SELECT id FROM orders WHERE status = 'CREATED' ORDER BY created_at, id LIMIT 1");
  const newest = sql("SELECT id FROM orders WHERE status = 'CREATED' ORDER BY created_at DESC, id DESC LIMIT 1");
  const download = pa.waitForEvent("download", { timeout: 60000 });
  await pa.click("#csv");
  await pa.waitForFunction(() => /Exporting… [1-9]/.test(document.querySelector("#csv-msg").textContent));
  for (const id of [oldest, newest]) assert.equal((await api(srv, "PATCH", `/orders/${id}/status`, { status: "ACCEPTED" }, adm.token)).status, 200);
  const added = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-late", qty: 1 }] }, c.token)).body;
  // The server has seen them committed (its stream position passed them).
  const last = Number(sql(`SELECT max(seq) FROM order_events WHERE order_id IN ('${oldest}', '${newest}', '${added.id}')`));
  for (const end = Date.now() + 5000; (await api(srv, "GET", "/search/orders?limit=1", undefined, adm.token)).body.freshness.seq < last; await sleep(50))
    assert.ok(Date.now() < end, "the server's stream position reaches the changes");
  release();
  const file = await download;
  const seq = Number(file.suggestedFilename().match(/^orders-seq-(\d+)\.csv$/)[1]);
  const lines = (await import("node:fs")).readFileSync(await file.path(), "utf8").trimEnd().split("\n");
  assert.equal(lines[0], "id,userId,status,version,createdAt,updatedAt,items,asOfSeq");
  const rows = new Map(lines.slice(1).map((l) => l.split(",")).map((f) => [f[0], f]));
  assert.ok(pagesAsOf > 50, `${pagesAsOf} pages`);
  assert.ok([...rows.values()].every((f) => Number(f[7]) === seq), "every row names the file's position");
  // The changes came after seq, and the file is exactly the event log's
  // state at seq: every order then, each in its status and version then.
  assert.ok(Number(sql(`SELECT min(seq) FROM order_events WHERE order_id IN ('${oldest}', '${newest}') AND version = 2`)) > seq);
  const truth = sql(`SELECT DISTINCT ON (order_id) order_id || ',' || status || ',' || version FROM order_events WHERE seq <= ${seq} ORDER BY order_id, version DESC`).split("\n");
  assert.equal(rows.size, truth.length);
  for (const t of truth) {
    const [id, status, version] = t.split(",");
    assert.deepEqual(rows.get(id)?.slice(2, 4), [status, version], id);
  }
  assert.equal(rows.get(oldest)[2], "CREATED");
  assert.equal(rows.get(newest)[2], "CREATED");
  assert.ok(!rows.has(added.id), "an order created during the export is not in it");
  assert.equal(await pa.textContent("#csv-msg"), `Exported ${truth.length} orders as of stream position ${seq}.`);
  assert.deepEqual(pa.errors, []);
  await pa.context().close();
});
