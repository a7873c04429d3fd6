// Shared by the browser tests: the server (spawned here so a test can
// restart it), Chromium through playwright-core, SQL through psql, and
// small waits. Everything stays on loopback.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, openSync } from "node:fs";
import { chromium } from "playwright-core";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const ARTIFACTS = ROOT + "build/web-artifacts/";
const DB = process.env.OT_DATABASE_URL;
export const ADMIN = { email: process.env.OT_ADMIN_EMAIL, password: process.env.OT_ADMIN_PASSWORD };

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
    s.on("error", rej);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor(port, args = []) {
    this.port = port;
    this.args = args;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
  }
  async start() {
    mkdirSync(ARTIFACTS, { recursive: true });
    const log = openSync(`${ARTIFACTS}server-${this.port}.log`, "a");
    const env = { ...process.env, DATABASE_URL: DB, JWT_SECRET: "web-test-secret-0123456789abcdef0123456789" };
    delete env.REDIS_URL;
    this.proc = spawn(process.env.OT_BIN, ["serve", "--listen", `127.0.0.1:${this.port}`, "--workers", "1", ...this.args],
      { env, stdio: ["ignore", log, log], cwd: ROOT });
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(this.url + "/readyz");
        if (r.ok) return this;
      } catch { /* not yet */ }
      await sleep(50);
    }
    throw new Error("server did not become ready");
  }
  async stop() {
    // This process, not this.proc: a start() after a quick stop replaces
    // this.proc, and a backstop still armed would kill the new server.
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const done = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const backstop = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await done;
    clearTimeout(backstop);
  }
}

export function sql(query) {
  return execFileSync("psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", DB, "-c", query], { encoding: "utf8" }).trim();
}

export async function browser() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// A page that fails its test on any console error or CSP violation.
export async function newPage(b, srv, path = "/", opts = {}, setup = null) {
  const ctx = await b.newContext({ viewport: { width: 1200, height: 900 }, ...opts });
  const page = await ctx.newPage();
  if (setup) await setup(page);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/WebSocket|Failed to load resource|ERR_CONNECTION_REFUSED/.test(m.text())) page.errors.push(m.text()); });
  await page.goto(srv.url + path);
  return page;
}

export async function api(srv, method, path, body, token) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(srv.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

export async function login(srv, email, password) {
  const r = await api(srv, "POST", "/auth/login", { email, password });
  if (r.status !== 200) throw new Error("login failed: " + JSON.stringify(r.body));
  return r.body;
}

export async function axe(page) {
  // Evaluated over the DevTools protocol: an injected <script> would be
  // (rightly) refused by the page's CSP.
  const { readFileSync } = await import("node:fs");
  await page.evaluate(readFileSync(ROOT + "node_modules/axe-core/axe.min.js", "utf8"));
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
}

let uniq = 0;
export function email(tag) { return `${tag}-${process.pid}-${Date.now()}-${uniq++}@example.com`; }
