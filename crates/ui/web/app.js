// clawgate's browser UI: one same-origin WebSocket to the gateway (protocol v4), a browser
// Ed25519 device identity, and the Chat screen. No framework, no build step.

const BASE = document.documentElement.dataset.basePath || "";
const TOKEN_KEY = "clawgate.token"; // sessionStorage: the shared secret never outlives the tab
const DEVICE_KEY = "clawgate.device.v1"; // localStorage: the device keypair (JWK)
const DEVICE_TOKENS_KEY = "clawgate.deviceTokens.v1"; // localStorage: gateway -> device token
const SESSION_KEY = "clawgate.session";
const MAIN_SESSION = "agent:main:main";
const CLIENT = {
  id: "openclaw-control-ui",
  mode: "webchat",
  version: "clawgate-ui",
  platform: navigator.platform || "web",
};
const ROLE = "operator";
const SCOPES = ["operator.read", "operator.write", "operator.approvals"];
const BACKOFF_FIRST_MS = 800;
const BACKOFF_MAX_MS = 15000;
const REQUEST_TIMEOUT_MS = 30000;

const $ = (id) => document.getElementById(id);
const gatewayKey = `${location.host}${BASE}`;

// ---- small helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.filter((p) => p && p.type === "text").map((p) => p.text).join("");
}

function readJson(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) || "null");
  } catch {
    return null;
  }
}

// ---- the token: #token= once, then sessionStorage only -----------------------------------

function takeTokenFromUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

const sharedToken = () => sessionStorage.getItem(TOKEN_KEY) || "";

function deviceTokens() {
  return readJson(localStorage, DEVICE_TOKENS_KEY) || {};
}

function storeDeviceToken(deviceId, token) {
  const all = deviceTokens();
  if (token) all[gatewayKey] = { deviceId, token };
  else delete all[gatewayKey];
  localStorage.setItem(DEVICE_TOKENS_KEY, JSON.stringify(all));
}

// ---- the device identity: Ed25519 through WebCrypto ---------------------------------------

async function loadDevice() {
  if (!window.isSecureContext || !crypto.subtle) return null;
  const stored = readJson(localStorage, DEVICE_KEY);
  if (stored && stored.privateJwk) {
    try {
      const key = await crypto.subtle.importKey("jwk", stored.privateJwk, { name: "Ed25519" }, false, ["sign"]);
      return { id: stored.id, publicKey: stored.publicKey, key };
    } catch {
      // A key this browser cannot read back: make a new identity below.
    }
  }
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const privateJwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const id = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", raw)));
  const publicKey = b64url(raw);
  localStorage.setItem(DEVICE_KEY, JSON.stringify({ version: 1, id, publicKey, privateJwk }));
  return { id, publicKey, key: pair.privateKey };
}

// The v3 payload the gateway verifies:
// v3|deviceId|clientId|mode|role|scopes|signedAt|token|nonce|platform|deviceFamily
async function signConnect(device, nonce, token) {
  const signedAt = Date.now();
  const payload = [
    "v3", device.id, CLIENT.id, CLIENT.mode, ROLE, SCOPES.join(","), signedAt, token, nonce,
    CLIENT.platform.trim().toLowerCase(), "",
  ].join("|");
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, device.key, new TextEncoder().encode(payload));
  return { id: device.id, publicKey: device.publicKey, signature: b64url(new Uint8Array(sig)), signedAt, nonce };
}

// ---- the connection ------------------------------------------------------------------

class RpcError extends Error {
  constructor(error) {
    super((error && error.message) || "request failed");
    this.code = error && error.code;
    this.details = (error && error.details) || {};
  }
}

class Gateway {
  constructor(handlers) {
    this.handlers = handlers;
    this.pending = new Map();
    this.nextId = 1;
    this.backoff = BACKOFF_FIRST_MS;
    this.retryTimer = null;
    this.ws = null;
    this.hello = null;
    this.halted = false; // set by a failure only the operator can fix (wrong token…)
    this.awaitingApproval = false; // the last connect was answered "pairing required"
  }

