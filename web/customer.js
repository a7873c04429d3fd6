// The customer page: sign in or register, place orders, follow them live.
import { $, el, api, session, signIn, bindSignIn, Live, indicator, fmtTime, FORWARD, LABEL, ApiError } from "./common.js";

const orders = new Map(); // id -> {order, times: {STATUS: iso}}
const notice = $("#notice");
const live = new Live({ onEvent, onState: indicator($("#conn")) });

session.onExpired = (msg) => { live.stop(); showAuth(msg); };
session.onRenewed = (token) => live.reauth(token);

function showAuth(message) {
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#conn").hidden = true;
  $("#auth").hidden = false;
  notice.textContent = message || "";
  $("#signin input[name=email]").focus();
}

async function showApp() {
  $("#auth").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
  $("#conn").hidden = false;
  $("#who-name").textContent = session.user.name || session.user.email;
  if (!$("#items").children.length) addItem();
  await loadOrders();
}

// The snapshot, then the socket from exactly its seq (events it already
// reflects are dropped by version in onEvent).
async function loadOrders() {
  for (;;) {
    try {
      const page = await api("GET", `/orders/user/${session.user.id}?limit=100`);
      notice.textContent = "";
      orders.clear();
      $("#orders").replaceChildren();
      for (const o of page.orders.slice().reverse()) upsert(o, o.updatedAt);
      live.start(page.seq);
      return;
    } catch (e) {
      if (e.status === 401) return;
      notice.textContent = e.status === 0 ? "The server cannot be reached; retrying…" : e.message;
      await new Promise((r) => setTimeout(r, 2000));
      if (!session.token) return;
    }
  }
}

function onEvent(ev) {
  const cur = orders.get(ev.orderId);
  if (cur && ev.version <= cur.order.version) return; // already shown: no duplicate
  const o = cur ? { ...cur.order } : { id: ev.orderId, userId: ev.userId, items: ev.payload && ev.payload.items, createdAt: ev.timestamp };
  o.status = ev.status;
  o.version = ev.version;
  o.updatedAt = ev.timestamp;
  o.nextStatuses = ev.nextStatuses;
  upsert(o, ev.timestamp);
}

function upsert(o, at) {
  let rec = orders.get(o.id);
  if (!rec) {
    rec = { order: o, times: { CREATED: o.createdAt } };
    orders.set(o.id, rec);
  }
  rec.order = o;
  rec.times[o.status] = rec.times[o.status] || at;
  render(rec);
}

function render(rec) {
  const o = rec.order;
  const id = "order-" + o.id;
  const steps = o.status === "CANCELED"
    ? FORWARD.filter((s) => s === "CREATED" || rec.times[s]).concat(["CANCELED"])
    : FORWARD;
  const at = steps.indexOf(o.status);
  const items = (o.items || []).map((i) => `${i.qty} × ${i.productId}`).join(", ");
  const li = el("li", { id, class: "order", "data-status": o.status, "data-version": o.version },
    el("h3", {}, el("span", { text: "Order " + o.id.slice(0, 8) }), " ",
      el("span", { class: "badge s-" + o.status, text: LABEL[o.status] })),
    el("p", { class: "items-line", text: items }),
    el("ol", { class: "timeline", "aria-label": "Status timeline" },
      ...steps.map((s, i) => {
        const state = i < at ? "done" : i === at ? "current" : "pending";
        return el("li", { class: "step " + state, "data-step": s, "aria-current": i === at ? "step" : null },
          el("span", { class: "mark", "aria-hidden": "true", text: state === "done" ? "✓" : state === "current" ? "●" : "○" }),
          el("span", { class: "name", text: LABEL[s] }),
          el("span", { class: "sr", text: state === "done" ? " (done)" : state === "current" ? " (current)" : " (pending)" }),
          el("time", { text: i <= at && rec.times[s] ? fmtTime(rec.times[s]) : "" }));
      })));
  const old = document.getElementById(id);
  if (old) old.replaceWith(li);
  else $("#orders").prepend(li);
  $("#orders-empty").hidden = orders.size > 0;
}

/* ---------------------------------------------------------------- place an order */

let itemSeq = 0;
function addItem() {
  const n = itemSeq++;
  const row = el("li", { class: "item" },
    el("label", {}, "Product ", el("input", { name: "productId", required: true, "aria-describedby": `err-p${n}` })),
    el("label", {}, "Quantity ", el("input", { name: "qty", type: "number", min: "1", value: "1", required: true, inputmode: "numeric", "aria-describedby": `err-q${n}` })),
    el("button", { type: "button", class: "remove", "aria-label": "Remove item", text: "Remove", onclick: () => { row.remove(); } }),
    el("span", { class: "err field-err", id: `err-p${n}` }),
    el("span", { class: "err field-err", id: `err-q${n}` }));
  $("#items").append(row);
  return row;
}

// "items[1].qty: must be ..." -> the message next to that field.
function showFieldError(message) {
  const m = /^items\[(\d+)\](?:\.(productId|qty))?: (.*)$/.exec(message);
  const rows = [...$("#items").children];
  if (m && rows[+m[1]]) {
    const row = rows[+m[1]];
    const field = m[2] || "productId";
    const input = row.querySelector(`input[name=${field}]`);
    input.setAttribute("aria-invalid", "true");
    document.getElementById(input.getAttribute("aria-describedby")).textContent = m[3];
    input.focus();
    return;
  }
  $("#place-msg").textContent = message;
}

$("#add-item").addEventListener("click", () => addItem().querySelector("input").focus());
$("#place").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#place-msg").textContent = "";
  $("#place-msg").className = "err";
  for (const e of document.querySelectorAll("#items .field-err")) e.textContent = "";
  for (const e of document.querySelectorAll("#items [aria-invalid]")) e.removeAttribute("aria-invalid");
  const items = [...$("#items").children].map((row) => {
    const q = row.querySelector("input[name=qty]").value.trim();
    return { productId: row.querySelector("input[name=productId]").value, qty: /^-?\d+$/.test(q) ? Number(q) : q };
  });
  try {
    const o = await api("POST", "/orders", { items });
    upsert(o, o.createdAt);
    $("#items").replaceChildren();
    addItem();
    $("#place-msg").textContent = "Order placed.";
    $("#place-msg").className = "msg-ok";
  } catch (e) {
    if (e instanceof ApiError && e.code === "invalid_field") showFieldError(e.message);
    else $("#place-msg").textContent = e.message;
  }
});

/* ---------------------------------------------------------------- sign in / register / out */

bindSignIn($("#signin"), $("#signin-msg"), () => showApp());
$("#register").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $("#register-msg").textContent = "";
  try {
    await api("POST", "/auth/register", { name: f.get("name"), email: f.get("email"), password: f.get("password") });
    await signIn(String(f.get("email")), String(f.get("password")));
    ev.target.reset();
    showApp();
  } catch (e) {
    $("#register-msg").textContent = e.message;
  }
});
$("#signout").addEventListener("click", () => { live.stop(); session.clear(); orders.clear(); $("#orders").replaceChildren(); showAuth("Signed out."); });

if (session.load()) showApp();
else showAuth();
