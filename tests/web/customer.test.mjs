// The customer page in a real Chromium against the real server and database.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, freePort, browser, newPage, api, login, sql, axe, email, sleep, ADMIN, ARTIFACTS } from "./harness.mjs";

let srv, b;
before(async () => {
  srv = await new Server(await freePort()).start();
  b = await browser();
});
after(async () => {
  if (b) await b.close();
  if (srv) await srv.stop();
});

async function register(page, who) {
  await page.fill("#register input[name=name]", who.name);
  await page.fill("#register input[name=email]", who.email);
  await page.fill("#register input[name=password]", who.password);
  await page.click("#register button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector('#conn[data-state="live"]');
}

const statusOf = (page, id) => page.getAttribute(`#order-${id}`, "data-status");

test("customer: register, order with field errors, live timeline through every status, isolation, reconnect, a11y", async () => {
  const alice = { name: "Alice Example", email: email("alice"), password: "alice-pass-1234" };
  const bob = { name: "Bob Example", email: email("bob"), password: "bob-pass-12345" };
  const pa = await newPage(b, srv);
  await register(pa, alice);
  const pb = await newPage(b, srv);
  await register(pb, bob);

  // The API's validation message lands beside the field it names.
  await pa.fill("#items input[name=productId]", "sku-1");
  await pa.fill("#items input[name=qty]", "0");
  await pa.click("#place button[type=submit]");
  const qty = pa.locator("#items input[name=qty]").first();
  await pa.waitForSelector('#items input[name=qty][aria-invalid="true"]');
  const errId = await qty.getAttribute("aria-describedby");
  assert.match(await pa.textContent("#" + errId), /integer/);
  assert.equal(await pa.locator("#orders > li").count(), 0);

  await pa.fill("#items input[name=qty]", "2");
  await pa.click("#add-item");
  await pa.locator("#items input[name=productId]").nth(1).fill("sku-2");
  await pa.click("#place button[type=submit]");
  await pa.waitForSelector("#orders > li");
  const id = (await pa.getAttribute("#orders > li", "id")).slice("order-".length);
  assert.equal(await statusOf(pa, id), "CREATED");
  assert.match(await pa.textContent(`#order-${id} .items-line`), /2 × sku-1, 1 × sku-2/);

  // The admin follows only the moves the server offers, forward first; the
  // customer's page shows each within a second, without reload.
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  let o = (await api(srv, "GET", `/orders/${id}`, undefined, adm.token)).body;
  const seen = [];
  await pa.evaluate(() => { window.__loads = performance.getEntriesByType("navigation").length; });
  while (o.nextStatuses.length) {
    const next = o.nextStatuses[0];
    const t0 = Date.now();
    const r = await api(srv, "PATCH", `/orders/${id}/status`, { status: next }, adm.token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await pa.waitForSelector(`#order-${id}[data-status="${next}"]`, { timeout: 1000 });
    seen.push([next, Date.now() - t0]);
    o = r.body;
  }
  assert.deepEqual(seen.map((s) => s[0]), ["ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"]);
  console.log("customer page latency per move (ms):", JSON.stringify(seen));
  assert.equal(await pa.locator(`#order-${id} .step.done`).count(), 4);
  assert.equal(await pa.getAttribute(`#order-${id} .step[data-step=DELIVERED]`, "aria-current"), "step");
  assert.equal(await pa.locator(`#orders > li`).count(), 1);
  await pa.screenshot({ path: ARTIFACTS + "customer.png", fullPage: true });

  // Bob never sees Alice's order.
  assert.equal(await pb.locator("#orders > li").count(), 0);
  assert.equal(await pb.locator(`#order-${id}`).count(), 0);

  // Server down while the order changes: the page says it is reconnecting,
  // then shows the change, once, without reload.
  const o2 = await pa.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem("ordertrack.session"));
    const r = await fetch("/orders", { method: "POST", headers: { Authorization: "Bearer " + s.token, "Content-Type": "application/json" }, body: JSON.stringify({ items: [{ productId: "sku-9", qty: 1 }] }) });
    return r.json();
  });
  await pa.waitForSelector(`#order-${o2.id}[data-status=CREATED]`, { timeout: 1000 });
  await srv.stop();
  await pa.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 3000 });
  assert.match(await pa.textContent("#conn"), /Reconnecting|Offline/);
  assert.equal(sql(`SELECT result FROM ot_update_status('${o2.id}'::uuid, 'ACCEPTED'::order_status, NULL, NULL)`), "ok");
  await pa.screenshot({ path: ARTIFACTS + "customer-reconnecting.png" });
  await srv.start();
  await pa.waitForSelector(`#order-${o2.id}[data-status=ACCEPTED]`, { timeout: 8000 });
  await pa.waitForSelector('#conn[data-state="live"]');
  assert.equal(await pa.locator(`#order-${o2.id}`).count(), 1, "no duplicate");
  assert.equal(await pa.locator("#orders > li").count(), 2);
  assert.equal(await pa.evaluate(() => performance.getEntriesByType("navigation").length), await pa.evaluate(() => window.__loads), "no reload");
  // A second change after the reconnect arrives live as usual.
  const adm2 = await login(srv, ADMIN.email, ADMIN.password);
  assert.equal((await api(srv, "PATCH", `/orders/${o2.id}/status`, { status: "CANCELED" }, adm2.token)).status, 200);
  await pa.waitForSelector(`#order-${o2.id}[data-status=CANCELED]`, { timeout: 1000 });

  const v = (await axe(pa)).filter((x) => x.impact === "serious" || x.impact === "critical");
  assert.deepEqual(v, [], JSON.stringify(v, null, 1));
  assert.deepEqual(pa.errors, []);
  assert.deepEqual(pb.errors, []);
  await pa.context().close();
  await pb.context().close();
});

test("customer: a bad session goes back to sign-in with a message", async () => {
  const p = await newPage(b, srv);
  await p.evaluate(() => sessionStorage.setItem("ordertrack.session", JSON.stringify({ token: "x.y.z", expiresAt: Date.now() / 1000 + 3600, user: { id: "00000000-0000-0000-0000-000000000000", name: "X" } })));
  await p.reload();
  await p.waitForSelector("#auth:not([hidden])");
  assert.match(await p.textContent("#notice"), /sign in again/i);
  await p.screenshot({ path: ARTIFACTS + "customer-signin.png" });
  const v = (await axe(p)).filter((x) => x.impact === "serious" || x.impact === "critical");
  assert.deepEqual(v, [], JSON.stringify(v, null, 1));
  await p.context().close();
});

test("customer: dark theme on a phone follows the system and stays accessible", async () => {
  const p = await newPage(b, srv, "/", { colorScheme: "dark", viewport: { width: 390, height: 844 }, isMobile: true });
  await p.waitForSelector("#auth:not([hidden])");
  const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(13, 17, 23)");
  // Nothing wider than the phone's screen.
  assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  await p.screenshot({ path: ARTIFACTS + "customer-phone-dark.png", fullPage: true });
  const v = (await axe(p)).filter((x) => x.impact === "serious" || x.impact === "critical");
  assert.deepEqual(v, [], JSON.stringify(v, null, 1));
  assert.deepEqual(p.errors, []);
  await p.context().close();
});