  start() {
    this.halted = false;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
    this.open();
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${BASE || "/"}`);
    this.ws = ws;
    this.hello = null;
    this.handlers.status("connecting…", "");
    ws.onmessage = (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onFrame(ws, frame).catch((err) => this.handlers.failure(err));
    };
    ws.onclose = (e) => {
      if (this.ws === ws) this.onClose(e);
    };
  }

  async onFrame(ws, frame) {
    if (frame.type === "event" && frame.event === "connect.challenge") {
      await this.connect(ws, frame.payload && frame.payload.nonce);
    } else if (frame.type === "res") {
      const waiter = this.pending.get(frame.id);
      if (!waiter) return;
      this.pending.delete(frame.id);
      clearTimeout(waiter.timer);
      if (frame.ok) waiter.resolve(frame.payload);
      else waiter.reject(new RpcError(frame.error));
    } else if (frame.type === "event") {
      this.handlers.event(frame.event, frame.payload || {});
    }
  }

  send(ws, method, params) {
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError({ message: `${method}: no answer from the gateway in ${REQUEST_TIMEOUT_MS / 1000} s` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ type: "req", id, method, params }));
    });
  }

  request(method, params) {
    if (!this.hello || !this.ws) {
      return Promise.reject(new RpcError({ message: "not connected to the gateway yet" }));
    }
    return this.send(this.ws, method, params);
  }

  async connect(ws, nonce) {
    const device = await this.handlers.device();
    const token = sharedToken();
    const stored = device && deviceTokens()[gatewayKey];
    const deviceToken = stored && stored.deviceId === device.id ? stored.token : "";
    const auth = {};
    if (token) {
      auth.token = token;
      auth.password = token;
    }
    if (deviceToken) auth.deviceToken = deviceToken;
    const params = {
      minProtocol: 4,
      maxProtocol: 4,
      client: { ...CLIENT, instanceId: randomId() },
      role: ROLE,
      scopes: SCOPES,
      caps: ["tool-events"],
      auth,
      userAgent: navigator.userAgent,
      locale: navigator.language,
    };
    if (device && nonce) params.device = await signConnect(device, nonce, token || deviceToken);
    let hello;
    try {
      hello = await this.send(ws, "connect", params);
    } catch (err) {
      if (err.details && err.details.code === "AUTH_DEVICE_TOKEN_MISMATCH") storeDeviceToken(null, null);
      this.handlers.refused(err, this);
      return;
    }
    this.hello = hello;
    this.awaitingApproval = false;
    this.backoff = BACKOFF_FIRST_MS;
    if (device && hello.auth && hello.auth.deviceToken) storeDeviceToken(device.id, hello.auth.deviceToken);
    this.handlers.connected(hello, Boolean(device));
  }

  onClose(e) {
    for (const waiter of this.pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new RpcError({ message: "the connection to the gateway closed" }));
    }
    this.pending.clear();
    const wasConnected = Boolean(this.hello);
    this.hello = null;
    this.ws = null;
    this.handlers.disconnected(wasConnected, e);
    if (this.halted) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    const retry = `${(delay / 1000).toFixed(1)} s`;
    if (this.awaitingApproval) this.handlers.status(`waiting for approval · asking again in ${retry}`, "");
    else this.handlers.status(`reconnecting in ${retry}…`, "bad");
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  halt() {
    this.halted = true;
  }
}

// ---- notices: every failure with its fix -----------------------------------------------

function showNotice(title, body, kind = "") {
  const n = $("notice");
  n.className = `notice ${kind}`;
  n.replaceChildren(el("strong", {}, title), ...body);
  n.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
}

function refusalNotice(err, gw) {
  const d = err.details || {};
  const code = d.code || "";
  if (code === "PAIRING_REQUIRED") {
    gw.awaitingApproval = true;
    const command = `clawgate devices approve ${d.requestId}`;
    showNotice(
      "This browser needs the gateway's approval",
      [
        `Request ${d.requestId}. On the gateway host run `,
        el("code", { id: "approve-command" }, command),
        " — this page connects by itself once it is approved.",
      ],
      "wait",
    );
    return;
  }
  gw.halt();
  if (code === "CONTROL_UI_ORIGIN_NOT_ALLOWED") {
    showNotice("This page's origin is not allowed", [
      `The gateway refused ${location.origin}. Add it to `,
      el("code", {}, "gateway.controlUi.allowedOrigins"),
      " in the gateway's config (or open the page from the gateway host), then reload.",
    ]);
  } else if (code.startsWith("AUTH_") || /unauthorized|auth/i.test(err.message)) {
    showNotice("The gateway did not accept the token", [
      `${err.message}. The token is `,
      el("code", {}, "gateway.auth.token"),
      " in the gateway's config (or the file gateway.token in its state dir). Run ",
      el("code", {}, "clawgate dashboard"),
      " on the gateway host for a link that carries it, or paste it under Settings.",
    ]);
    openSettings(true);
  } else if (code === "DEVICE_IDENTITY_REQUIRED") {
    showNotice("This browser has no device identity", [
      "The page needs a secure context (https://, or http://localhost) for its Ed25519 key. Open it through ",
      el("code", {}, "clawgate dashboard"),
      ", an SSH tunnel to localhost, or Tailscale Serve.",
    ]);
  } else {
    showNotice("The gateway refused the connection", [`${err.message}${d.code ? ` (${d.code})` : ""}`]);
  }
  $("status").textContent = "not connected";
  $("status").className = "status bad";
}

function openSettings(open) {
  $("settings").hidden = !open;
  $("settings-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("token").focus();
}

// ---- the chat screen -------------------------------------------------------------------

const chat = {
  session: localStorage.getItem(SESSION_KEY) || MAIN_SESSION,
  runs: new Map(), // runId -> assistant bubble
  tools: new Map(), // toolCallId -> card
  approvals: new Map(), // approval id -> card
  activeRun: null,
};

function scrollToEnd() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

function addBubble(role, text, extra = "") {
  const node = el("div", { class: `msg ${role} ${extra}`.trim() }, el("span", { class: "meta" }, role), text);
  $("log").append(node);
  scrollToEnd();
  return node;
}

function setBubbleText(node, text) {
  node.replaceChildren(node.firstChild, text);
  scrollToEnd();
}

function formatArgs(args) {
  if (!args || typeof args !== "object") return String(args ?? "");
  if (typeof args.command === "string") return args.command;
  if (Array.isArray(args.command)) return args.command.join(" ");
  return JSON.stringify(args);
}

function toolCard(id, name, args) {
  let card = chat.tools.get(id);
  if (card) return card;
  const state = el("span", { class: "state" }, "running…");
  const node = args && (args.node || args.nodeId);
  card = el(
    "article",
    { class: "card tool", "data-tool-call-id": id },
    el("header", {}, el("b", {}, name), node ? el("span", {}, `node ${node}`) : null, state),
    el("pre", { class: "command" }, formatArgs(args)),
  );
  card.state = state;
  chat.tools.set(id, card);
  $("log").append(card);
  scrollToEnd();
  return card;
}

function finishToolCard(card, text, isError) {
  card.state.textContent = isError ? "error" : "done";
  card.state.className = `state ${isError ? "error" : "done"}`;
  card.append(el("pre", { class: `output${isError ? " error" : ""}` }, text || "(no output)"));
  scrollToEnd();
}

function renderHistory(messages) {
  chat.runs.clear();
  chat.tools.clear();
  const log = $("log");
  log.replaceChildren();
  if (!messages.length) log.append(el("p", { class: "empty" }, "No messages yet in this session."));
  for (const m of messages) {
    if (m.role === "user") addBubble("user", textOf(m.content));
    else if (m.role === "assistant") {
      const text = textOf(m.content);
      if (text) addBubble("assistant", text);
      if (m.errorMessage) addBubble("assistant", m.errorMessage, "error");
      for (const part of Array.isArray(m.content) ? m.content : []) {
        if (part.type === "toolCall") toolCard(part.id, part.name, part.arguments);
      }
    } else if (m.role === "toolResult") {
      finishToolCard(toolCard(m.toolCallId, m.toolName, null), textOf(m.content), m.isError);
    }
  }
  scrollToEnd();
}

function setRunning(runId) {
  chat.activeRun = runId;
  $("stop").disabled = !runId;
}

function onChatEvent(p) {
  if (p.sessionKey !== chat.session) return;
  let bubble = chat.runs.get(p.runId);
  const text = p.message ? textOf(p.message.content) : "";
  if (p.state === "delta") {
    $("log").querySelector(".empty")?.remove();
    if (!bubble) {
      bubble = addBubble("assistant", "", "streaming");
      chat.runs.set(p.runId, bubble);
    }
    setBubbleText(bubble, text);
    setRunning(p.runId);
  } else if (p.state === "final" || p.state === "aborted") {
    if (!bubble && text) bubble = addBubble("assistant", text);
    if (bubble) {
      bubble.classList.remove("streaming");
      if (text) setBubbleText(bubble, text);
    }
    if (p.state === "aborted") {
      // "rpc" is a Stop from an operator (this page or another); other reasons say more.
      const why = p.stopReason && p.stopReason !== "rpc" ? ` (${p.stopReason})` : "";
      addBubble("assistant", `stopped${why}`, "error");
    }
    chat.runs.delete(p.runId);
    if (chat.activeRun === p.runId) setRunning(null);
  } else if (p.state === "error") {
    bubble?.classList.remove("streaming");
    addBubble("assistant", p.errorMessage || "the run failed", "error");
    chat.runs.delete(p.runId);
    if (chat.activeRun === p.runId) setRunning(null);
  }
}

function onAgentEvent(p) {
  if (p.sessionKey !== chat.session || p.stream !== "tool" || !p.data) return;
  const d = p.data;
  if (d.phase === "start") {
    // A new answer follows the tool: its text starts in a new bubble.
    chat.runs.get(p.runId)?.classList.remove("streaming");
    chat.runs.delete(p.runId);
    toolCard(d.toolCallId, d.name, d.args);
  } else if (d.phase === "result") {
    finishToolCard(toolCard(d.toolCallId, d.name, null), textOf(d.result && d.result.content), d.isError);
  }
}

function onApprovalRequested(p, gw) {
  const req = p.request || {};
  if (req.sessionKey && req.sessionKey !== chat.session) return;
  const decide = (decision) => async () => {
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      await gw.request("exec.approval.resolve", { id: p.id, decision });
    } catch (err) {
      for (const b of card.querySelectorAll("button")) b.disabled = false;
      card.append(el("p", { class: "state error" }, `${err.message} (approving needs the operator.approvals scope)`));
    }
  };
  const allowed = req.allowedDecisions || ["allow-once", "allow-always", "deny"];
  const labels = { "allow-once": "Approve once", "allow-always": "Always allow", deny: "Deny" };
  const card = el(
    "article",
    { class: "card approval", "data-approval-id": p.id },
    el("header", {}, el("b", {}, "exec approval"), req.nodeId ? el("span", {}, `node ${req.nodeId}`) : null),
    el("pre", {}, req.commandText || formatArgs(req)),
    el("div", { class: "buttons" }, ...allowed.map((d) => el("button", { type: "button", onclick: decide(d) }, labels[d] || d))),
  );
  chat.approvals.set(p.id, card);
  $("log").append(card);
  card.querySelector("button")?.focus();
  scrollToEnd();
}

function onApprovalResolved(p) {
  const card = chat.approvals.get(p.id);
  if (!card) return;
  chat.approvals.delete(p.id);
  card.querySelector(".buttons")?.remove();
  const outcome = { "allow-once": "approved once", "allow-always": "always allowed", deny: "denied" }[p.decision] || p.decision;
  card.append(el("p", { class: `state ${p.decision === "deny" ? "error" : "done"}` }, `${outcome}${p.reason ? ` (${p.reason})` : ""}`));
}

async function loadSessions(gw) {
  const select = $("session");
  let keys = [MAIN_SESSION];
  try {
    const list = await gw.request("sessions.list", {});
    keys = [...new Set([MAIN_SESSION, ...list.sessions.map((s) => s.key)])];
    const running = list.sessions.find((s) => s.key === chat.session && s.running);
    if (running) setRunning(chat.activeRun);
  } catch (err) {
    showNotice("Could not list the sessions", [err.message]);
  }
  if (!keys.includes(chat.session)) keys.push(chat.session);
  select.replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
  select.value = chat.session;
}

async function loadHistory(gw) {
  try {
    const h = await gw.request("chat.history", { sessionKey: chat.session, limit: 200 });
    renderHistory(h.messages || []);
  } catch (err) {
    showNotice("Could not load the history", [err.message]);
  }
}

async function send(gw) {
  const box = $("message");
  const message = box.value.trim();
  if (!message) return;
  $("log").querySelector(".empty")?.remove();
  const runId = randomId();
  addBubble("user", message);
  box.value = "";
  setRunning(runId);
  try {
    await gw.request("chat.send", { sessionKey: chat.session, message, idempotencyKey: runId });
  } catch (err) {
    setRunning(null);
    box.value = message;
    addBubble("assistant", `not sent: ${err.message}`, "error");
  }
}

async function stop(gw) {
  try {
    await gw.request("chat.abort", { sessionKey: chat.session, ...(chat.activeRun ? { runId: chat.activeRun } : {}) });
  } catch (err) {
    addBubble("assistant", `could not stop: ${err.message}`, "error");
  }
}

// ---- wiring ----------------------------------------------------------------------------

function main() {
  takeTokenFromUrl();
  let devicePromise = null;
  const gw = new Gateway({
    device: () => {
      devicePromise ||= loadDevice().catch(() => null);
      return devicePromise;
    },
    status: (text, kind) => {
      $("status").textContent = text;
      $("status").className = `status ${kind}`;
    },
    connected: async (hello, signed) => {
      clearNotice();
      if (!signed) {
        // Without a device key (WebCrypto needs a secure context) the gateway grants no scopes.
        showNotice("Connected without a device identity", [
          "This page is not a secure context, so it has no device key and the gateway grants it no scopes. Open it over https:// or on http://localhost (",
          el("code", {}, "clawgate dashboard"),
          ", an SSH tunnel, or Tailscale Serve).",
        ]);
      }
      $("status").textContent = `connected · ${hello.server ? hello.server.version : ""}`;
      $("status").className = "status ok";
      $("send").disabled = false;
      await loadSessions(gw);
      await loadHistory(gw);
    },
    disconnected: () => {
      $("send").disabled = true;
    },
    refused: (err) => refusalNotice(err, gw),
    failure: (err) => showNotice("Something went wrong", [String(err && err.message ? err.message : err)]),
    event: (name, payload) => {
      if (name === "chat") onChatEvent(payload);
      else if (name === "agent") onAgentEvent(payload);
      else if (name === "exec.approval.requested") onApprovalRequested(payload, gw);
      else if (name === "exec.approval.resolved") onApprovalResolved(payload);
    },
  });

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send(gw);
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!$("send").disabled) send(gw);
    } else if (e.key === "Escape" && chat.activeRun) {
      stop(gw);
    }
  });
  $("stop").addEventListener("click", () => stop(gw));
  $("session").addEventListener("change", (e) => {
    chat.session = e.target.value;
    localStorage.setItem(SESSION_KEY, chat.session);
    setRunning(null);
    loadHistory(gw);
  });
  $("settings-toggle").addEventListener("click", () => openSettings($("settings").hidden));
  $("settings-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    openSettings(false);
    clearNotice();
    gw.start();
  });
  $("session").replaceChildren(el("option", { value: chat.session }, chat.session));
  // A browser the gateway issued a device token to needs no secret in a new tab.
  if (!sharedToken() && !deviceTokens()[gatewayKey]) openSettings(true);
  gw.start();
  $("message").focus();
}

main();
