// What both pages share: the session (token kept in sessionStorage, renewed
// in band before it expires), the API client, the live connection (WebSocket
// with backoff and since=) and its indicator, and small DOM helpers.

export const STATUSES = ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED"];
export const FORWARD = ["CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED"];
export const LABEL = {
  CREATED: "Created", ACCEPTED: "Accepted", PREPARED: "Prepared",
  SHIPPED: "Shipped", DELIVERED: "Delivered", CANCELED: "Canceled",
};

const KEY = "ordertrack.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/* ---------------------------------------------------------------- DOM */

export function $(sel, root = document) { return root.querySelector(sel); }

// el("li", {class: "x", text: "..."}, child...): text is always set as text,
// never parsed as HTML, so server data cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// One formatter: toLocaleString builds a new one per call, which is most of
// the cost of drawing a window of table rows.
const TIME_FMT = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });
export function fmtTime(iso) {
  return iso ? TIME_FMT.format(new Date(iso)) : "";
}

/* ---------------------------------------------------------------- session */

export const session = {
  data: null,
  onExpired: null, // (message) => void: back to sign-in
  onRenewed: null, // (token) => void
  timer: 0,

  load() {
    try { this.data = JSON.parse(sessionStorage.getItem(KEY)); } catch { this.data = null; }
    if (this.data && this.data.expiresAt * 1000 <= Date.now()) this.data = null;
    if (this.data) this.schedule();
    return this.data;
  },
  save(d) {
    this.data = d;
    sessionStorage.setItem(KEY, JSON.stringify(d));
    this.schedule();
  },
  clear() {
    this.data = null;
    clearTimeout(this.timer);
    sessionStorage.removeItem(KEY);
  },
  get token() { return this.data && this.data.token; },
  get user() { return this.data && this.data.user; },

  // Renew at 80% of the remaining life (at most a minute before exp).
  schedule() {
    clearTimeout(this.timer);
    const left = this.data.expiresAt * 1000 - Date.now();
    const at = Math.max(1000, Math.max(left * 0.8, left - 60000));
    this.timer = setTimeout(() => this.renew(), at);
  },
  async renew() {
    try {
      const r = await api("POST", "/auth/refresh");
      this.save({ ...this.data, token: r.token, expiresAt: r.expiresAt });
      if (this.onRenewed) this.onRenewed(r.token);
    } catch (e) {
      if (!(e instanceof ApiError)) this.timer = setTimeout(() => this.renew(), 5000); // unreachable: retry
    }
  },
  expire(message) {
    this.clear();
    if (this.onExpired) this.onExpired(message);
  },
};

export async function api(method, path, body) {
  const headers = {};
  if (session.token) headers.Authorization = "Bearer " + session.token;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "unreachable", "The server cannot be reached. Retrying when you try again.");
  }
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = (data && data.error) || { code: "http_" + res.status, message: res.statusText };
    if (res.status === 401 && session.token && path !== "/auth/login") {
      session.expire("Your session has ended. Please sign in again.");
    }
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

export async function signIn(email, password) {
  const r = await api("POST", "/auth/login", { email, password });
  session.save({ token: r.token, expiresAt: r.expiresAt, user: r.user });
  return r.user;
}

/* ---------------------------------------------------------------- live connection */

// States shown to people: "live", "reconnecting", "offline". A change away
// from live is shown only when it lasts (DEBOUNCE_MS): a blip does not flash.
const DEBOUNCE_MS = 800;
const OFFLINE_AFTER = 4; // failed attempts in a row

export class Live {
  constructor({ onEvent, onState, onResumed }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResumed = onResumed || (() => {});
    this.seq = 0;
    this.ws = null;
    this.attempt = 0;
    this.shown = null;
    this.pending = 0;
    this.stopped = false;
    this.retryTimer = 0;
    window.addEventListener("online", () => { if (!this.ws && !this.stopped) { this.attempt = 0; this.connectNow(); } });
    // The browser knows the network is gone before a socket times out: say
    // so at once and reconnect (from the last seq) when it is back.
    window.addEventListener("offline", () => {
      if (this.stopped) return;
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close();
      this.attempt = Math.max(this.attempt, OFFLINE_AFTER - 1);
      this.retry();
    });
  }

  start(since) {
    this.seq = since;
    this.stopped = false;
    this.connectNow();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
  }

  // Renewed token: authenticate the open socket in band (no reconnect).
  reauth(token) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ action: "auth", token }));
  }

  state(s) {
    clearTimeout(this.pending);
    if (s === "live" || this.shown === null) {
      this.show(s);
      return;
    }
    this.pending = setTimeout(() => this.show(s), DEBOUNCE_MS);
  }

  show(s) {
    if (this.shown === s) return;
    this.shown = s;
    this.onState(s);
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    if (this.stopped || !session.token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/ws/orders?access_token=${encodeURIComponent(session.token)}&since=${this.seq}`;
    let ws;
    try { ws = new WebSocket(url); } catch { this.retry(); return; }
    this.ws = ws;
    ws.onopen = () => { this.attempt = 0; this.state("live"); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      if (msg.event === "order.updated") {
        if (msg.data.seq > this.seq) this.seq = msg.data.seq;
        this.onEvent(msg.data);
      } else if (msg.event === "resumed") {
        if (msg.data.lastSeq > this.seq) this.seq = msg.data.lastSeq;
        this.onResumed(msg.data);
      } else if (msg.event === "error" && msg.data && msg.data.code === "resume_truncated") {
        this.seq = msg.data.lastSeq;
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4401 || ev.code === 4403) {
        session.expire("Your session has ended. Please sign in again.");
        return;
      }
      this.retry();
    };
  }

  // Backoff 0.25 s doubling to 10 s, with jitter so a restarted server is not
  // hit by every page at once.
  retry() {
    this.attempt++;
    this.state(this.attempt >= OFFLINE_AFTER || !navigator.onLine ? "offline" : "reconnecting");
    const base = Math.min(10000, 250 * 2 ** Math.min(this.attempt - 1, 6));
    this.retryTimer = setTimeout(() => this.connectNow(), base / 2 + Math.random() * base / 2);
  }
}

export function indicator(node) {
  const text = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline — retrying" };
  return (s) => {
    node.dataset.state = s;
    node.textContent = text[s];
  };
}

/* ---------------------------------------------------------------- sign-in form */

export function bindSignIn(form, msgNode, onDone) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msgNode.textContent = "";
    const f = new FormData(form);
    try {
      const user = await signIn(String(f.get("email")), String(f.get("password")));
      form.reset();
      onDone(user);
    } catch (e) {
      msgNode.textContent = e.message;
    }
  });
}
