// docs/BENCHMARKS.md "Dashboards": commit -> admin DOM latency for 1,000
// status updates sent at 100/s, and the admin page's frame times while they
// arrive with 10,000 orders loaded. Run by scripts/bench-web.sh (it sets up
// the database like tests/web/run.sh). Prints one JSON line.
import { Server, freePort, browser, login, sql, ADMIN, sleep } from "./harness.mjs";

const N_ORDERS = 10000, N_UPDATES = 1000, RATE = 100;
// One driver at 100/s from one address and one admin: lift the per-IP and
// per-user request limits, as the integration load tests do.
const NO_LIMITS = ["--rate-ip", "1000000", "--rate-ip-burst", "1000000", "--rate-user", "1000000", "--rate-user-burst", "1000000"];
const srv = await new Server(await freePort(), NO_LIMITS).start();
const b = await browser();
try {
  const user = sql(`INSERT INTO users (email, name, password_hash, role) VALUES ('bench-${Date.now()}@example.com', 'Bench', 'x', 'CUSTOMER') RETURNING id`).split("\n")[0];
  sql(`SELECT count(*) FROM generate_series(1, ${N_ORDERS}) g, LATERAL ot_create_order('${user}'::uuid, ('[{"productId":"b-' || g || '","qty":1}]')::jsonb, NULL, NULL)`);
  // 250 orders x 4 forward moves; all on screen (a tall viewport), so each
  // update has a DOM row to land in.
  const ids = sql(`SELECT id FROM orders ORDER BY created_at DESC, id DESC LIMIT ${N_UPDATES / 4}`).split("\n");
  // BENCH_VIEW_H: a shorter window observes only the updates of the rows it
  // shows (observed < 1000), but frames as cheap as an ordinary screen's.
  const viewH = Number(process.env.BENCH_VIEW_H || 16000);
  const ctx = await b.newContext({ viewport: { width: 1200, height: viewH } });
  const page = await ctx.newPage();
  await page.goto(srv.url + "/admin");
  await page.fill("#signin input[name=email]", ADMIN.email);
  await page.fill("#signin input[name=password]", ADMIN.password);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction((n) => document.querySelector("#count")?.textContent === `${n} orders`, N_ORDERS, { timeout: 120000 });
  await page.waitForSelector(`#row-${ids[0]}`);
  if (viewH >= 16000) await page.waitForSelector(`#row-${ids.at(-1)}`);
  await page.evaluate(() => {
    window.__lat = [];
    window.__frames = [];
    const seen = new Map();
    new MutationObserver(() => {
      const now = Date.now();
      for (const tr of document.querySelectorAll("#rows tr[data-updated]")) {
        const key = tr.id + tr.dataset.status;
        if (seen.has(key)) continue;
        seen.set(key, 1);
        if (tr.dataset.status !== "CREATED") window.__lat.push(now - Date.parse(tr.dataset.updated));
      }
    }).observe(document.querySelector("#rows"), { childList: true });
    let last = performance.now();
    const tick = (t) => { window.__frames.push(t - last); last = t; if (!window.__stop) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  const moves = ["ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"];
  const t0 = Date.now();
  const inflight = [];
  for (let i = 0; i < N_UPDATES; i++) {
    const due = t0 + (i * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    const id = ids[i % ids.length], status = moves[Math.floor(i / ids.length)];
    inflight.push(fetch(`${srv.url}/orders/${id}/status`, { method: "PATCH", headers: { Authorization: "Bearer " + adm.token, "Content-Type": "application/json" }, body: JSON.stringify({ status }) }).then((r) => r.status));
  }
  const codes = await Promise.all(inflight);
  await page.waitForFunction((n) => window.__lat.length >= n, N_UPDATES, { timeout: 30000 }).catch(() => {});
  // The tall window's own frame times: a latency phase whose frames take
  // longer than 16.7 ms puts that time into every figure it measures.
  const r = await page.evaluate(() => ({ lat: window.__lat.slice(), tall: window.__frames.slice() }));
  // Frame times at an ordinary window size while another 1,000 updates
  // arrive at 100/s (to orders further down: the table updates in place or
  // off screen, the counts chart follows).
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.evaluate(() => { window.__frames.length = 0; });
  const more = sql(`SELECT id FROM orders ORDER BY created_at DESC, id DESC OFFSET ${N_UPDATES / 4} LIMIT ${N_UPDATES}`).split("\n");
  const t1 = Date.now();
  const inflight2 = [];
  for (let i = 0; i < N_UPDATES; i++) {
    const due = t1 + (i * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    inflight2.push(fetch(`${srv.url}/orders/${more[i]}/status`, { method: "PATCH", headers: { Authorization: "Bearer " + adm.token, "Content-Type": "application/json" }, body: JSON.stringify({ status: "ACCEPTED" }) }).then((x) => x.status));
  }
  codes.push(...(await Promise.all(inflight2)));
  await sleep(500);
  r.frames = await page.evaluate(() => { window.__stop = true; return window.__frames.slice(); });
  const pct = (a, p) => { const s = a.slice().sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };
  console.log(JSON.stringify({
    view_h: viewH, updates: N_UPDATES, rate: RATE, ok: codes.filter((c) => c === 200).length, sent: codes.length, observed: r.lat.length,
    latency_ms: { p50: pct(r.lat, 0.5), p99: pct(r.lat, 0.99), max: pct(r.lat, 1) },
    tall_frame_ms: { n: r.tall.length, p50: +pct(r.tall, 0.5).toFixed(1), p95: +pct(r.tall, 0.95).toFixed(1) },
    frame_ms: { n: r.frames.length, p50: +pct(r.frames, 0.5).toFixed(1), p95: +pct(r.frames, 0.95).toFixed(1), p99: +pct(r.frames, 0.99).toFixed(1) },
  }));
} finally {
  await b.close();
  await srv.stop();
}
