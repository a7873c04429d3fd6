// The network cut (not the server): Chromium's offline emulation drops the
// page's socket and its requests while the admin changes the order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, freePort, browser, newPage, api, login, email, sleep, ADMIN, ARTIFACTS } from "./harness.mjs";

let srv, b;
before(async () => { srv = await new Server(await freePort()).start(); b = await browser(); });
after(async () => { if (b) await b.close(); if (srv) await srv.stop(); });

test("customer: network cut for a few seconds -> reconnecting, then the change once, no reload", async () => {
  const who = { name: "Dora", email: email("dora"), password: "dora-pass-12345" };
  assert.equal((await api(srv, "POST", "/auth/register", who)).status, 201);
  const c = await login(srv, who.email, who.password);
  const o = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-n", qty: 1 }] }, c.token)).body;
  const p = await newPage(b, srv, "/");
  await p.fill("#signin input[name=email]", who.email);
  await p.fill("#signin input[name=password]", who.password);
  await p.click("#signin button[type=submit]");
  await p.waitForSelector(`#order-${o.id}[data-status=CREATED]`);
  await p.waitForSelector('#conn[data-state="live"]');
  const loads = await p.evaluate(() => performance.getEntriesByType("navigation").length);
  await p.context().setOffline(true);
  await p.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 5000 });
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  assert.equal((await api(srv, "PATCH", `/orders/${o.id}/status`, { status: "ACCEPTED" }, adm.token)).status, 200);
  await sleep(2000);
  assert.equal(await p.getAttribute(`#order-${o.id}`, "data-status"), "CREATED", "nothing arrives while cut");
  await p.screenshot({ path: ARTIFACTS + "customer-netcut.png" });
  await p.context().setOffline(false);
  await p.waitForSelector(`#order-${o.id}[data-status=ACCEPTED]`, { timeout: 15000 });
  await p.waitForSelector('#conn[data-state="live"]');
  assert.equal(await p.locator(`#order-${o.id}`).count(), 1, "no duplicate");
  assert.equal(await p.evaluate(() => performance.getEntriesByType("navigation").length), loads, "no reload");
  assert.deepEqual(p.errors, []);
});
