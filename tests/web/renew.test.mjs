// Token renewal in band: with 3-second tokens the server closes a socket
// whose token has expired (4401), so a page that stays live over several
// lifetimes on one socket, and still gets changes, renewed its token
// (POST /auth/refresh) and re-authenticated the open socket ({"action":"auth"}).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, freePort, browser, newPage, api, login, email, sleep, ADMIN } from "./harness.mjs";

let srv, b;
before(async () => { srv = await new Server(await freePort(), ["--jwt-ttl-s", "3"]).start(); b = await browser(); });
after(async () => { if (b) await b.close(); if (srv) await srv.stop(); });

test("customer: the token is renewed before it expires, on the same socket, and changes keep arriving", async () => {
  const who = { name: "Rene", email: email("rene"), password: "rene-pass-12345" };
  assert.equal((await api(srv, "POST", "/auth/register", who)).status, 201);
  const c = await login(srv, who.email, who.password);
  const o = (await api(srv, "POST", "/orders", { items: [{ productId: "sku-r", qty: 1 }] }, c.token)).body;
  const sockets = [];
  const p = await newPage(b, srv, "/", {}, (page) => page.on("websocket", (ws) => sockets.push(ws.url())));
  await p.fill("#signin input[name=email]", who.email);
  await p.fill("#signin input[name=password]", who.password);
  await p.click("#signin button[type=submit]");
  await p.waitForSelector(`#order-${o.id}[data-status=CREATED]`);
  await p.waitForSelector('#conn[data-state="live"]');
  const token = () => p.evaluate(() => JSON.parse(sessionStorage.getItem("ordertrack.session")).token);
  const first = await token();
  await sleep(7000); // more than two lifetimes
  assert.notEqual(await token(), first, "renewed");
  assert.equal(sockets.length, 1, `one socket all along: ${sockets.length}`);
  assert.equal(await p.getAttribute("#conn", "data-state"), "live");
  assert.equal(await p.locator("#auth:not([hidden])").count(), 0, "still signed in");
  // The first token is dead by now, the renewed one works, and the old
  // socket still delivers.
  assert.equal((await api(srv, "GET", `/orders/${o.id}`, undefined, first)).status, 401);
  assert.equal((await api(srv, "GET", `/orders/${o.id}`, undefined, await token())).status, 200);
  const adm = await login(srv, ADMIN.email, ADMIN.password);
  assert.equal((await api(srv, "PATCH", `/orders/${o.id}/status`, { status: "ACCEPTED" }, adm.token)).status, 200);
  await p.waitForSelector(`#order-${o.id}[data-status=ACCEPTED]`, { timeout: 1000 });
  assert.equal(sockets.length, 1);
  assert.deepEqual(p.errors, []);
  await p.context().close();
});
