// Hearth's web dashboard: the fleet live, the job queue, the spool inventory and material
// library, statistics, notification channels and the audit log with the legal requests recorded.
//
// A plain ES module with no build step, served by hearthd from the binary. It is a client of
// /api/v1 like the CLI: it logs in with a login secret derived here (Argon2id over passphrase,
// server address and account, exactly as `hearth login` derives it; the passphrase is never
// sent), keeps the session in the server's HttpOnly cookie and follows the organisation's event
// stream. It holds no key and opens nothing sealed, so it shows what the server may see and no
// more: no file names, no thumbnails. A member may also log in through a single sign-on provider
// the server names: the browser goes there and back itself, and the page only finishes the login
// hearthd checked (with the account's own second factor when it has one), or with a passkey
// (WebAuthn: the device's own lock answers the server's challenge; it opens nothing sealed),
// which may also answer a passphrase login's second factor instead of the app's code.
//
// Every text from the server goes into the page through textContent, never as HTML.

const API = "/api/v1";
const ROLES = ["viewer", "operator", "admin", "owner"];
const ACTIVE_JOBS = new Set(["queued", "assigned", "transferring", "printing", "paused"]);
const VIEWS = ["printers", "jobs", "spools", "maintenance", "stats", "notify", "audit", "account"];
// What a notification channel can follow ([event, label, followed by default]), as
// hearth_proto::notify::NotifyEvent::{FOLLOWABLE, DEFAULT}.
const EVENTS = [
  ["job.started", "a print starts", false],
  ["job.paused", "a print pauses", true],
  ["job.completed", "a print finishes", true],
  ["job.failed", "a print fails or is refused", true],
  ["job.cancelled", "a print is cancelled", false],
  ["job.awaiting_approval", "a job waits for an admin's approval", true],
  ["job.approved", "an admin approves a waiting job", true],
  ["printer.error", "a printer reports an error", true],
  ["printer.offline", "a printer is unreachable", true],
  ["printer.online", "it is back", true],
  ["spool.low", "a job leaves a spool low", true],
  ["maintenance.due", "a maintenance task falls due", true],
  ["legal.request", "the operator records a legal request for our data", true],
];
const PRINTER_STATES = ["printing", "pausing", "paused", "cancelling", "idle", "error", "offline"];
// Whether a job runs on a printer in this state (`PrinterState::job_running` on the server).
const jobRunning = (st) => st === "printing" || st === "pausing" || st === "paused";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  me: null,
  org: null,
  role: "viewer",
  printers: new Map(),
  jobs: new Map(),
  // Requests to printers' agents (preheats, actions) by request id, with what to say when the
  // agent answers.
  asked: new Map(),
  // Answers that came before the request's own response (the agent can be that fast), by id.
  answered: new Map(),
  logins: new Map(),
  agents: new Map(),
  // The spools not archived (what printers can have loaded) and the material library.
  spools: new Map(),
  materials: new Map(),
  // A passphrase login waiting for its second factor ({login, server, secret}), which a passkey
  // may give; forgotten once logged in.
  secondFactor: null,
  // The timelapses kept, by job id (the frames are sealed: the page shows how many).
  timelapses: new Map(),
  // Each printer's recent temperatures for its chart, by printer id: [{at (ms), heaters}],
  // oldest first, as the server keeps them (a sample per 5 s, 30 minutes), then live.
  temps: new Map(),
  events: null,
  tab: "printers",
};

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// How far this browser's clock is ahead of the server's, in ms (`call` reads each answer's Date).
let clockAhead = 0;

async function call(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = sessionStorage.getItem("hearth.csrf") || "";
  let r;
  try {
    r = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `The server did not answer (${e.message}).`);
  }
  // The charts put the server's sample times and the page's own on one axis.
  const said = Date.parse(r.headers.get("Date"));
  if (!Number.isNaN(said)) clockAhead = Date.now() - said;
  if (!r.ok) {
    let err = {};
    try { err = await r.json(); } catch { /* not JSON: keep the status text */ }
    throw new ApiError(r.status, err.code, err.message || r.statusText, r.headers.get("Retry-After"));
  }
  if (r.status === 204) return null;
  // 202: sent on (to a printer's agent), with the request's id when the agent will answer it.
  if (r.status === 202) return r.json().catch(() => null);
  return r.json();
}

// ---- small DOM helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function notice(text) {
  const n = $("notice");
  n.textContent = text || "";
  n.hidden = !text;
}

function duration(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function bytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

// Grams as people read them: 1.25 kg, 780 g, 1.2 g (as `hearth spools` prints them).
function grams(g) {
  if (g >= 1000) return `${(g / 1000).toFixed(2)} kg`;
  if (g >= 10) return `${Math.round(g)} g`;
  return `${g.toFixed(1)} g`;
}

// A dot of the colour, when the colour is one CSS knows (#rrggbb, "orange"); set through the
// CSSOM, which the page's Content-Security-Policy (no inline style attributes) allows.
function swatch(color) {
  if (!color || !CSS.supports("color", color)) return null;
  const dot = el("span", { class: "swatch", "aria-hidden": "true" });
  dot.style.backgroundColor = color;
  return dot;
}

const short = (id) => (id ? String(id).slice(-8) : "");
const atLeast = (role) => ROLES.indexOf(state.role) >= ROLES.indexOf(role);
const stateBadge = (s) => el("span", { class: `state ${s}` }, s);

// ---- login ------------------------------------------------------------------------------------

// The salt of `hearth_crypto::derive_login_secret`: a domain line, then the server address and
// the account, each preceded by its length as a big-endian u64.
function loginSalt(server, login) {
  const enc = new TextEncoder();
  const prefix = enc.encode("hearth/login/v1\n");
  const parts = [enc.encode(server), enc.encode(login)];
  const salt = new Uint8Array(prefix.length + parts.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(salt.buffer);
  salt.set(prefix, 0);
  let at = prefix.length;
  for (const p of parts) {
    view.setBigUint64(at, BigInt(p.length));
    salt.set(p, at + 8);
    at += 8 + p.length;
  }
  return salt;
}

// The server address as `hearth` normalises it: no trailing slash.
const normalizeServer = (s) => s.trim().replace(/\/+$/, "");

async function loginSecret(passphrase, server, login) {
  // KdfParams::default(): 64 MiB, 3 passes, one lane, 32 bytes, as lowercase hex.
  return globalThis.hashwasm.argon2id({
    password: passphrase,
    salt: loginSalt(server, login),
    parallelism: 1,
    iterations: 3,
    memorySize: 64 * 1024,
    hashLength: 32,
    outputType: "hex",
  });
}

async function onLogin(ev) {
  ev.preventDefault();
  const form = ev.target;
  const login = form.login.value.trim();
  const server = normalizeServer(form.server.value);
  const status = $("login-status");
  const button = form.querySelector("button[type=submit]");
  notice("");
  button.disabled = true;
  status.textContent = "Deriving your login secret on this device…";
  let secret = null;
  try {
    secret = await loginSecret(form.passphrase.value, server, login);
    status.textContent = "Logging in…";
    const code = form.code.value.trim();
    const out = await call("POST", "/auth/login", code ? { login, secret, code } : { login, secret });
    await loggedIn(out);
  } catch (e) {
    status.textContent = "";
    if (e.code === "mfa_required" || e.code === "mfa_invalid") {
      // The passphrase was right: the account asks for its second factor too, which one of its
      // passkeys may answer (the secret is kept for that, in this tab's memory only).
      $("code-field").hidden = false;
      state.secondFactor = { login, server, secret };
      $("passkey-second-area").hidden = !passkeysOffered() || passkeysUnusable() !== null;
      form.code.value = "";
      form.code.focus();
    }
    notice(loginProblem(e, server));
  } finally {
    button.disabled = false;
  }
}

// A login answered (POST /auth/login, or /auth/passkey/finish, which answer alike): keep the
// session's CSRF token for this tab, clear what was typed, and load the dashboard.
async function loggedIn(out) {
  sessionStorage.setItem("hearth.csrf", out.csrf_token);
  const form = $("login-form");
  form.passphrase.value = "";
  form.code.value = "";
  $("code-field").hidden = true;
  $("passkey-second-area").hidden = true;
  state.secondFactor = null;
  $("login-status").textContent = "";
  await start();
}

function loginProblem(e, server) {
  if (e.status === 429) {
    const wait = e.retryAfter ? ` Try again in ${duration(Number(e.retryAfter))}.` : "";
    return `Too many failed logins for now.${wait}`;
  }
  if (e.code === "mfa_required") {
    const offered = !$("passkey-second-area").hidden ||
      (!$("sso-code-form").hidden && !$("sso-passkey-area").hidden);
    const passkey = offered ? ", or use one of your passkeys" : "";
    return "This account asks for a second factor: enter the code your authenticator app shows " +
      `(or one of your recovery codes), then log in${passkey}.`;
  }
  if (e.code === "mfa_invalid") {
    return "That code was not accepted: it is wrong, or was used already (each code logs in once). " +
      "Wait for the app's next code, or use a recovery code.";
  }
  if (e.status === 401) {
    const pub = state.info && state.info.public_url ? normalizeServer(state.info.public_url) : null;
    if (pub && pub !== server) {
      return `Login refused. This server's address is ${pub}, not ${server}: the login secret depends ` +
        `on the address the account was created through, usually that one. Set it under "Server address".`;
    }
    return "Login refused. Check the account and passphrase, and that the account was created through " +
      `this same address (${server}): the login secret depends on it, so an account made through ` +
      "http://127.0.0.1:8080 does not log in through http://localhost:8080.";
  }
  return `Login failed: ${e.message}`;
}

async function onLogout() {
  let out = null;
  try { out = await call("POST", "/auth/logout"); } catch { /* the session may be gone already */ }
  sessionStorage.removeItem("hearth.csrf");
  stopEvents();
  // A provider set to log out there too: the browser goes there, and comes back to this page.
  if (out && out.provider_logout) {
    location.assign(out.provider_logout);
    return;
  }
  showLogin();
}

function showLogin() {
  for (const id of ["tabs", "org-area", "logout", "live"]) $(id).hidden = true;
  for (const v of VIEWS) $(`${v}-view`).hidden = true;
  $("who").textContent = "";
  // What the last login loaded is not left in the page for the next one (another member, maybe)
  // to see before its own loads.
  for (const v of VIEWS) for (const t of $(`${v}-view`).querySelectorAll("tbody")) t.replaceChildren();
  for (const id of ["printers", "mfa-codes"]) $(id).replaceChildren();
  $("login-view").hidden = false;
  $("sso-code-form").hidden = true;
  renderSsoButtons();
  renderPasskeyLogin();
  // What the Account tab's passkey form said is not for the next login.
  $("passkey-form").reset();
  $("passkey-status").textContent = "";
  $("passkey-error").textContent = "";
  const form = $("login-form");
  form.hidden = false;
  if (!form.server.value) {
    form.server.value = state.info && state.info.public_url
      ? normalizeServer(state.info.public_url) : location.origin;
  }
  form.login.focus();
}

// ---- single sign-on ---------------------------------------------------------------------------

// A login through a provider is a round trip of the browser itself: the page navigates to
// /auth/sso/{id}/start, hearthd sends it on to the provider and, once the provider answered, back
// here with a fragment: `#sso` (finish with POST /auth/sso/finish, which opens the session as a
// passphrase login does), `#sso-error=MESSAGE` or `#sso-linked=ID` (after linking from Account).

const ssoProviders = () => (state.info && state.info.sso) || [];
const ssoName = (id) => ssoProviders().find((p) => p.id === id)?.name || id;

// Off to the provider; the tab remembers which one and why, to word what comes back.
function ssoGo(id, link) {
  sessionStorage.setItem("hearth.sso", JSON.stringify({ id, link }));
  location.href = `${API}/auth/sso/${encodeURIComponent(id)}/start${link ? "?link=true" : ""}`;
}

function renderSsoButtons() {
  const providers = ssoProviders();
  $("sso-login").hidden = providers.length === 0;
  $("sso-buttons").replaceChildren(...providers.map((p) =>
    el("button", { type: "button", "data-provider": p.id, onclick: () => ssoGo(p.id, false) }, `Log in with ${p.name}`)));
}

// What hearthd sent the browser back with, if anything: taken out of the address bar at once, so
// a reload does not finish, refuse or link again. The message of `#sso-error=` is form-encoded.
function ssoReturn() {
  const hash = location.hash.slice(1);
  if (hash !== "sso" && !/^sso-(error|linked)=/.test(hash)) return null;
  history.replaceState(null, "", location.pathname);
  let started = {};
  try { started = JSON.parse(sessionStorage.getItem("hearth.sso")) || {}; } catch { /* not ours */ }
  sessionStorage.removeItem("hearth.sso");
  const [[key, value]] = new URLSearchParams(hash);
  return { finish: key === "sso", error: key === "sso-error" ? value : null,
    linked: key === "sso-linked" ? value : null, started };
}

// The provider vouched for an account: open its session here, with its second factor when it has
// one (asked for on the first refusal): `{ code }` or a passkey's `{ passkey }`; then load the
// dashboard.
async function finishSso(answer = {}) {
  const form = $("sso-code-form");
  const button = form.querySelector("button[type=submit]");
  notice("");
  button.disabled = true;
  try {
    const out = await call("POST", "/auth/sso/finish", answer);
    sessionStorage.setItem("hearth.csrf", out.csrf_token);
    form.reset();
    form.hidden = true;
  } catch (e) {
    if (e.code === "mfa_required" || e.code === "mfa_invalid") showSsoCode();
    // Throttled while typing a code: the login stays open (five minutes) to try again.
    else if (!(e.status === 429 && !form.hidden)) showLogin();
    notice(ssoProblem(e));
    return;
  } finally {
    button.disabled = false;
  }
  try {
    await start();
  } catch (e) {
    if (e.status === 401) showLogin();
    notice(`Could not load the dashboard: ${e.message}`);
  }
}

function ssoProblem(e) {
  if (e.status === 429 || e.code === "mfa_required" || e.code === "mfa_invalid") return loginProblem(e);
  if (e.code === "sso_expired") {
    return "This single sign-on can no longer be finished (it took longer than 5 minutes, or was " +
      "finished already): log in again.";
  }
  return `The single sign-on failed: ${e.message}`;
}

function showSsoCode() {
  const form = $("sso-code-form");
  if (form.hidden) {
    showLogin();
    $("login-form").hidden = true;
    const by = state.ssoStarted && state.ssoStarted.id ? ssoName(state.ssoStarted.id) : "Your provider";
    $("sso-code-intro").textContent = `${by} vouched for you. This account asks for Hearth's second factor too.`;
    $("sso-passkey-area").hidden = !passkeysOffered() || passkeysUnusable() !== null;
    form.hidden = false;
  }
  form.code.value = "";
  form.code.focus();
}

async function onSsoCode(ev) {
  ev.preventDefault();
  const code = ev.target.code.value.trim();
  if (code) await finishSso({ code });
}

// The second factor after the provider answered by one of the account's passkeys: the server
// challenges them for the login its cookie names, and takes the answer in POST /auth/sso/finish.
async function onSsoPasskey() {
  const button = $("sso-passkey");
  const status = $("sso-code-status");
  notice("");
  button.disabled = true;
  let passkey;
  try {
    status.textContent = "Asking the server…";
    const begun = await call("POST", "/auth/sso/finish/passkey");
    status.textContent = "Choose your passkey in the browser's dialog, and unlock it.";
    const cred = await navigator.credentials.get({ publicKey: requestOptions(begun.options.publicKey) });
    if (!cred) throw new DOMException("No passkey was chosen.", "NotAllowedError");
    passkey = { ceremony: begun.ceremony, credential: credentialJson(cred) };
    status.textContent = "";
  } catch (e) {
    if (e.code === "sso_expired") showLogin();
    const problem = e.code === "sso_expired" ? ssoProblem(e) : e.code === "no_passkeys"
      ? "This account has no passkey yet: enter the code of your authenticator app (or a recovery code)."
      : passkeyProblem(e, true);
    status.textContent = problem === null ? "Cancelled." : "";
    if (problem !== null) notice(problem);
    return;
  } finally {
    button.disabled = false;
  }
  await finishSso({ passkey });
}

// ---- passkeys ---------------------------------------------------------------------------------

// A passkey (WebAuthn) logs in to this dashboard instead of the passphrase, with the device's own
// lock; hearthd offers it when its public_url names a host authenticators can bind it to (the
// relying party). The server's options are WebAuthn's JSON with binary fields in base64url: turned
// into ArrayBuffers here for navigator.credentials, and the credential the browser returns back
// into that JSON (by hand, not PublicKeyCredential.parseCreationOptionsFromJSON/toJSON, which
// older browsers lack). A passkey opens nothing sealed: designs stay with the passphrase.

function toBase64url(data) {
  const bytes = data instanceof ArrayBuffer
    ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text) {
  const b64 = String(text).replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
  return bytes.buffer;
}

// The options as the browser takes them: binary fields decoded, and no null member (an absent
// one is meant; WebIDL would read a null `timeout` as 0).
function withoutNulls(o) {
  return Object.fromEntries(Object.entries(o || {}).filter(([, v]) => v !== null && v !== undefined));
}

const descriptors = (list) => (list || []).map((c) => ({ ...withoutNulls(c), id: fromBase64url(c.id) }));

function creationOptions(pk) {
  return {
    ...withoutNulls(pk),
    challenge: fromBase64url(pk.challenge),
    user: { ...withoutNulls(pk.user), id: fromBase64url(pk.user.id) },
    excludeCredentials: descriptors(pk.excludeCredentials),
  };
}

function requestOptions(pk) {
  return { ...withoutNulls(pk), challenge: fromBase64url(pk.challenge), allowCredentials: descriptors(pk.allowCredentials) };
}

// The PublicKeyCredential the browser returned (from create() or get()) as the server reads it.
function credentialJson(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    const transports = typeof r.getTransports === "function" ? r.getTransports() : null;
    if (transports && transports.length) response.transports = transports;
  }
  if (r.authenticatorData) {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
  }
  let clientExtensionResults = {};
  try { clientExtensionResults = cred.getClientExtensionResults() || {}; } catch { /* none */ }
  return { id: cred.id, rawId: toBase64url(cred.rawId), type: cred.type, response, clientExtensionResults };
}

const passkeysOffered = () => Boolean(state.info && state.info.passkeys);

// Why this page cannot use passkeys, or null when it can. Browsers offer WebAuthn only in a secure
// context (HTTPS, or http://localhost), and only for the relying party's host or a subdomain of
// it: the host of the server's public_url.
function passkeysUnusable() {
  const pub = state.info && state.info.public_url;
  if (!window.isSecureContext) {
    return "This browser offers passkeys only on a secure page (HTTPS, or http://localhost), and this one " +
      `is not${pub ? `: open the dashboard at ${normalizeServer(pub)}` : ""}.`;
  }
  if (!window.PublicKeyCredential || !navigator.credentials || !navigator.credentials.create) {
    return "This browser has no passkeys (WebAuthn): use a current one to add or use them.";
  }
  if (pub) {
    let rp = null;
    try { rp = new URL(pub).hostname; } catch { /* the server's own address: checked there */ }
    const host = location.hostname;
    if (rp && host !== rp && !host.endsWith(`.${rp}`)) {
      return `Passkeys are bound to this server's address, ${normalizeServer(pub)}: open the dashboard ` +
        `there to add or use them (this page is at ${location.origin}).`;
    }
  }
  return null;
}

// The browser's refusals and the server's, worded for people. `login`: the login page's ceremony.
// Null: the member cancelled the browser's dialog (or let it time out), which is no error.
function passkeyProblem(e, login) {
  if (!(e instanceof ApiError)) {
    switch (e.name) {
      case "NotAllowedError":
      case "AbortError":
        return null;
      case "InvalidStateError":
        return "This device already holds a passkey for your account.";
      case "SecurityError":
        return passkeysUnusable() ||
          `The browser refused: passkeys work only at this server's address (${e.message}).`;
      case "NotSupportedError":
        return "This device or browser cannot make a passkey of a kind the server accepts.";
      default:
        return `The browser refused: ${e.message || e.name}`;
    }
  }
  if (e.status === 429) return loginProblem(e);
  if (e.code === "passkey_expired") {
    return "This can no longer be finished (it took longer than 5 minutes, or was finished already): start again.";
  }
  if (e.code === "passkey_invalid") {
    return login
      ? "This passkey is not (or no longer) registered with this server, or its answer did not check out."
      : "The browser's answer did not check out: try again.";
  }
  if (e.code === "passkey_exists") return "This device already holds a passkey for your account.";
  if (e.status === 422) return `That name is refused (1 to 64 printable characters): ${e.message}`;
  if (e.code === "reauth_required") return e.message;
  return login ? `The passkey login failed: ${e.message}` : e.message;
}

// The login page's button: shown when the server takes passkeys and this browser has them here.
function renderPasskeyLogin() {
  $("passkey-login-area").hidden = !passkeysOffered() || passkeysUnusable() !== null;
}

// A discoverable login: the authenticator picks the account (there is nothing to type), hearthd
// checks its signature over the challenge and opens the session as a passphrase login does.
async function onPasskeyLogin() {
  const button = $("passkey-login");
  const status = $("login-status");
  notice("");
  button.disabled = true;
  try {
    status.textContent = "Asking the server…";
    const begun = await call("POST", "/auth/passkey/start", {});
    status.textContent = "Choose your passkey in the browser's dialog, and unlock it.";
    const cred = await navigator.credentials.get({ publicKey: requestOptions(begun.options.publicKey) });
    if (!cred) throw new DOMException("No passkey was chosen.", "NotAllowedError");
    status.textContent = "Logging in…";
    const out = await call("POST", "/auth/passkey/finish", { ceremony: begun.ceremony, credential: credentialJson(cred) });
    await loggedIn(out);
  } catch (e) {
    const problem = passkeyProblem(e, true);
    status.textContent = problem === null ? "Cancelled." : "";
    if (problem !== null) notice(problem);
  } finally {
    button.disabled = false;
  }
}

// The second factor of a passphrase login answered by a passkey instead of the app's code: the
// server checks the login and secret again, challenges the account's own passkeys, and takes the
// answer with them in POST /auth/login.
async function onPasskeySecond() {
  const form = $("login-form");
  const button = $("passkey-second");
  const status = $("login-status");
  const pending = state.secondFactor;
  notice("");
  if (!pending || pending.login !== form.login.value.trim() || pending.server !== normalizeServer(form.server.value)) {
    notice("Log in with your passphrase first: the passkey answers after it.");
    return;
  }
  button.disabled = true;
  try {
    status.textContent = "Asking the server…";
    const body = { login: pending.login, secret: pending.secret };
    const begun = await call("POST", "/auth/login/passkey", body);
    status.textContent = "Choose your passkey in the browser's dialog, and unlock it.";
    const cred = await navigator.credentials.get({ publicKey: requestOptions(begun.options.publicKey) });
    if (!cred) throw new DOMException("No passkey was chosen.", "NotAllowedError");
    status.textContent = "Logging in…";
    const passkey = { ceremony: begun.ceremony, credential: credentialJson(cred) };
    await loggedIn(await call("POST", "/auth/login", { ...body, passkey }));
  } catch (e) {
    const problem = e.code === "no_passkeys"
      ? "This account has no passkey yet: enter the code of your authenticator app (or a recovery code)."
      : passkeyProblem(e, true);
    status.textContent = problem === null ? "Cancelled." : "";
    if (problem !== null) notice(problem);
  } finally {
    button.disabled = false;
  }
}

// The Account tab's card: the member's passkeys, and a form to add one from this browser.
async function loadPasskeys() {
  const card = $("passkey-card");
  card.hidden = !passkeysOffered();
  if (card.hidden) return;
  const why = passkeysUnusable();
  $("passkey-unavailable").textContent = why || "";
  $("passkey-unavailable").hidden = !why;
  $("passkey-form").hidden = Boolean(why);
  const passkeys = await call("GET", "/me/passkeys");
  $("passkeys").hidden = passkeys.length === 0;
  $("passkeys-none").hidden = passkeys.length > 0;
  $("passkeys").querySelector("tbody").replaceChildren(...passkeys.map((p) => {
    const rename = el("button", { type: "button" }, "Rename");
    rename.addEventListener("click", async () => {
      const name = prompt(`A new name for the passkey «${p.name}» (1 to 64 characters):`, p.name);
      if (name === null || name.trim() === p.name) return;
      notice("");
      rename.disabled = true;
      try {
        await call("PATCH", `/me/passkeys/${encodeURIComponent(p.id)}`, { name: name.trim() });
      } catch (e) {
        notice(`The passkey «${p.name}» keeps its name: ${e.message}`);
      }
      await loadPasskeys().catch((e) => notice(`Could not read your passkeys: ${e.message}`));
    });
    const remove = el("button", { type: "button", class: "danger" }, "Remove");
    remove.addEventListener("click", async () => {
      if (!confirm(`Remove the passkey «${p.name}»? It no longer logs in to this account, and the ` +
        "sessions it opened end (remove it from the device too: its own settings list it).")) return;
      notice("");
      remove.disabled = true;
      try {
        await call("DELETE", `/me/passkeys/${encodeURIComponent(p.id)}`);
      } catch (e) {
        // Gone already (404): removed elsewhere, the list below says so.
        if (e.status !== 404) notice(`The passkey «${p.name}» stays: ${e.message}`);
      }
      // This very session may have been opened with it, and ended with it.
      const ended = await call("GET", "/me").then(() => false, (e) => e.status === 401);
      if (ended) {
        stopEvents();
        notice(`You removed the passkey «${p.name}» this session was opened with, so it ended: log in again.`);
        showLogin();
        return;
      }
      await loadPasskeys().catch((e) => notice(`Could not read your passkeys: ${e.message}`));
    });
    return el("tr", { "data-id": p.id, "data-name": p.name },
      el("td", { "data-cell": "name" }, p.name), el("td", { "data-cell": "added" }, when(p.created_at)),
      el("td", { "data-cell": "used" }, when(p.last_used_at) || "never"), el("td", {}, rename, " ", remove));
  }));
}

// Adding one needs a fresh session (under five minutes) or the login secret again, derived from
// the passphrase typed here exactly as the login form derives it.
async function onPasskeyAdd(ev) {
  ev.preventDefault();
  const form = ev.target;
  const status = $("passkey-status");
  const error = $("passkey-error");
  const button = $("passkey-add");
  const name = form.pkname.value.trim();
  notice("");
  error.textContent = "";
  status.textContent = "";
  // Checked before the device makes a credential (the server takes the name only with it).
  if ([...name].length > 64 || /\p{Cc}/u.test(name)) {
    error.textContent = "That name is refused: 1 to 64 printable characters.";
    form.pkname.focus();
    return;
  }
  if (!name) {
    form.pkname.focus();
    return;
  }
  button.disabled = true;
  const body = { name };
  try {
    if (form.passphrase.value) {
      status.textContent = "Deriving your login secret on this device…";
      const pub = state.info && state.info.public_url;
      const server = normalizeServer($("login-form").server.value || pub || location.origin);
      body.secret = await loginSecret(form.passphrase.value, server, state.me.user.login);
    }
    status.textContent = "Asking the server…";
    const begun = await call("POST", "/me/passkeys/register", body);
    status.textContent = "Follow the browser's dialog: unlock this device (fingerprint, face, PIN) or touch your security key.";
    const cred = await navigator.credentials.create({ publicKey: creationOptions(begun.options.publicKey) });
    if (!cred) throw new DOMException("No passkey was made.", "NotAllowedError");
    status.textContent = "Saving it…";
    const added = await call("POST", "/me/passkeys/register/finish",
      { ceremony: begun.ceremony, name, credential: credentialJson(cred) });
    form.reset();
    status.textContent = `Added «${added.name}»: it logs you in from the login page's "Log in with a passkey".`;
    await loadPasskeys();
  } catch (e) {
    const problem = passkeyProblem(e, false);
    status.textContent = problem === null ? "Cancelled." : "";
    error.textContent = problem || "";
    // Not fresh enough, or the passphrase typed was not the right one: type it (again).
    if (e.code === "reauth_required" || (body.secret && (e.status === 401 || e.status === 403))) {
      form.passphrase.value = "";
      form.passphrase.focus();
    } else if (e.status === 422) {
      form.pkname.focus();
    }
  } finally {
    button.disabled = false;
  }
}

// ---- the signed-in dashboard -----------------------------------------------------------------

async function start() {
  state.me = await call("GET", "/me");
  const memberships = state.me.memberships;
  $("login-view").hidden = true;
  $("who").textContent = state.me.user.login;
  $("logout").hidden = false;
  if (memberships.length === 0) {
    notice("Your account belongs to no organisation yet: an admin adds you with `hearth members add`.");
    return;
  }
  const select = $("org");
  select.replaceChildren(...memberships.map((m) => el("option", { value: m.org.id }, m.org.name)));
  const saved = localStorage.getItem("hearth.org");
  select.value = memberships.some((m) => m.org.id === saved) ? saved : memberships[0].org.id;
  $("org-area").hidden = false;
  $("tabs").hidden = false;
  await openOrg(select.value);
}

async function openOrg(id) {
  const m = state.me.memberships.find((x) => x.org.id === id);
  state.org = m.org;
  state.role = m.role;
  localStorage.setItem("hearth.org", id);
  $("role").textContent = m.role;
  $("audit-tab").hidden = !atLeast("admin");
  $("notify-tab").hidden = !atLeast("admin");
  // Only an instance admin records legal requests; the organisation's admins read them.
  $("legal-form").hidden = !isInstanceAdmin();
  $("legal-status").textContent = "";
  for (const f of document.querySelectorAll("[data-min-role]")) f.hidden = !atLeast(f.dataset.minRole);
  if ((state.tab === "audit" || state.tab === "notify") && !atLeast("admin")) state.tab = "printers";
  notice("");
  try {
    await reload();
  } catch (e) {
    if (e.code === "sso_required_by_org") {
      // The organisation takes only logins through a provider: say so, naming this page's own
      // buttons (the server's message has placeholders for them and the CLI's), and keep the
      // session (another organisation of the account may still be open to this login).
      const buttons = ssoProviders().map((p) => `"Log in with ${p.name}"`).join(" or ");
      notice(buttons
        ? `Organisation "${state.org.name}" asks its members to log in through single sign-on, and ` +
          `this session was not opened that way: log out, then log in with ${buttons}.`
        : `${e.message}.`);
      showTab("account");
      return;
    }
    if (e.code !== "mfa_required_by_org") throw e;
    // The organisation requires a second factor this account does not have: say so, and where.
    notice(`${e.message}. Or here: Account, then "Set up an authenticator app".`);
    showTab("account");
    return;
  }
  startEvents();
  showTab(state.tab);
}

// Everything the views show, fetched again (at start, and after the event stream reconnects,
// since events missed while it was down are not replayed).
async function reload() {
  const org = state.org.id;
  const [printers, jobs, members, agents, usage, spools, materials, timelapses, maintenance] = await Promise.all([
    call("GET", `/orgs/${org}/printers`),
    call("GET", `/orgs/${org}/jobs`),
    call("GET", `/orgs/${org}/members`).catch(() => []),
    call("GET", `/orgs/${org}/agents`).catch(() => []),
    call("GET", `/orgs/${org}/usage`).catch(() => null),
    call("GET", `/orgs/${org}/spools`).catch(() => []),
    call("GET", `/orgs/${org}/materials`).catch(() => []),
    call("GET", `/orgs/${org}/timelapses`).catch(() => []),
    call("GET", `/orgs/${org}/maintenance`).catch(() => []),
  ]);
  state.maintenance = maintenance;
  maintenanceAt = Date.now();
  state.timelapses = new Map(timelapses.map((t) => [t.job_id, t]));
  state.spools = new Map(spools.map((x) => [x.id, x]));
  state.materials = new Map(materials.map((x) => [x.id, x]));
  state.printers = new Map(printers.map((p) => [p.id, p]));
  state.jobs = new Map(jobs.map((j) => [j.id, j]));
  state.logins = new Map(members.map((x) => [x.user.id, x.user.login]));
  state.agents = new Map(agents.map((a) => [a.id, a]));
  renderPrinters();
  renderJobs();
  renderFooter(usage);
  loadTemperatures().catch(() => {});
}

// ---- temperature charts ----------------------------------------------------------------------

const TEMP_EVERY_MS = 5000;
const TEMP_KEEP_MS = 30 * 60 * 1000;
/** Now on the server's clock, as far as its Date headers tell (to the second). */
const serverNow = () => Date.now() - clockAhead;
/** How a heater is drawn: the nozzles (`tool0`...), the bed, or another. */
const heaterKind = (name) => (name === "bed" ? "bed" : name.startsWith("tool") ? "tool" : "other");

/** Every printer's last 30 minutes of temperatures, as the server kept them; then the charts. */
async function loadTemperatures() {
  const fleet = await call("GET", `/orgs/${state.org.id}/temperatures`);
  state.temps = new Map(fleet.map((p) =>
    [p.printer_id, p.samples.map((s) => ({ at: Date.parse(s.at), heaters: s.heaters }))]));
  renderPrinters();
}

/** A printer's report, added to its chart as the server adds it: at most one per 5 s. */
function recordTemperatures(p) {
  const heaters = p.telemetry.heaters || [];
  if (!heaters.length) return;
  const list = state.temps.get(p.id) || [];
  const now = serverNow();
  if (!list.length || now - list[list.length - 1].at >= TEMP_EVERY_MS) list.push({ at: now, heaters });
  while (list.length && list[0].at < now - TEMP_KEEP_MS) list.shift();
  state.temps.set(p.id, list);
}

const SVG = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

/**
 * The printer's temperatures since its first sample, over 30 minutes at most: a line per heater
 * (the nozzle, the bed, others), its target dashed. A printer reports when something changes,
 * so each value holds until the next (steps), and the last until now, as its card shows it.
 */
function temperatureChart(p) {
  const end = serverNow();
  const samples = [...(state.temps.get(p.id) || []), { at: end, heaters: p.telemetry.heaters || [] }];
  if (samples.length < 2 || !samples[samples.length - 1].heaters.length) return null;
  const [w, h] = [300, 60];
  const span = Math.min(TEMP_KEEP_MS, Math.max(60_000, end - samples[0].at));
  const names = [...new Set(samples.flatMap((s) => s.heaters.map((x) => x.name)))];
  const top = Math.max(50, ...samples.flatMap((s) => s.heaters.flatMap((x) => [x.actual, x.target || 0]))) * 1.1;
  const x = (at) => ((1 - (end - at) / span) * w).toFixed(1);
  const y = (t) => (h - (t / top) * h).toFixed(1);
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img" });
  const title = svgEl("title", {});
  title.textContent = `Temperatures over the last ${Math.round(span / 60_000)} min (up to ${Math.round(top)}°)`;
  svg.append(title);
  for (const name of names) {
    const kind = heaterKind(name);
    const points = (pick) => samples
      .map((s) => [s.at, s.heaters.find((x) => x.name === name)])
      .filter(([, heater]) => heater && pick(heater) !== null && pick(heater) !== undefined)
      .flatMap(([at, heater], i, all) => {
        const here = `${x(at)},${y(pick(heater))}`;
        // Held until the next sample: a step, not a slope between two far-apart reports.
        return i + 1 < all.length ? [here, `${x(all[i + 1][0])},${y(pick(heater))}`] : [here];
      }).join(" ");
    svg.append(svgEl("polyline", { class: `temp ${kind} target`, points: points((t) => t.target || 0), "data-heater": name }));
    svg.append(svgEl("polyline", { class: `temp ${kind}`, points: points((t) => t.actual), "data-heater": name }));
  }
  const kinds = new Set(names.map(heaterKind));
  return el("div", { class: "temp-chart" }, svg, el("div", { class: "temp-legend muted" },
    kinds.has("tool") && el("span", { class: "tool" }, "— nozzle "),
    kinds.has("bed") && el("span", { class: "bed" }, "— bed "),
    kinds.has("other") && el("span", { class: "other" }, "— other "),
    `· last ${Math.round(span / 60_000)} min, targets dashed`));
}

// The members' logins read again (a job event named a member the page did not know), once per
// unknown id so a removed member's jobs do not ask each time.
const loginsAsked = new Set();
async function loadLogins(id) {
  if (loginsAsked.has(id)) return;
  loginsAsked.add(id);
  const members = await call("GET", `/orgs/${state.org.id}/members`);
  for (const m of members) state.logins.set(m.user.id, m.user.login);
  if (state.logins.has(id)) renderJobs();
}

function renderFooter(usage) {
  const parts = [`Hearth ${state.info ? state.info.version : ""}`];
  if (usage) {
    parts.push(`storage: ${bytes(usage.used_bytes)} of ${bytes(usage.quota_bytes)} used (sealed files and timelapses)`);
  }
  $("footer").textContent = parts.join(" · ");
}

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll(".tab")) {
    if (b.dataset.tab === tab) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  for (const v of VIEWS) $(`${v}-view`).hidden = v !== tab;
  if (tab === "jobs") loadTimelapses().catch((e) => notice(`Could not read the timelapses: ${e.message}`));
  if (tab === "audit") loadAudit().catch((e) => notice(`Could not read the audit log: ${e.message}`));
  if (tab === "audit") loadLegal().catch((e) => notice(`Could not read the legal requests: ${e.message}`));
  if (tab === "spools") loadSpools().catch((e) => notice(`Could not read the spools: ${e.message}`));
  if (tab === "maintenance") loadMaintenance().catch((e) => notice(`Could not read the maintenance tasks: ${e.message}`));
  if (tab === "stats") loadStats().catch((e) => notice(`Could not read the statistics: ${e.message}`));
  if (tab === "account") renderAccount();
  if (tab === "notify") setChannelForm(null);
  if (tab === "notify") loadChannels().catch((e) => notice(`Could not read the notification channels: ${e.message}`));
}

// ---- account: the second factor ----------------------------------------------------------------

function renderAccount() {
  const on = Boolean(state.me && state.me.mfa);
  $("mfa-state").textContent = on
    ? "On: every login of this account asks for the code of your authenticator app."
    : "Off: your passphrase alone logs in.";
  $("mfa-begin").hidden = on;
  $("mfa-off-form").hidden = !on;
  $("mfa-new-codes").hidden = !on;
  $("mfa-recovery-left").hidden = !on;
  $("mfa-recovery-left").textContent = on
    ? `${state.me.recovery_codes_left ?? 0} recovery codes left.` : "";
  if (!on) $("mfa-recovery").hidden = true;
  $("org-require-mfa").checked = Boolean(state.org && state.org.require_mfa);
  $("org-require-approval").checked = Boolean(state.org && state.org.require_approval);
  $("org-require-sso").checked = Boolean(state.org && state.org.require_sso);
  // Offered where the server has a provider, or still on (so it can be lifted).
  $("org-sso-policy").hidden = ssoProviders().length === 0 && !$("org-require-sso").checked;
  if (state.org && atLeast("admin")) {
    loadMfaMissing().catch((e) => {
      // Refused by the organisation's own policy: openOrg's notice says what to do already.
      if (e.code !== "sso_required_by_org" && e.code !== "mfa_required_by_org") {
        notice(`Could not read the members: ${e.message}`);
      }
    });
  }
  loadSso().catch((e) => notice(`Could not read your single sign-on accounts: ${e.message}`));
  loadPasskeys().catch((e) => notice(`Could not read your passkeys: ${e.message}`));
  loadSessions().catch((e) => notice(`Could not read your sessions: ${e.message}`));
  loadTokens().catch((e) => notice(`Could not read your API tokens: ${e.message}`));
}

// The accounts at single sign-on providers linked to this one, and a button to link each
// provider not linked yet (a round trip to the provider, back with `#sso-linked=ID`).
async function loadSso() {
  const linked = await call("GET", "/me/sso");
  const providers = ssoProviders();
  $("sso-card").hidden = providers.length === 0 && linked.length === 0;
  $("sso-identities").hidden = linked.length === 0;
  $("sso-none").hidden = linked.length > 0;
  $("sso-identities").querySelector("tbody").replaceChildren(...linked.map((i) => {
    const name = i.provider_name || `${i.provider} (no longer configured)`;
    const unlink = el("button", { type: "button", class: "danger" }, "Unlink");
    unlink.addEventListener("click", async () => {
      if (!confirm(`Unlink your ${name} account "${i.claimed}"? It no longer logs in to this account.`)) return;
      notice("");
      try {
        await call("DELETE", `/me/sso/${encodeURIComponent(i.provider)}`);
        await loadSso();
      } catch (e) {
        notice(`${name} stays linked: ${e.message}`);
      }
    });
    return el("tr", { "data-provider": i.provider },
      el("td", {}, name), el("td", { "data-cell": "claimed" }, i.claimed), el("td", {}, when(i.linked_at)),
      el("td", {}, when(i.last_login_at) || "never"), el("td", {}, unlink));
  }));
  const ids = new Set(linked.map((i) => i.provider));
  $("sso-link").replaceChildren(...providers.filter((p) => !ids.has(p.id)).map((p) =>
    el("button", { type: "button", "data-provider": p.id, onclick: () => ssoGo(p.id, true) }, `Link ${p.name}`)));
}

async function loadMfaMissing() {
  const members = await call("GET", `/orgs/${state.org.id}/members`);
  // A passkey counts: the sessions it opens have two factors (the command line's do not).
  const without = members.filter((m) => !m.mfa && !m.passkeys).map((m) => m.user.login);
  const passkeyOnly = members.filter((m) => !m.mfa && m.passkeys).map((m) => m.user.login);
  $("org-mfa-missing").textContent = (without.length
    ? `Without a second factor: ${without.join(", ")}.`
    : "Every member has a second factor.") +
    (passkeyOnly.length ? ` With passkeys only (the dashboard, logged in with one): ${passkeyOnly.join(", ")}.` : "");
}

async function loadSessions() {
  const sessions = await call("GET", "/me/sessions");
  $("sessions").querySelector("tbody").replaceChildren(...sessions.map((s) => {
    const end = s.current
      ? el("span", { class: "muted" }, "this one")
      : el("button", { type: "button", class: "danger" }, "Log out");
    if (!s.current) {
      end.addEventListener("click", async () => {
        try {
          await call("DELETE", `/me/sessions/${s.id}`);
          await loadSessions();
        } catch (e) {
          notice(`Could not end that session: ${e.message}`);
        }
      });
    }
    return el("tr", { "data-current": String(s.current) },
      el("td", {}, when(s.created_at)), el("td", {}, when(s.expires_at)),
      el("td", {}, s.source || "-"), el("td", { title: s.user_agent || "" }, client(s.user_agent)),
      el("td", { "data-cell": "by" }, loggedInBy(s)), el("td", {}, end));
  }));
}

/** How a session's login went: a passkey (by its name then), a provider, or the passphrase, and
 * the second factor given after the provider or passphrase. */
function loggedInBy(s) {
  if (s.passkey && s.second_factor !== "passkey") return `passkey «${s.passkey}»`;
  const first = s.sso ? ssoName(s.sso) : "passphrase";
  switch (s.second_factor) {
    case "passkey": return `${first} and passkey «${s.passkey}»`;
    case "totp": return `${first} and authenticator app`;
    case "recovery_code": return `${first} and a recovery code`;
    default: return first;
  }
}

/** A User-Agent as people name it: "Chrome on Linux", "hearth CLI 0.1.0". */
function client(ua) {
  if (!ua) return "-";
  const cli = /^hearth\/([\d.]+)/.exec(ua);
  if (cli) return `hearth CLI ${cli[1]}`;
  const browser = /(Edg|OPR|Firefox|Chrome|Chromium|Safari)\//.exec(ua)?.[1];
  const os = /(Windows|Mac OS X|Android|iPhone|iPad|Linux|CrOS)/.exec(ua)?.[1];
  const names = { Edg: "Edge", OPR: "Opera", "Mac OS X": "macOS", CrOS: "ChromeOS" };
  const b = names[browser] || browser;
  const o = names[os] || os;
  return b && o ? `${b} on ${o}` : b || o || ua.slice(0, 40);
}

async function onEndOtherSessions() {
  notice("");
  try {
    await call("DELETE", "/me/sessions");
    await loadSessions();
  } catch (e) {
    notice(`Could not end the other sessions: ${e.message}`);
  }
}

async function loadTokens() {
  const tokens = (await call("GET", "/tokens")).filter((t) => !t.revoked_at);
  const orgName = (id) => state.me.memberships.find((m) => m.org.id === id)?.org.name || id;
  $("tokens").querySelector("tbody").replaceChildren(...tokens.map((t) => {
    const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
    revoke.addEventListener("click", async () => {
      if (!confirm(`Revoke the API token "${t.name}"? What uses it stops working.`)) return;
      try {
        await call("DELETE", `/tokens/${t.id}`);
        await loadTokens();
      } catch (e) {
        notice(`Could not revoke the token: ${e.message}`);
      }
    });
    const limit = [t.org ? orgName(t.org) : null, t.max_role !== "owner" ? `${t.max_role} at most` : null]
      .filter(Boolean).join(", ") || "-";
    return el("tr", { "data-id": t.id },
      el("td", {}, t.name), el("td", {}, limit), el("td", {}, when(t.created_at)),
      el("td", {}, when(t.last_used_at) || "never"), el("td", {}, when(t.expires_at) || "never"),
      el("td", {}, revoke));
  }));
}

async function onMfaBegin() {
  notice("");
  try {
    const setup = await call("POST", "/me/mfa");
    $("mfa-qr").src = `data:image/svg+xml;base64,${btoa(setup.qr_svg)}`;
    $("mfa-secret").textContent = setup.secret;
    $("mfa-setup").hidden = false;
    $("mfa-begin").hidden = true;
    $("mfa-confirm-form").code.focus();
  } catch (e) {
    notice(`Could not start the setup: ${e.message}`);
  }
}

async function onMfaConfirm(ev) {
  ev.preventDefault();
  notice("");
  try {
    const out = await call("POST", "/me/mfa/confirm", { code: ev.target.code.value.trim() });
    ev.target.reset();
    state.me.mfa = true;
    $("mfa-setup").hidden = true;
    showRecoveryCodes(out.recovery_codes);
  } catch (e) {
    notice(`The second factor is not on: ${e.message}`);
  }
}

function showRecoveryCodes(codes) {
  state.me.recovery_codes_left = codes.length;
  $("mfa-codes").replaceChildren(...codes.map((c) => el("li", {}, el("code", {}, c))));
  $("mfa-recovery").hidden = false;
  renderAccount();
}

async function onMfaNewCodes() {
  notice("");
  if (!confirm("New recovery codes? The ones you have stop working.")) return;
  try {
    showRecoveryCodes((await call("POST", "/me/mfa/recovery-codes")).recovery_codes);
  } catch (e) {
    notice(`No new recovery codes: ${e.message}`);
  }
}

async function onMfaOff(ev) {
  ev.preventDefault();
  notice("");
  const code = ev.target.code.value.trim();
  try {
    await call("DELETE", "/me/mfa", code ? { code } : undefined);
    ev.target.reset();
    state.me.mfa = false;
    renderAccount();
  } catch (e) {
    notice(`The second factor stays on: ${e.message}`);
  }
}

// An organisation policy's checkbox: `path` is `mfa-policy` (members must have a second factor),
// `approval-policy` (jobs of members below admin wait for an admin's approval; jobs submitted
// earlier are not affected) or `sso-policy` (members must have logged in through a provider),
// `field` the Org field it sets; `then` runs after a change.
function onPolicy(path, field, then) {
  return async (ev) => {
    notice("");
    try {
      const org = await call("PUT", `/orgs/${state.org.id}/${path}`, { [field]: ev.target.checked });
      state.org[field] = org[field];
      if (then) await then();
    } catch (e) {
      ev.target.checked = !ev.target.checked;
      notice(`The policy is unchanged: ${e.message}`);
    }
  };
}

// ---- live events -----------------------------------------------------------------------------

function setLive(on) {
  const l = $("live");
  l.hidden = false;
  l.className = `live ${on ? "on" : "off"}`;
  l.textContent = on ? "live" : "reconnecting…";
}

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

function startEvents() {
  stopEvents();
  const es = new EventSource(`${API}/orgs/${state.org.id}/events`);
  let dropped = false;
  es.onopen = () => {
    setLive(true);
    if (dropped) {
      dropped = false;
      reload().catch(() => {});
    }
  };
  es.onerror = () => {
    dropped = true;
    setLive(false);
    // The browser retries by itself; a session that expired never comes back, so check it.
    call("GET", "/me").catch((e) => {
      if (e.status === 401) {
        stopEvents();
        notice("Your session ended. Log in again.");
        showLogin();
      }
    });
  };
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.type === "printer") {
      const old = state.printers.get(ev.printer.id);
      const known = old !== undefined;
      state.printers.set(ev.printer.id, ev.printer);
      recordTemperatures(ev.printer);
      // A task that fell due holds its printer (or was marked done elsewhere and released it);
      // a printing printer adds hours to its tasks: read them again then, at most every 30 s.
      if ((known && old.held !== ev.printer.held) || maintenanceStale()) loadMaintenance().catch(() => {});
      spoolMoved(ev.printer);
      if (known) renderPrinter(ev.printer.id);
      else {
        renderPrinters();
        renderJobs();
      }
    } else if (ev.type === "outcome") {
      const said = state.asked.get(ev.request);
      if (said !== undefined) {
        state.asked.delete(ev.request);
        sayOutcome(said, ev);
      } else {
        // Another member's request, or ours before its response: kept a little while.
        state.answered.set(ev.request, ev);
        if (state.answered.size > 100) state.answered.delete(state.answered.keys().next().value);
      }
    } else if (ev.type === "agent") {
      const a = state.agents.get(ev.agent_id);
      if (a) a.connected = ev.connected;
      renderPrinters();
    } else if (ev.type === "job") {
      state.jobs.set(ev.job.id, ev.job);
      // A job of a member who joined since the page loaded (a new operator's first job, waiting
      // for approval): their login is read once, so the table names them.
      if (!state.logins.has(ev.job.submitted_by)) loadLogins(ev.job.submitted_by).catch(() => {});
      renderJobs();
      renderPrinters();
      // A job that starts or ends has a timelapse to show, or one that stopped growing; a job
      // that ends adds hours of printing to its printer's maintenance tasks.
      if (state.tab === "jobs") loadTimelapses().catch(() => {});
      if (!ACTIVE_JOBS.has(ev.job.state)) loadMaintenance().catch(() => {});
    }
  };
  state.events = es;
}

// ---- printers --------------------------------------------------------------------------------

// One card replaced in place, so a printer's telemetry (every second or so) does not rebuild the
// others under the user's pointer.
function renderPrinter(id) {
  const old = document.querySelector(`article.printer[data-printer-id="${CSS.escape(id)}"]`);
  if (!old) return renderPrinters();
  old.replaceWith(printerCard(state.printers.get(id)));
  renderSummary([...state.printers.values()]);
}

function renderPrinters() {
  const printers = [...state.printers.values()].sort((a, b) => a.name.localeCompare(b.name));
  renderSummary(printers);
  $("printers").replaceChildren(...printers.map(printerCard));
}

function renderSummary(printers) {
  const counts = new Map();
  for (const p of printers) counts.set(p.telemetry.state, (counts.get(p.telemetry.state) || 0) + 1);
  const summary = PRINTER_STATES.filter((s) => counts.get(s)).map((s) => `${counts.get(s)} ${s}`);
  // The print that ends first: whose part to take off next.
  const next = printers
    .filter((p) => p.telemetry.state === "printing" && p.telemetry.remaining_seconds > 0)
    .sort((a, b) => a.telemetry.remaining_seconds - b.telemetry.remaining_seconds)[0];
  $("fleet-summary").textContent = printers.length === 0
    ? "No printers yet: an admin enrolls an edge agent (`hearth agents token`, then `hearth-agent enroll` next to the printers) and its printers appear here."
    : `${printers.length} printer${printers.length === 1 ? "" : "s"}: ${summary.join(", ")}` +
      (next ? ` · next to finish: ${next.name}, about ${endsAt(next.telemetry.remaining_seconds)}` : "");
}

function agentLabel(id) {
  const a = state.agents.get(id);
  if (!a) return short(id);
  return a.connected ? a.name : `${a.name} (not connected)`;
}

function printerCard(p) {
  const t = p.telemetry;
  const job = t.job_id ? state.jobs.get(t.job_id) : null;
  const heaters = t.heaters.map((h) =>
    `${h.name} ${Math.round(h.actual)}°${h.target > 0 ? ` → ${Math.round(h.target)}°` : ""}`);
  const loaded = [p.material, p.color].filter(Boolean).join(", ");
  const rows = [
    ["Loaded", `${loaded || "not stated"}${p.nozzle_mm ? ` · ${p.nozzle_mm} mm nozzle` : ""}${p.loaded_by_member && !p.spool ? " (set by a member)" : ""}`],
    ["Pools", p.pools.join(", ") || "none"],
    ["Agent", agentLabel(p.agent_id)],
    ["Heaters", heaters.join(" · ") || "—"],
  ];
  if (p.spool) {
    const s = state.spools.get(p.spool.id);
    const low = s && p.spool.remaining_grams < s.low_grams;
    rows.splice(1, 0, ["Spool", [s ? s.material.name : short(p.spool.id), ` · ${grams(p.spool.remaining_grams)} left`,
      low && el("span", { class: "low" }, " LOW")]]);
  }
  const slotSpools = p.slot_spools || [];
  if ((t.slots && t.slots.length) || slotSpools.length) {
    // An AMS: each slot as the printer's screen names it, with its material and what is left, and
    // the inventory's spool in it; then spools in slots the printer does not report (now).
    const inSlot = (name) => {
      const s = slotSpools.find((x) => x.slot === name);
      if (!s) return null;
      const low = state.spools.has(s.id) && s.remaining_grams < state.spools.get(s.id).low_grams;
      return el("span", { class: "slot-spool", "data-slot": name },
        ` (${s.name} · ${grams(s.remaining_grams)} left`, low && el("span", { class: "low" }, " LOW"), ")");
    };
    const reported = (t.slots || []).map((s) => [swatch(s.color && /^[0-9a-f]{6}$/i.test(s.color) ? `#${s.color}` : null),
      `${s.name} ${s.material}${s.remain_percent === null || s.remain_percent === undefined ? "" : ` ${s.remain_percent}%`}`,
      inSlot(s.name)]);
    const unreported = slotSpools.filter((s) => !(t.slots || []).some((x) => x.name === s.slot))
      .map((s) => [swatch(s.color), `${s.slot} ${s.material}`, inSlot(s.slot)]);
    rows.splice(1, 0, ["Slots", [...reported, ...unreported].map((x, i) => [i > 0 && " · ", ...x])]);
  }
  if (p.camera) {
    // The frame is sealed to the organisation's key: this page holds none; the member's own
    // dashboard (`hearth ui`, on their machine) opens it.
    const at = p.camera.snapshot_at;
    rows.push(["Camera", at
      ? [`sealed frame ${duration((Date.now() - Date.parse(at)) / 1000)} ago · see it with `, el("code", {}, "hearth ui")]
      : "no frame yet"]);
  }
  if (t.job_id) rows.push(["Job", short(t.job_id)]);
  // Jobs sent to this printer by name that wait in the fleet queue until it is free, and those
  // that wait for an admin's approval first.
  const waiting = queueOrder().filter((j) => j.printer === p.id).length;
  const unapproved = [...state.jobs.values()].filter((j) => j.printer === p.id && awaitsApproval(j)).length;
  if (waiting || unapproved) {
    rows.push(["Queue", [
      waiting > 0 && `${waiting} job${waiting === 1 ? "" : "s"} waiting`,
      waiting > 0 && unapproved > 0 && " · ",
      unapproved > 0 && `${unapproved}${waiting ? "" : ` job${unapproved === 1 ? "" : "s"}`} awaiting approval`,
    ]]);
  }
  if (p.held) rows.push(["Held", "no new job until released"]);
  const tasks = maintenanceLine(p.id);
  if (tasks) {
    rows.push(["Maintenance", [tasks.due && el("span", { class: "low" }, `due: ${tasks.due}`),
      tasks.due && tasks.soon && " · ", tasks.soon && `soon: ${tasks.soon}`]]);
  }
  const bed = p.bed || {};
  if (bed.to_clear) rows.push(["Bed", `part of job ${short(bed.to_clear)} on it: clear it, then say so`]);
  else if (bed.confirm_between_jobs) rows.push(["Bed", "clear; cleared by hand between jobs"]);
  if (t.layer !== null && t.layer !== undefined) {
    rows.push(["Layer", t.total_layers ? `${t.layer} of ${t.total_layers}` : `${t.layer}`]);
  }
  if (jobRunning(t.state)) {
    if (t.speed_percent) rows.push(["Speed", speedSaid(t.speed_percent, p.kind)]);
    if (t.flow_percent) rows.push(["Flow", `${t.flow_percent} %`]);
    if (t.fan_percent !== null && t.fan_percent !== undefined) rows.push(["Fan", t.fan_percent ? `${t.fan_percent} %` : "off"]);
  }
  if (t.light !== null && t.light !== undefined) rows.push(["Light", t.light ? "on" : "off"]);
  if (t.elapsed_seconds !== null && t.elapsed_seconds !== undefined) rows.push(["Elapsed", duration(t.elapsed_seconds)]);
  if (t.remaining_seconds !== null && t.remaining_seconds !== undefined) {
    rows.push(["Remaining", t.state === "printing" && t.remaining_seconds > 0
      ? `${duration(t.remaining_seconds)} · ends about ${endsAt(t.remaining_seconds)}`
      : duration(t.remaining_seconds)]);
  }
  const pct = t.progress === null || t.progress === undefined ? null : Math.round(t.progress * 1000) / 10;
  return el("article", { class: "card printer", "data-printer-id": p.id, "data-state": t.state },
    el("h2", {}, el("span", { class: "name" }, p.name), stateBadge(t.state)),
    el("div", { class: "model muted" }, `${p.model} · ${p.kind}`),
    pct !== null && el("progress", { max: 100, value: pct, title: `${pct} %` }),
    pct !== null && el("div", { class: "muted pct" }, `${pct} %`),
    el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", { "data-row": k.toLowerCase() }, v)])),
    temperatureChart(p),
    t.error && el("p", { class: "error-text" }, t.error),
    el("div", { class: "actions" },
      job && jobActions(job, p, true),
      atLeast("operator") && el("button", {
        "data-action": p.held ? "release" : "hold",
        title: p.held ? "Let the printer take jobs again" : "No new job goes to it (maintenance, a nozzle change); what it prints goes on",
        onclick: (ev) => setHold(p, !p.held, ev.currentTarget),
      }, p.held ? "Release" : "Hold"),
      atLeast("operator") && bed.to_clear &&
        el("button", { "data-action": "bed-cleared", onclick: (ev) => bedCleared(p, ev.currentTarget) }, "Bed cleared"),
      atLeast("admin") && el("button", {
        "data-action": "bed-confirm",
        title: "For printers without automatic part removal: take no next job until someone says the bed is clear",
        onclick: (ev) => setBedConfirm(p, !bed.confirm_between_jobs, ev.currentTarget),
      }, bed.confirm_between_jobs ? "Stop asking for a clear bed" : "Ask for a clear bed between jobs"),
      ...heatButtons(p),
      atLeast("operator") && p.tune && jobRunning(t.state) &&
        el("button", { "data-action": "tune", title: "Speed, flow and the part-cooling fan of this print", onclick: () => openTune(p.id) }, "Tune…"),
      atLeast("operator") && el("button", { "data-action": "loaded", onclick: () => openLoaded(p.id) }, "Change spool…"),
      atLeast("operator") &&
        el("button", { "data-action": "slots", title: "Which spool of the inventory is in each AMS tray, holder or tool", onclick: () => openSlots(p.id) }, "Spools in slots…"),
    ),
    controlButtons(p),
  );
}

// ---- the printer's actions (homing, fans, a light, macros) ------------------------------------

/** When a print with `seconds` left ends, on this browser's clock: "14:05", or "Tue 09:30" past today. */
function endsAt(seconds) {
  const end = new Date(Date.now() + seconds * 1000);
  const time = end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return end.toDateString() === new Date().toDateString()
    ? time : `${end.toLocaleDateString([], { weekday: "short" })} ${time}`;
}

/** "124 % (sport)": a Bambu Lab printer's speed modes by their speed; others' speed as it is. */
function speedSaid(pct, kind) {
  const mode = kind === "bambu" && { 50: "silent", 100: "standard", 124: "sport", 166: "ludicrous" }[pct];
  return mode ? `${pct} % (${mode})` : `${pct} %`;
}

/**
 * The printer's actions its agent offers that may run now, as each one's `when` says (the server
 * and the agent check the same): `idle`, `always` (online), `printing` (or paused).
 */
function controlButtons(p) {
  const st = p.telemetry.state;
  const runs = {
    idle: st === "idle",
    always: st !== "offline",
    printing: jobRunning(st),
  };
  // A printer's own light shows only the button that changes it, as it reports it.
  const moot = (a) => (a.id === "light-on" && p.telemetry.light === true) || (a.id === "light-off" && p.telemetry.light === false);
  const now = (p.actions || []).filter((a) => runs[a.when || "idle"] && !moot(a) && (!a.admins_only || atLeast("admin")));
  if (!atLeast("operator") || now.length === 0) return null;
  return el("div", { class: "actions controls", "aria-label": `${p.name}'s controls` },
    now.map((a) => el("button", {
      "data-run": a.id,
      title: `${a.label}: as ${p.name}'s agent defines it`,
      onclick: (ev) => runAction(p, a, ev.currentTarget),
    }, a.label)));
}

async function runAction(p, a, button) {
  if (a.confirm && !confirm(`${p.name}: ${a.label}: ${a.confirm}`)) return;
  button.disabled = true;
  try {
    const accepted = await call("POST", `/orgs/${state.org.id}/printers/${p.id}/actions/${encodeURIComponent(a.id)}`);
    sentToAgent(`${p.name}: ${a.label}`, accepted);
  } catch (e) {
    notice(`Could not run ${a.label} on ${p.name}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---- what a printer has loaded ----------------------------------------------------------------

let loadedPrinter = null;

function openLoaded(id) {
  const p = state.printers.get(id);
  loadedPrinter = id;
  const f = $("loaded-form");
  $("loaded-printer").textContent = p.name;
  f.material.value = p.material || "";
  f.color.value = p.color || "";
  f.nozzle.value = p.nozzle_mm || "";
  const spools = [...state.spools.values()].sort((a, b) => a.material.name.localeCompare(b.material.name));
  f.spool.replaceChildren(
    el("option", { value: "" }, "None: state the material and colour below"),
    ...spools.map((s) => {
      const on = s.printer && s.printer !== id ? state.printers.get(s.printer) : null;
      const where = on ? ` · now on ${on.name}` : s.location && !s.printer ? ` · ${s.location}` : "";
      return el("option", { value: s.id }, `${s.material.name} · ${grams(s.remaining_grams)} left${where} (${short(s.id)})`);
    }));
  f.spool.value = p.spool ? p.spool.id : "";
  loadedSpoolChanged();
  $("loaded-reset").hidden = !p.loaded_by_member;
  $("loaded-error").textContent = "";
  $("loaded-dialog").showModal();
}

async function saveLoaded(method, body) {
  const id = loadedPrinter;
  try {
    const p = await call(method, `/orgs/${state.org.id}/printers/${id}/loaded`, body);
    state.printers.set(p.id, p);
    $("loaded-dialog").close();
    // Which spool is on which printer changed: the inventory says so.
    await loadSpools();
    renderPrinter(p.id);
  } catch (e) {
    $("loaded-error").textContent = e.message;
  }
}

// A spool brings its material and colour: the fields show them and cannot be typed over.
function loadedSpoolChanged() {
  const f = $("loaded-form");
  const s = state.spools.get(f.spool.value);
  for (const input of [f.material, f.color]) input.disabled = Boolean(s);
  if (s) {
    f.material.value = s.material.material;
    f.color.value = s.material.color || "";
  }
}

const blankToNull = (v) => (v.trim() === "" ? null : v.trim());
const numberOrNull = (v) => (v === "" ? null : Number(v));

function onLoadedSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  const nozzle = numberOrNull(f.nozzle.value);
  const body = f.spool.value
    ? { spool: f.spool.value, nozzle_mm: nozzle }
    : { material: blankToNull(f.material.value), color: blankToNull(f.color.value), nozzle_mm: nozzle };
  saveLoaded("PUT", body);
}

// ---- spools in a printer's slots ----------------------------------------------------------------

let slotsPrinter = null;

// The slots to choose from: those the printer reports, and those holding a spool of the inventory.
function openSlots(id) {
  const p = state.printers.get(id);
  slotsPrinter = id;
  const f = $("slots-form");
  $("slots-printer").textContent = p.name;
  // Any slot name may be typed (a tool printer's T0, T1...); those the printer reports and those
  // holding a spool are offered.
  const names = [...new Set([...(p.telemetry.slots || []).map((s) => s.name), ...(p.slot_spools || []).map((s) => s.slot)])];
  $("slot-names").replaceChildren(...names.map((n) => el("option", { value: n })));
  f.slot.value = names[0] || "";
  const spools = [...state.spools.values()].sort((a, b) => a.material.name.localeCompare(b.material.name));
  f.spool.replaceChildren(
    el("option", { value: "" }, "None: take the spool out"),
    ...spools.map((s) => {
      const on = s.printer ? `${printerName(s.printer)}${s.slot ? ` ${s.slot}` : ""}` : null;
      const where = on ? ` · now on ${on}` : s.location ? ` · ${s.location}` : "";
      return el("option", { value: s.id }, `${s.material.name} · ${grams(s.remaining_grams)} left${where} (${short(s.id)})`);
    }));
  slotChosen();
  $("slots-error").textContent = "";
  $("slots-dialog").showModal();
}

// The spool in the chosen slot now is what the list shows first.
function slotChosen() {
  const f = $("slots-form");
  const p = state.printers.get(slotsPrinter);
  const s = (p.slot_spools || []).find((x) => x.slot === f.slot.value);
  f.spool.value = s ? s.id : "";
}

async function onSlotsSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  const slot = encodeURIComponent(f.slot.value);
  try {
    const p = f.spool.value
      ? await call("PUT", `/orgs/${state.org.id}/printers/${slotsPrinter}/slots/${slot}`, { spool: f.spool.value })
      : await call("DELETE", `/orgs/${state.org.id}/printers/${slotsPrinter}/slots/${slot}`);
    state.printers.set(p.id, p);
    $("slots-dialog").close();
    // Which spool is where changed: the inventory says so.
    await loadSpools();
    renderPrinters();
  } catch (e) {
    $("slots-error").textContent = e.message;
  }
}

// ---- jobs ------------------------------------------------------------------------------------

// The materials a job's sender revealed: each filament's of a job of several (PLA+PETG), else its
// one (as `SchedulingFacts::materials` on the server side).
function revealedMaterials(f) {
  const each = (f.filaments || []).map((x) => x.material).filter(Boolean);
  return each.length > 1 ? each.join("+") : f.material || null;
}

// Queued, but waiting for an admin's approval (organisations that require it): it keeps its
// place, but no printer takes it until an admin approves it.
const awaitsApproval = (j) => j.state === "queued" && Boolean(j.approval) && j.approval.state === "pending";

// The queued jobs in the order the server hands them out: higher priority first, then older.
// Those awaiting approval are left out: no printer takes them yet.
function queueOrder() {
  return [...state.jobs.values()]
    .filter((j) => j.state === "queued" && !awaitsApproval(j))
    .sort((a, b) => (b.priority || 0) - (a.priority || 0) || a.created_at.localeCompare(b.created_at) ||
      a.id.localeCompare(b.id));
}

// A queued job's place in the fleet queue, and why it waits when its printer is busy.
function queuePlace(j, order) {
  const pos = order.findIndex((x) => x.id === j.id) + 1;
  if (!pos) return null;
  const prio = j.priority ? ` · priority ${j.priority}` : "";
  let why = "";
  if (j.printer) {
    const busy = [...state.jobs.values()].find((o) =>
      o.printer === j.printer && o.state !== "queued" && ACTIVE_JOBS.has(o.state));
    const p = state.printers.get(j.printer);
    if (p && p.telemetry.state === "offline") why = " · its printer is offline";
    else if (busy) why = ` · after job ${short(busy.id)}`;
  }
  return el("div", { class: "muted queue-place" }, `#${pos} in the queue${prio}${why}`);
}

async function moveToTop(job, button) {
  button.disabled = true;
  try {
    const updated = await call("PUT", `/orgs/${state.org.id}/jobs/${job.id}/priority`, { top: true });
    state.jobs.set(updated.id, updated);
    notice("");
    renderJobs();
  } catch (e) {
    notice(`Could not move job ${short(job.id)}: ${e.message}`);
    button.disabled = false;
  }
}

function jobActions(job, printer, first) {
  if (!atLeast("operator") || !ACTIVE_JOBS.has(job.state)) return null;
  const canPause = printer ? printer.can_pause : true;
  const buttons = [];
  const unapproved = awaitsApproval(job);
  if (unapproved && atLeast("admin")) {
    buttons.push(el("button", {
      "data-action": "approve",
      "data-job-id": job.id,
      onclick: (ev) => control(job, "approve", ev.currentTarget),
    }, "Approve"));
    buttons.push(el("button", {
      class: "danger",
      "data-action": "reject",
      "data-job-id": job.id,
      onclick: (ev) => control(job, "reject", ev.currentTarget),
    }, "Reject"));
  }
  if (job.state === "queued" && !first && !unapproved) {
    buttons.push(el("button", {
      "data-action": "top",
      "data-job-id": job.id,
      onclick: (ev) => moveToTop(job, ev.currentTarget),
    }, "Move to top"));
  }
  if (job.state === "printing" && canPause) buttons.push(actionButton(job, "pause", "Pause"));
  if (job.state === "paused") buttons.push(actionButton(job, "resume", "Resume"));
  buttons.push(actionButton(job, "cancel", "Cancel"));
  return buttons;
}

function actionButton(job, action, label) {
  return el("button", {
    class: action === "cancel" ? "danger" : undefined,
    "data-action": action,
    "data-job-id": job.id,
    onclick: (ev) => control(job, action, ev.currentTarget),
  }, label);
}

// Pause, resume, cancel; or an admin's decision on a job awaiting approval: approved, it takes its
// place in the queue; rejected, it is cancelled with the reason (optional) as its message for the
// submitter.
async function control(job, action, button) {
  if (action === "cancel" && !confirm(`Cancel job ${short(job.id)}? A print in progress stops.`)) return;
  let body;
  if (action === "reject") {
    const reason = prompt(`Reject job ${short(job.id)}? It is cancelled. The reason, for its submitter (optional):`, "");
    if (reason === null) return;
    body = reason.trim() ? { reason: reason.trim().replace(/\s+/g, " ") } : {};
  } else if (action === "approve") {
    body = {};
  }
  button.disabled = true;
  try {
    const updated = await call("POST", `/orgs/${state.org.id}/jobs/${job.id}/${action}`, body);
    state.jobs.set(updated.id, updated);
    notice("");
    renderJobs();
    renderPrinters();
  } catch (e) {
    notice(`Could not ${action} job ${short(job.id)}: ${e.message}`);
    button.disabled = false;
  }
}

async function approveWaiting(button) {
  const waiting = [...state.jobs.values()].filter(awaitsApproval);
  if (!confirm(`Approve the ${waiting.length} jobs waiting for approval? Each goes to its printer.`)) return;
  button.disabled = true;
  const failed = [];
  for (const job of waiting) {
    try {
      const updated = await call("POST", `/orgs/${state.org.id}/jobs/${job.id}/approve`, {});
      state.jobs.set(updated.id, updated);
    } catch (e) {
      failed.push(`${short(job.id)}: ${e.message}`);
    }
  }
  button.disabled = false;
  notice(failed.length ? `Could not approve ${failed.join("; ")}` : "");
  renderJobs();
  renderPrinters();
}

// What became of a job's approval, beside its message: who approved it (a rejection's message
// says who rejected it and why).
function approvalLine(j) {
  const a = j.approval;
  if (!a) return null;
  if (awaitsApproval(j)) {
    return el("div", { class: "awaiting-approval" }, "awaiting approval");
  }
  if (a.state === "approved") {
    const by = a.by ? ` by ${state.logins.get(a.by) || short(a.by)}` : "";
    return el("div", { class: "muted approval", title: a.at ? when(a.at) : undefined }, `approved${by}`);
  }
  return null;
}

// While the jobs tab is open, the frame counts of timelapses in progress are fetched again
// every 15 s (frames arrive as files do: no event announces them).
setInterval(() => {
  if (state.org && state.tab === "jobs" && !document.hidden) loadTimelapses().catch(() => {});
}, 15_000);

// The part of the last job is off the printer's bed: it takes its next job.
async function bedCleared(p, button) {
  button.disabled = true;
  try {
    const updated = await call("POST", `/orgs/${state.org.id}/printers/${p.id}/bed/cleared`);
    state.printers.set(updated.id, updated);
    notice("");
    renderPrinter(updated.id);
  } catch (e) {
    notice(`Could not mark the bed of ${p.name} clear: ${e.message}`);
    button.disabled = false;
  }
}

// ---- preheating and cooling down ---------------------------------------------------------------

/** An idle printer its agent lets be heated: Preheat (its material's preset), Cool down, Heat…. */
function heatButtons(p) {
  if (!atLeast("operator") || !p.heat || p.telemetry.state !== "idle") return [];
  const heating = (p.telemetry.heaters || []).some((h) => h.target > 0);
  const pre = p.preheat;
  return [
    pre && el("button", {
      "data-action": "preheat",
      title: `Preheat for ${p.material}: nozzle ${pre.nozzle_c} °C, bed ${pre.bed_c} °C`,
      onclick: (ev) => heat(p, pre, ev.currentTarget),
    }, "Preheat"),
    heating && el("button", {
      "data-action": "cool-down",
      title: "Switch the nozzle and the bed off",
      onclick: (ev) => heat(p, { nozzle_c: 0, bed_c: 0 }, ev.currentTarget),
    }, "Cool down"),
    el("button", { "data-action": "heat", onclick: () => openHeat(p.id) }, "Heat…"),
  ];
}

/** Sends the targets to the printer's agent and says so; throws what the server refused. */
async function sendHeat(p, targets) {
  const accepted = await call("POST", `/orgs/${state.org.id}/printers/${p.id}/heat`, targets);
  const said = [["nozzle", targets.nozzle_c], ["bed", targets.bed_c]]
    .filter(([, t]) => t !== null && t !== undefined)
    .map(([what, t]) => (t === 0 ? `${what} off` : `${what} ${t} °C`));
  sentToAgent(`${p.name}: ${said.join(", ")}`, accepted);
}

/** Says a request went to a printer's agent; its answer (an `outcome` event) replaces that. */
function sentToAgent(said, accepted) {
  const id = accepted && accepted.request;
  const early = id && state.answered.get(id);
  if (early) {
    state.answered.delete(id);
    sayOutcome(said, early);
    return;
  }
  if (id) state.asked.set(id, said);
  notice(`${said}: sent to its agent.`);
}

function sayOutcome(said, ev) {
  notice(ev.ok ? `${said}: done.` : `${said}: ${ev.message || "not done"}`);
}

/** A card's Preheat or Cool down. */
async function heat(p, targets, button) {
  button.disabled = true;
  try {
    await sendHeat(p, targets);
  } catch (e) {
    notice(`Could not heat ${p.name}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

let heatPrinter = null;

function openHeat(id) {
  const p = state.printers.get(id);
  heatPrinter = id;
  const f = $("heat-form");
  $("heat-printer").textContent = p.name;
  $("heat-limits").textContent = `nozzle up to ${p.heat.max_nozzle_c} °C, bed up to ${p.heat.max_bed_c} °C`;
  f.nozzle.max = p.heat.max_nozzle_c;
  f.bed.max = p.heat.max_bed_c;
  f.nozzle.value = p.preheat ? p.preheat.nozzle_c : "";
  f.bed.value = p.preheat ? p.preheat.bed_c : "";
  $("heat-error").textContent = "";
  $("heat-dialog").showModal();
}

async function onHeatSubmit(ev) {
  ev.preventDefault();
  const f = $("heat-form");
  const p = state.printers.get(heatPrinter);
  const value = (input) => (input.value === "" ? null : Number(input.value));
  const targets = { nozzle_c: value(f.nozzle), bed_c: value(f.bed) };
  if (targets.nozzle_c === null && targets.bed_c === null) {
    $("heat-error").textContent = "Give the nozzle's or the bed's target (0 switches it off).";
    return;
  }
  try {
    await sendHeat(p, targets);
    $("heat-dialog").close();
  } catch (e) {
    $("heat-error").textContent = e.message;
  }
}

// ---- tuning a print (speed, flow, fan) ----------------------------------------------------------

let tunePrinter = null;

/** The Tune… dialog, filled with what the printer reports now, bounded by its agent's limits. */
function openTune(id) {
  const p = state.printers.get(id);
  tunePrinter = id;
  const f = $("tune-form");
  const t = p.telemetry;
  $("tune-printer").textContent = p.name;
  $("tune-limits").textContent = `speed ${p.tune.min_speed_percent} to ${p.tune.max_speed_percent} %, ` +
    `flow ${p.tune.min_flow_percent} to ${p.tune.max_flow_percent} %, fan 0 to 100 %`;
  f.speed.min = p.tune.min_speed_percent;
  f.speed.max = p.tune.max_speed_percent;
  f.flow.min = p.tune.min_flow_percent;
  f.flow.max = p.tune.max_flow_percent;
  const now = (v) => (v === null || v === undefined ? "" : v);
  for (const [input, v] of [[f.speed, t.speed_percent], [f.flow, t.flow_percent], [f.fan, t.fan_percent]]) {
    input.value = now(v);
    input.dataset.was = now(v);
  }
  $("tune-error").textContent = "";
  $("tune-dialog").showModal();
}

async function onTuneSubmit(ev) {
  ev.preventDefault();
  const f = $("tune-form");
  const p = state.printers.get(tunePrinter);
  // Only what the member changed (or gave, where the printer reports nothing) is sent.
  const changed = (input) => (input.value === "" || input.value === input.dataset.was ? null : Number(input.value));
  const tune = { speed_percent: changed(f.speed), flow_percent: changed(f.flow), fan_percent: changed(f.fan) };
  if (Object.values(tune).every((v) => v === null)) {
    $("tune-error").textContent = "Change the speed, the flow or the fan first.";
    return;
  }
  try {
    const accepted = await call("POST", `/orgs/${state.org.id}/printers/${p.id}/tune`, tune);
    const said = [["speed", tune.speed_percent], ["flow", tune.flow_percent], ["fan", tune.fan_percent]]
      .filter(([, v]) => v !== null)
      .map(([what, v]) => (what === "fan" && v === 0 ? "fan off" : `${what} ${v} %`));
    sentToAgent(`${p.name}: ${said.join(", ")}`, accepted);
    $("tune-dialog").close();
  } catch (e) {
    $("tune-error").textContent = e.message;
  }
}

async function setHold(p, held, button) {
  button.disabled = true;
  try {
    const updated = await call("PUT", `/orgs/${state.org.id}/printers/${p.id}/hold`, { held });
    state.printers.set(updated.id, updated);
    notice("");
    renderPrinter(updated.id);
  } catch (e) {
    notice(`Could not ${held ? "hold" : "release"} ${p.name}: ${e.message}`);
    button.disabled = false;
  }
}

async function setBedConfirm(p, on, button) {
  button.disabled = true;
  try {
    const updated = await call("PUT", `/orgs/${state.org.id}/printers/${p.id}/bed`, { confirm_between_jobs: on });
    state.printers.set(updated.id, updated);
    notice("");
    renderPrinter(updated.id);
  } catch (e) {
    notice(`Could not change the bed setting of ${p.name}: ${e.message}`);
    button.disabled = false;
  }
}

// The timelapses kept, fetched again; the jobs table shows them.
async function loadTimelapses() {
  const list = await call("GET", `/orgs/${state.org.id}/timelapses`);
  state.timelapses = new Map(list.map((t) => [t.job_id, t]));
  renderJobs();
}

// A job's timelapse: how many sealed frames are kept and the command that opens them (the page
// holds no key), with Delete for its submitter or an admin.
function timelapseCell(j) {
  const t = state.timelapses.get(j.id);
  if (!t) return "—";
  const mine = state.me && j.submitted_by === state.me.user.id;
  const canDelete = atLeast("admin") || (atLeast("operator") && mine);
  const over = t.over_quota ? ` · ${t.over_quota} not kept: storage full` : "";
  const until = t.expires_at ? ` · kept until ${new Date(t.expires_at).toLocaleDateString()}` : "";
  return [
    el("span", { class: "frames" }, `${t.frames} sealed frame${t.frames === 1 ? "" : "s"} · ${bytes(t.bytes)}${over}${until}`),
    el("div", { class: "muted" }, el("code", {}, `hearth timelapse ${j.id}`)),
    canDelete && el("button", {
      "data-action": "delete-timelapse",
      "data-job-id": j.id,
      onclick: (ev) => deleteTimelapse(j, ev.currentTarget),
    }, "Delete timelapse"),
  ];
}

async function deleteTimelapse(job, button) {
  if (!confirm(`Delete the timelapse of job ${short(job.id)}? Its frames are removed from the server.`)) return;
  button.disabled = true;
  try {
    await call("DELETE", `/orgs/${state.org.id}/jobs/${job.id}/timelapse`);
    state.timelapses.delete(job.id);
    notice("");
    renderJobs();
  } catch (e) {
    notice(`Could not delete the timelapse of job ${short(job.id)}: ${e.message}`);
    button.disabled = false;
  }
}

function renderJobs() {
  // Admins approve every waiting job at once (a backlog, or one the policy's end left waiting).
  const waiting = [...state.jobs.values()].filter(awaitsApproval);
  const approveAll = $("approve-waiting");
  approveAll.hidden = !atLeast("admin") || waiting.length < 2;
  approveAll.textContent = `Approve the ${waiting.length} waiting jobs`;
  const activeOnly = $("jobs-active").checked;
  const jobs = [...state.jobs.values()]
    .filter((j) => !activeOnly || ACTIVE_JOBS.has(j.state))
    .sort((a, b) => b.created_at.localeCompare(a.created_at));
  const order = queueOrder();
  $("jobs").replaceChildren(...jobs.map((j) => {
    const printer = j.printer ? state.printers.get(j.printer) : null;
    const name = printer ? printer.name : j.printer ? short(j.printer) : "";
    const where = j.pool ? (name ? `${name} (pool ${j.pool})` : `pool ${j.pool}`) : name;
    const f = j.facts || {};
    const each = revealedMaterials(f);
    const material = each && each.includes("+") ? each : [f.material, f.color].filter(Boolean).join(", ");
    const grams = f.filament_grams ? ` · ${Math.round(f.filament_grams)} g` : "";
    return el("tr", { "data-job-id": j.id, "data-state": j.state },
      el("td", {}, stateBadge(j.state), j.state === "queued" && queuePlace(j, order), approvalLine(j),
        j.message && el("div", { class: "muted message" }, j.message)),
      el("td", { class: "id", title: j.id }, short(j.id)),
      el("td", {}, where),
      el("td", {}, when(j.created_at)),
      el("td", {}, state.logins.get(j.submitted_by) || short(j.submitted_by)),
      el("td", {}, `${material || "—"}${grams}`),
      el("td", {}, f.estimated_seconds ? duration(f.estimated_seconds) : "—"),
      el("td", { class: "timelapse" }, timelapseCell(j)),
      el("td", {}, el("div", { class: "actions" }, jobActions(j, printer, order[0] && order[0].id === j.id))),
    );
  }));
  $("jobs-empty").hidden = jobs.length > 0;
}

// ---- spools and the material library -----------------------------------------------------------

// The inventory fetched again: the spools in use (and the archived ones too when asked) and the
// library. The printer cards and the loaded dialog read state.spools; the tables are redrawn.
async function loadSpools() {
  const org = state.org.id;
  const archived = $("spools-archived").checked;
  const [spools, materials] = await Promise.all([
    call("GET", `/orgs/${org}/spools?archived=${archived}`),
    call("GET", `/orgs/${org}/materials`),
  ]);
  state.spools = new Map(spools.filter((x) => !x.archived).map((x) => [x.id, x]));
  state.materials = new Map(materials.map((x) => [x.id, x]));
  renderSpools(spools);
  renderLibrary();
}

// A printer event carries what is left on its spool (after a job took some, or a weighing): the
// inventory shows the same number without asking the server again.
function spoolMoved(p) {
  const on = [...(p.spool ? [[p.spool, null]] : []), ...(p.slot_spools || []).map((x) => [x, x.slot])];
  let changed = false;
  for (const [x, slot] of on) {
    const s = state.spools.get(x.id);
    if (!s || (s.remaining_grams === x.remaining_grams && s.printer === p.id && (s.slot || null) === slot)) continue;
    s.remaining_grams = x.remaining_grams;
    s.printer = p.id;
    s.slot = slot;
    changed = true;
  }
  if (changed && state.tab === "spools" && !$("spools-archived").checked) renderSpools([...state.spools.values()]);
}

function printerName(id) {
  const p = state.printers.get(id);
  return p ? p.name : short(id);
}

function materialCell(m) {
  return [swatch(m.color), m.name,
    el("div", { class: "muted" }, [m.material, m.color, m.brand].filter(Boolean).join(" · "))];
}

function renderSpools(spools) {
  const list = [...spools].sort((a, b) =>
    Number(a.archived) - Number(b.archived) || a.material.name.localeCompare(b.material.name) ||
    a.remaining_grams - b.remaining_grams);
  $("spools").replaceChildren(...list.map((s) => {
    const low = s.remaining_grams < s.low_grams;
    const where = s.printer ? `on ${printerName(s.printer)}${s.slot ? ` (${s.slot})` : ""}` : s.location || "—";
    return el("tr", { "data-spool-id": s.id, class: s.archived ? "archived" : undefined },
      el("td", { class: "id", title: s.id }, short(s.id)),
      el("td", {}, materialCell(s.material),
        s.rfid && el("div", { class: "muted", title: `RFID ${s.rfid}` }, "RFID tag: follows its tray")),
      el("td", { class: "left" },
        el("meter", { class: "left", min: 0, max: s.initial_grams, low: s.low_grams, optimum: s.initial_grams, value: s.remaining_grams }),
        `${grams(s.remaining_grams)} of ${grams(s.initial_grams)}`,
        low && el("span", { class: "low" }, " LOW"),
        el("div", { class: "muted" }, `about ${Math.round(s.remaining_m)} m`)),
      el("td", { class: "where" }, s.archived ? "archived" : where),
      el("td", {}, s.last_used_at ? when(s.last_used_at) : "never"),
      el("td", {}, el("div", { class: "actions" },
        el("button", { "data-action": "uses", onclick: () => showSpoolUses(s) }, "Jobs"),
        atLeast("operator") && !s.archived && el("button", { "data-action": "edit", onclick: () => openSpoolEdit(s) }, "Weigh or edit…"),
        atLeast("operator") && el("button", {
          class: s.archived ? undefined : "danger",
          "data-action": s.archived ? "restore" : "archive",
          onclick: (ev) => archiveSpool(s, !s.archived, ev.currentTarget),
        }, s.archived ? "Restore" : "Archive"),
      )),
    );
  }));
  $("spools-empty").hidden = list.length > 0;
  $("spools-empty").textContent = state.materials.size === 0
    ? "No spools yet: add the material to the library below, then its spools."
    : "No spools yet: add one below.";
  const f = $("spool-form");
  const chosen = f.material.value;
  const materials = [...state.materials.values()].sort((a, b) => a.name.localeCompare(b.name));
  f.material.replaceChildren(...materials.map((m) => el("option", { value: m.id }, m.name)));
  if (state.materials.has(chosen)) f.material.value = chosen;
  f.querySelector("button[type=submit]").disabled = materials.length === 0;
}

async function showSpoolUses(s) {
  const uses = await call("GET", `/orgs/${state.org.id}/spools/${s.id}/usage`);
  $("spool-uses-name").textContent = `${s.material.name} (${short(s.id)})`;
  $("spool-uses").replaceChildren(...uses.map((u) =>
    el("tr", { "data-job-id": u.job_id },
      el("td", {}, when(u.at)),
      el("td", { class: "id", title: u.job_id }, short(u.job_id)),
      el("td", {}, u.printer ? `${printerName(u.printer)}${u.slot ? ` (${u.slot})` : ""}` : "—"),
      el("td", {}, stateBadge(u.state)),
      el("td", { class: "num" }, grams(u.grams)),
    )));
  if (uses.length === 0) {
    $("spool-uses").replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No job has printed from it yet.")));
  }
  $("spool-uses-area").hidden = false;
}

async function archiveSpool(s, archived, button) {
  if (archived && !confirm(`Archive the spool ${s.material.name} (${short(s.id)})?` +
    `${s.printer ? ` It comes off ${printerName(s.printer)}.` : ""}`)) return;
  button.disabled = true;
  try {
    await call("PATCH", `/orgs/${state.org.id}/spools/${s.id}`, { archived });
    notice("");
    await loadSpools();
  } catch (e) {
    notice(`Could not ${archived ? "archive" : "restore"} the spool: ${e.message}`);
    button.disabled = false;
  }
}

async function onSpoolSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  $("spool-error").textContent = "";
  const body = { material: f.material.value, initial_grams: Number(f.initial.value) };
  for (const [field, input] of [["remaining_grams", f.remaining], ["empty_spool_grams", f.empty], ["low_grams", f.low]]) {
    if (input.value !== "") body[field] = Number(input.value);
  }
  if (f.location.value.trim()) body.location = f.location.value.trim();
  try {
    await call("POST", `/orgs/${state.org.id}/spools`, body);
    for (const input of [f.remaining, f.empty, f.low, f.location]) input.value = "";
    await loadSpools();
  } catch (e) {
    $("spool-error").textContent = e.message;
  }
}

let editedSpool = null;

function openSpoolEdit(s) {
  editedSpool = s;
  const f = $("spool-edit");
  f.reset();
  $("spool-edit-name").textContent = `${s.material.name} (${short(s.id)})`;
  f.empty.value = s.empty_spool_grams ?? "";
  f.remaining.placeholder = `${Math.round(s.remaining_grams * 10) / 10}`;
  f.low.value = s.low_grams;
  f.location.value = s.location || "";
  $("spool-edit-error").textContent = "";
  $("spool-dialog").showModal();
}

// Only what the member changed is sent: a weighing, or what is left, and the other fields. An
// emptied field is cleared (null), as PATCH reads it.
async function onSpoolEditSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  const s = editedSpool;
  const body = {};
  if (f.weighed.value !== "") body.weighed_grams = Number(f.weighed.value);
  if (f.remaining.value !== "") body.remaining_grams = Number(f.remaining.value);
  if (numberOrNull(f.empty.value) !== (s.empty_spool_grams ?? null)) body.empty_spool_grams = numberOrNull(f.empty.value);
  if (f.low.value !== "" && Number(f.low.value) !== s.low_grams) body.low_grams = Number(f.low.value);
  if (blankToNull(f.location.value) !== (s.location ?? null)) body.location = blankToNull(f.location.value);
  try {
    if (Object.keys(body).length > 0) await call("PATCH", `/orgs/${state.org.id}/spools/${s.id}`, body);
    $("spool-dialog").close();
    await loadSpools();
  } catch (e) {
    $("spool-edit-error").textContent = e.message;
  }
}

function renderLibrary() {
  const materials = [...state.materials.values()].sort((a, b) => a.name.localeCompare(b.name));
  const num = (v, digits) => (v === null || v === undefined ? "—" : v.toFixed(digits));
  $("library").replaceChildren(...materials.map((m) =>
    el("tr", { "data-material-id": m.id, "data-material": m.name },
      el("td", {}, swatch(m.color), m.name),
      el("td", {}, m.brand || "—"),
      el("td", {}, m.material),
      el("td", {}, m.color || "—"),
      el("td", { class: "num" }, `${num(m.density_g_cm3, 2)} g/cm³`),
      el("td", { class: "num" }, `${num(m.diameter_mm, 2)} mm`),
      el("td", { class: "num" }, num(m.price_per_kg, 2)),
      el("td", {}, atLeast("operator") && el("div", { class: "actions" },
        el("button", { "data-action": "edit", onclick: () => setMaterialForm(m) }, "Edit"),
        el("button", { class: "danger", "data-action": "remove", onclick: () => removeMaterial(m) }, "Remove"),
      )),
    )));
  $("library-empty").hidden = materials.length > 0;
}

// The material being edited in the form, or null when the form adds one.
let editedMaterial = null;

function setMaterialForm(m) {
  editedMaterial = m;
  const f = $("material-form");
  f.reset();
  $("material-error").textContent = "";
  if (m) {
    f.mname.value = m.name;
    f.material.value = m.material;
    f.brand.value = m.brand || "";
    f.color.value = m.color || "";
    f.density.value = m.density_g_cm3;
    f.diameter.value = m.diameter_mm;
    f.price.value = m.price_per_kg ?? "";
    f.scrollIntoView();
  }
  $("material-form-title").textContent = m ? `Edit ${m.name}` : "Add a material";
  $("material-submit").textContent = m ? "Save" : "Add material";
  $("material-edit-cancel").hidden = m === null;
}

async function onMaterialSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  $("material-error").textContent = "";
  const body = {
    name: f.mname.value.trim(),
    material: f.material.value.trim(),
    brand: blankToNull(f.brand.value),
    color: blankToNull(f.color.value),
    price_per_kg: numberOrNull(f.price.value),
  };
  // Left blank, density and diameter keep what is stored (or take the type's usual values).
  if (f.density.value !== "") body.density_g_cm3 = Number(f.density.value);
  if (f.diameter.value !== "") body.diameter_mm = Number(f.diameter.value);
  try {
    if (editedMaterial) await call("PATCH", `/orgs/${state.org.id}/materials/${editedMaterial.id}`, body);
    else await call("POST", `/orgs/${state.org.id}/materials`, body);
    setMaterialForm(null);
    await loadSpools();
    renderPrinters();
  } catch (e) {
    $("material-error").textContent = e.message;
  }
}

async function removeMaterial(m) {
  if (!confirm(`Remove ${m.name} from the library?`)) return;
  try {
    await call("DELETE", `/orgs/${state.org.id}/materials/${m.id}`);
    notice("");
    if (editedMaterial && editedMaterial.id === m.id) setMaterialForm(null);
    await loadSpools();
  } catch (e) {
    notice(`Could not remove ${m.name}: ${e.message}`);
  }
}

// ---- maintenance -----------------------------------------------------------------------------

const kindWords = (k) => k.replace(/_/g, " ");

// Hours of printing as the server counts them, in tenths: "12.5 h".
const printHours = (h) => `${Number(Math.abs(h).toFixed(1))} h`;

// What a printer's card says of its tasks: the kinds due and those due soon, or null when none.
function maintenanceLine(printerId) {
  const tasks = (state.maintenance || []).filter((m) => m.printer_id === printerId);
  const kinds = (status) => tasks.filter((m) => m.status === status).map((m) => kindWords(m.kind)).join(", ");
  const line = { due: kinds("due"), soon: kinds("soon") };
  return line.due || line.soon ? line : null;
}

// When the tasks were last read (ms), and whether a read is under way: printer events come every
// second or so, the tasks are read again at most every 30 s.
let maintenanceAt = 0;
let maintenanceLoading = false;
const maintenanceStale = () => !maintenanceLoading && Date.now() - maintenanceAt > 30_000;

// The tasks, fetched again; the cards whose line changed are drawn again, the others stay.
async function loadMaintenance() {
  maintenanceLoading = true;
  let tasks;
  try {
    tasks = await call("GET", `/orgs/${state.org.id}/maintenance`);
  } finally {
    maintenanceLoading = false;
    maintenanceAt = Date.now();
  }
  const before = new Map([...state.printers.keys()].map((id) => [id, JSON.stringify(maintenanceLine(id))]));
  state.maintenance = tasks;
  for (const [id, line] of before) {
    if (JSON.stringify(maintenanceLine(id)) !== line) renderPrinter(id);
  }
  if (state.tab === "maintenance") renderMaintenance();
}

function maintenanceStatus(m) {
  const left = [];
  if (m.print_hours_left !== null && m.print_hours_left !== undefined) {
    left.push(m.print_hours_left < 0 ? `${printHours(m.print_hours_left)} of printing over`
      : `${printHours(m.print_hours_left)} of printing left`);
  }
  if (m.due_on) left.push(`${m.status === "due" ? "was due" : "due"} ${m.due_on.slice(0, 10)}`);
  const word = { due: "Due", soon: "Soon", ok: "OK" }[m.status] || m.status;
  return [el("span", { class: m.status === "due" ? "low" : "" }, word), left.length ? ` · ${left.join(", ")}` : ""];
}

function renderMaintenance() {
  const tasks = state.maintenance || [];
  $("maintenance-empty").hidden = tasks.length > 0;
  $("maintenance").replaceChildren(...tasks.map((m) => {
    // Whichever comes first: the server counts both and the nearer one decides.
    const every = [m.every_print_hours && `${m.every_print_hours} h printing`, m.every_days && `${m.every_days} days`]
      .filter(Boolean).join(" · ") + (m.hold_when_due ? " (holds the printer)" : "");
    return el("tr", { "data-printer": m.printer, "data-printer-id": m.printer_id, "data-kind": m.kind, "data-status": m.status },
      el("td", {}, m.printer),
      el("td", {}, kindWords(m.kind)),
      el("td", {}, every),
      el("td", {}, `${printHours(m.print_hours_since)} printing · last done ${m.last_done.slice(0, 10)}`,
        m.done_by && el("span", { class: "muted" }, ` by ${state.logins.get(m.done_by) || short(m.done_by)}`)),
      el("td", { class: "status" }, maintenanceStatus(m)),
      el("td", {}, atLeast("operator") && el("div", { class: "actions" },
        el("button", {
          "data-action": "maintenance-done",
          title: "It was done now: its hours and days count again from here",
          onclick: (ev) => maintenanceDone(m, ev.currentTarget),
        }, "Mark done"),
        el("button", {
          class: "danger",
          "data-action": "maintenance-remove",
          onclick: (ev) => removeMaintenance(m, ev.currentTarget),
        }, "Remove"),
      )),
    );
  }));
  const f = $("maintenance-form");
  const chosen = f.printer.value;
  f.printer.replaceChildren(...[...state.printers.values()].sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => el("option", { value: p.id }, p.name)));
  if (chosen) f.printer.value = chosen;
}

async function maintenanceDone(m, button) {
  button.disabled = true;
  try {
    await call("POST", `/orgs/${state.org.id}/printers/${m.printer_id}/maintenance/${m.kind}/done`);
    notice("");
    await loadMaintenance();
  } catch (e) {
    notice(`Could not mark ${kindWords(m.kind)} done on ${m.printer}: ${e.message}`);
    button.disabled = false;
  }
}

async function removeMaintenance(m, button) {
  if (!confirm(`Remove the ${kindWords(m.kind)} task from ${m.printer}?`)) return;
  button.disabled = true;
  try {
    await call("DELETE", `/orgs/${state.org.id}/printers/${m.printer_id}/maintenance/${m.kind}`);
    notice("");
    await loadMaintenance();
  } catch (e) {
    notice(`Could not remove ${kindWords(m.kind)} from ${m.printer}: ${e.message}`);
    button.disabled = false;
  }
}

async function onMaintenanceSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  $("maintenance-error").textContent = "";
  const body = { hold_when_due: f.hold.checked };
  if (f.hours.value !== "") body.every_print_hours = Number(f.hours.value);
  if (f.days.value !== "") body.every_days = Number(f.days.value);
  if (f.last.value) body.last_done = `${f.last.value}T00:00:00Z`;
  try {
    await call("PUT", `/orgs/${state.org.id}/printers/${f.printer.value}/maintenance/${f.kind.value}`, body);
    for (const input of [f.hours, f.days, f.last]) input.value = "";
    f.hold.checked = false;
    await loadMaintenance();
  } catch (e) {
    $("maintenance-error").textContent = e.message;
  }
}

// ---- statistics ------------------------------------------------------------------------------

async function loadStats() {
  const hours = Number($("stats-hours").value);
  const org = state.org.id;
  const since = Date.now() - hours * 3600 * 1000;
  const days = Math.max(1, Math.round(hours / 24));
  const [stats, taken, members] = await Promise.all([
    call("GET", `/orgs/${org}/stats?days=${days}`),
    call("GET", `/orgs/${org}/usage/materials?days=${days}`),
    call("GET", `/orgs/${org}/usage/members?days=${days}`),
  ]);
  $("member-stats").replaceChildren(...members.map((m) => {
    const revealed = m.revealed_grams_jobs === 0 ? (m.jobs.completed ? "not revealed" : "—")
      : `${Math.round(m.revealed_grams)} g${m.revealed_grams_jobs < m.jobs.completed
        ? ` (${m.revealed_grams_jobs} of ${m.jobs.completed} jobs revealed it)` : ""}`;
    return el("tr", { "data-member": m.login || m.user_id },
      el("td", {}, m.login || m.user_id),
      el("td", { class: "num" }, m.jobs.completed),
      el("td", { class: "num" }, m.jobs.failed + m.jobs.cancelled),
      el("td", { class: "num" }, grams(m.spool_grams)),
      el("td", { class: "num" }, m.cost === null || m.cost === undefined ? "—" : m.cost.toFixed(2)),
      el("td", { class: "num" }, revealed),
      el("td", { class: "num" }, m.estimated_seconds ? duration(m.estimated_seconds) : "—"),
    );
  }));
  if (members.length === 0) {
    $("member-stats").replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" },
      "No job ended in this period.")));
  }
  $("spool-stats").replaceChildren(...taken.map((u) =>
    el("tr", { "data-material": u.material || "" },
      el("td", {}, u.material || "not stated"),
      el("td", {}, swatch(u.color), u.color || "—"),
      el("td", { class: "num" }, u.jobs),
      el("td", { class: "num" }, grams(u.grams)),
      el("td", { class: "num" }, u.cost === null || u.cost === undefined ? "—" : u.cost.toFixed(2)),
    )));
  if (taken.length === 0) {
    $("spool-stats").replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" },
      "No job took filament from a spool in this period.")));
  }
  const finished = [...state.jobs.values()].filter((j) => Date.parse(j.updated_at) >= since);
  const cell = (secs, total) => el("td", { class: "num" },
    secs > 0 ? `${duration(secs)} (${Math.round((100 * secs) / total)} %)` : "—");
  // One answer from the server (`hearth stats` shows the same): time per state and how the jobs
  // that ended on each printer ended.
  const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)} %`);
  $("stats").replaceChildren(...[...stats.printers].sort((a, b) => a.printer.localeCompare(b.printer)).map((p) => {
    const s = p.seconds;
    const total = Object.values(s).reduce((a, b) => a + b, 0) || 1;
    return el("tr", { "data-printer-id": p.printer_id },
      el("td", {}, p.printer),
      cell(s.printing || 0, total),
      cell(s.idle || 0, total),
      cell((s.paused || 0) + (s.pausing || 0), total),
      cell(s.error || 0, total),
      cell(s.offline || 0, total),
      el("td", { class: "num" }, p.jobs.completed),
      el("td", { class: "num" }, p.jobs.failed + p.jobs.cancelled + p.jobs.refused),
      el("td", { class: "num" }, pct(p.utilisation)),
      el("td", { class: "num" }, pct(p.success_rate)),
    );
  }));
  const materials = new Map();
  for (const j of finished.filter((x) => x.state === "completed")) {
    const f = j.facts || {};
    const key = revealedMaterials(f) || "not revealed";
    const m = materials.get(key) || { jobs: 0, grams: 0, weighed: 0, seconds: 0 };
    m.jobs += 1;
    if (f.filament_grams) { m.grams += f.filament_grams; m.weighed += 1; }
    m.seconds += f.estimated_seconds || 0;
    materials.set(key, m);
  }
  $("materials").replaceChildren(...[...materials.entries()].sort().map(([name, m]) =>
    el("tr", { "data-material": name },
      el("td", {}, name),
      el("td", { class: "num" }, m.jobs),
      el("td", { class: "num" }, m.weighed === 0 ? "not revealed"
        : `${Math.round(m.grams)} g${m.weighed < m.jobs ? ` (${m.weighed} of ${m.jobs} jobs revealed it)` : ""}`),
      el("td", { class: "num" }, m.seconds ? duration(m.seconds) : "—"),
    )));
  if (materials.size === 0) {
    $("materials").replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No job completed in this period.")));
  }
}

// ---- notification channels (admins) ----------------------------------------------------------

// "delivered (200)", "failed (the destination answered 404: …)", "pending (…), next try …".
function deliveryOutcome(d) {
  const detail = d.state !== "delivered" && d.error ? ` (${d.error})`
    : d.response_status ? ` (${d.response_status})` : "";
  if (d.state === "pending" && d.next_attempt_at) return `pending${detail}, next try ${when(d.next_attempt_at)}`;
  return `${d.state}${detail}`;
}

async function loadChannels() {
  const channels = await call("GET", `/orgs/${state.org.id}/notifications`);
  $("channels").replaceChildren(...channels.map((c) => {
    const d = c.last_delivery;
    return el("tr", { "data-channel-id": c.id, "data-channel": c.name },
      el("td", {}, c.name),
      el("td", {}, c.kind),
      el("td", { class: "id" }, c.destination),
      el("td", {}, c.events.join(", ")),
      el("td", {}, c.pools.length ? `pools ${c.pools.join(", ")}` : "all"),
      el("td", { "data-cell": "quiet" }, c.quiet_hours
        ? `${c.quiet_hours.from}–${c.quiet_hours.to} ${c.quiet_hours.time_zone}` : "—"),
      el("td", { class: "latest" },
        d ? el("span", { class: d.state === "delivered" ? "ok" : d.state === "failed" ? "bad" : "" },
          `${when(d.last_attempt_at)} ${d.event}: ${deliveryOutcome(d)}`) : "—",
        c.pending > 0 && el("div", { class: "muted" }, `${c.pending} waiting`)),
      el("td", {}, el("div", { class: "actions" },
        el("button", { "data-action": "test", onclick: (ev) => testChannel(c, ev.currentTarget) }, "Send a test"),
        el("button", { "data-action": "deliveries", onclick: () => showDeliveries(c) }, "Deliveries"),
        el("button", { "data-action": "edit", onclick: () => editChannel(c) }, "Edit"),
        el("button", { class: "danger", "data-action": "remove", onclick: () => removeChannel(c) }, "Remove"),
      )),
    );
  }));
  $("channels-empty").hidden = channels.length > 0;
}

async function testChannel(c, button) {
  button.disabled = true;
  try {
    const d = await call("POST", `/orgs/${state.org.id}/notifications/${c.id}/test`);
    notice(d.state === "delivered" ? "" : `The test to ${c.name} was not delivered: ${deliveryOutcome(d)}`);
    await loadChannels();
  } catch (e) {
    notice(`Could not test ${c.name}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

async function showDeliveries(c) {
  const list = await call("GET", `/orgs/${state.org.id}/notifications/${c.id}/deliveries`);
  $("deliveries-name").textContent = c.name;
  $("deliveries").replaceChildren(...list.map((d) =>
    el("tr", { "data-state": d.state },
      el("td", {}, when(d.created_at)),
      el("td", {}, d.event),
      el("td", {}, d.title),
      el("td", { class: "num" }, d.attempts),
      el("td", {}, deliveryOutcome(d)),
    )));
  if (list.length === 0) {
    $("deliveries").replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Nothing sent yet.")));
  }
  $("deliveries-area").hidden = false;
}

async function removeChannel(c) {
  if (!confirm(`Remove the channel ${c.name}? Notifications waiting for it are dropped.`)) return;
  try {
    await call("DELETE", `/orgs/${state.org.id}/notifications/${c.id}`);
    $("deliveries-area").hidden = true;
    await loadChannels();
  } catch (e) {
    notice(`Could not remove ${c.name}: ${e.message}`);
  }
}

function channelKindChanged() {
  const f = $("channel-form");
  $("channel-token").hidden = f.kind.value !== "ntfy";
  f.url.placeholder = {
    ntfy: "https://ntfy.sh/your-topic",
    slack: "https://hooks.slack.com/services/…",
    discord: "https://discord.com/api/webhooks/…",
    webhook: "https://example.org/hooks/hearth",
    email: "mailto:ops@example.org,lead@example.org",
  }[f.kind.value];
}

// The channel being edited in the form, or null when the form adds one. Editing changes the name,
// the events and the pools; the destination stays (its secret goes with it).
let editing = null;

function setChannelForm(c) {
  editing = c;
  const f = $("channel-form");
  f.reset();
  $("channel-error").textContent = "";
  $("channel-secret").hidden = true;
  for (const input of [f.kind, f.url, f.token]) input.disabled = c !== null;
  f.url.required = c === null;
  if (c) {
    f.cname.value = c.name;
    f.kind.value = c.kind;
    f.url.value = c.destination;
    f.pools.value = c.pools.join(", ");
    for (const box of f.querySelectorAll("#channel-events input")) box.checked = c.events.includes(box.value);
    if (c.quiet_hours) {
      f.qfrom.value = c.quiet_hours.from;
      f.qto.value = c.quiet_hours.to;
      f.qzone.value = c.quiet_hours.time_zone;
    }
  }
  // This browser's zone, the likely one.
  if (!f.qzone.value) f.qzone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  $("channel-form-title").textContent = c ? `Edit ${c.name}` : "Add a channel";
  $("channel-submit").textContent = c ? "Save" : "Add channel";
  $("channel-edit-cancel").hidden = c === null;
  channelKindChanged();
}

function editChannel(c) {
  setChannelForm(c);
  $("channel-form").scrollIntoView();
}

async function onChannelSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  $("channel-error").textContent = "";
  $("channel-secret").hidden = true;
  const events = [...f.querySelectorAll("#channel-events input:checked")].map((i) => i.value);
  const pools = f.pools.value.split(",").map((p) => p.trim()).filter(Boolean);
  // Both times, or none: no quiet hours.
  const quiet = f.qfrom.value && f.qto.value
    ? { from: f.qfrom.value, to: f.qto.value, time_zone: f.qzone.value.trim() || "UTC" } : null;
  if (editing) {
    try {
      await call("PATCH", `/orgs/${state.org.id}/notifications/${editing.id}`,
        { name: f.cname.value.trim(), events, pools, quiet_hours: quiet });
      setChannelForm(null);
      await loadChannels();
    } catch (e) {
      $("channel-error").textContent = e.message;
    }
    return;
  }
  const body = { name: f.cname.value.trim(), kind: f.kind.value, url: f.url.value.trim(), events };
  if (f.kind.value === "ntfy" && f.token.value.trim()) body.token = f.token.value.trim();
  if (pools.length) body.pools = pools;
  if (quiet) body.quiet_hours = quiet;
  try {
    const created = await call("POST", `/orgs/${state.org.id}/notifications`, body);
    f.cname.value = "";
    f.url.value = "";
    f.token.value = "";
    f.pools.value = "";
    if (created.signing_secret) {
      $("channel-secret-value").textContent = created.signing_secret;
      $("channel-secret").hidden = false;
    }
    await loadChannels();
  } catch (e) {
    $("channel-error").textContent = e.message;
  }
}

function buildEventChoices() {
  $("channel-events").append(...EVENTS.map(([value, label, on]) =>
    el("label", {}, el("input", { type: "checkbox", name: "event", value, checked: on }), ` ${label} `,
      el("span", { class: "muted" }, `(${value})`))));
}

// ---- audit -----------------------------------------------------------------------------------

function actorName(actor) {
  if (!actor) return "";
  const [kind, id] = actor.split(":");
  if (kind === "user" && state.logins.has(id)) return state.logins.get(id);
  if (kind === "agent" && state.agents.has(id)) return `agent ${state.agents.get(id).name}`;
  return `${kind} ${short(id)}`;
}

async function loadAudit() {
  const org = state.org.id;
  loadForwarding().catch((e) => notice(`Could not read the audit log's forwarding: ${e.message}`));
  const first = await call("GET", `/orgs/${org}/audit?limit=1`);
  const head = first.head ? first.head.seq : 0;
  const page = await call("GET", `/orgs/${org}/audit?after=${Math.max(0, head - 100)}&limit=100`);
  $("audit").replaceChildren(...page.entries.reverse().map((e) =>
    el("tr", { "data-seq": e.seq, "data-action": e.action },
      el("td", {}, e.seq),
      el("td", {}, new Date(e.ts_ms).toLocaleString()),
      el("td", {}, actorName(e.actor)),
      el("td", {}, e.action),
      el("td", { class: "id" }, e.target || ""),
      el("td", {}, e.source || ""),
    )));
}

// Instance admins: whether the server also sends its audit log to a syslog collector (a SIEM),
// and how that goes, as the instance that answers sees it; nothing when it sends it nowhere.
async function loadForwarding() {
  const line = $("audit-forwarding");
  if (!isInstanceAdmin()) {
    line.hidden = true;
    return;
  }
  const f = await call("GET", "/system/audit/forwarding");
  line.hidden = !f.syslog;
  if (!f.syslog) return;
  const waiting = `${f.waiting} ${f.waiting === 1 ? "entry waits" : "entries wait"}`;
  if (f.error) {
    line.className = "bad";
    line.textContent = `Sending the audit log to the syslog collector ${f.syslog} fails since ` +
      `${when(f.failing_since)}: ${f.error}. ${waiting}; they go as soon as it takes them.`;
  } else {
    line.className = "muted";
    line.textContent = `The audit log is also sent to the syslog collector ${f.syslog}: ${waiting}` +
      (f.last_sent_at ? `, last sent ${when(f.last_sent_at)}.` : ".");
  }
}

async function onVerify() {
  const out = $("audit-result");
  out.textContent = "Verifying…";
  out.className = "";
  try {
    const v = await call("GET", `/orgs/${state.org.id}/audit/verify`);
    out.className = v.ok ? "ok" : "bad";
    out.textContent = v.ok
      ? `Intact: ${v.entries_checked} entries checked, head #${v.verified_head.seq} ${v.verified_head.hash.slice(0, 16)}… ` +
        "(the server's own check; `hearth audit verify` recomputes it on your machine and pins its head)"
      : `Broken: ${v.message}`;
  } catch (e) {
    out.className = "bad";
    out.textContent = `Could not verify: ${e.message}`;
  }
}

// ---- legal requests ----------------------------------------------------------------------------

const isInstanceAdmin = () => Boolean(state.me && state.me.user.instance_admin);

// The organisation's legal requests, read from its audit chain by the server: newest first, as the
// log above, each with the number of its entry there.
async function loadLegal() {
  const list = await call("GET", `/orgs/${state.org.id}/legal-requests`);
  $("legal-empty").hidden = list.length > 0;
  $("legal").replaceChildren(...list.reverse().map((r) =>
    el("tr", { "data-seq": r.seq },
      el("td", { class: "day" }, r.received_on),
      el("td", { "data-cell": "authority" }, r.authority),
      el("td", { "data-cell": "reference" }, r.reference || "—"),
      el("td", { "data-cell": "requested" }, r.requested),
      el("td", { "data-cell": "disclosed" }, r.disclosed),
      el("td", { "data-cell": "recorded" }, `by ${r.recorded_by}, ${when(r.recorded_at)}`,
        el("span", { class: "muted" }, ` · entry #${r.seq}`)),
    )));
}

async function onLegalSubmit(ev) {
  ev.preventDefault();
  const f = ev.target;
  const button = f.querySelector("button[type=submit]");
  const status = $("legal-status");
  status.textContent = "";
  const reference = f.reference.value.trim();
  const body = {
    org: f.concerns.checked ? state.org.id : null,
    authority: f.authority.value.trim(),
    reference: reference || null,
    received_on: f.received.value,
    requested: f.requested.value.trim(),
    disclosed: f.disclosed.value.trim(),
  };
  button.disabled = true;
  let recorded;
  try {
    recorded = await call("POST", "/system/legal-requests", body);
  } catch (e) {
    notice(`Could not record the legal request: ${e.message}`);
    return;
  } finally {
    button.disabled = false;
  }
  notice("");
  f.reset();
  status.textContent = body.org
    ? `Recorded in this organisation's audit log and the instance's (entry #${recorded.seq} there).`
    : `Recorded in the instance's audit log only (entry #${recorded.seq}), so it is not listed here.`;
  await Promise.all([
    loadLegal().catch((e) => notice(`Could not read the legal requests: ${e.message}`)),
    loadAudit().catch((e) => notice(`Could not read the audit log: ${e.message}`)),
  ]);
}

// ---- wiring ----------------------------------------------------------------------------------

async function main() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("org").addEventListener("change", (e) => openOrg(e.target.value).catch((x) => notice(x.message)));
  $("jobs-active").addEventListener("change", renderJobs);
  $("audit-verify").addEventListener("click", onVerify);
  $("legal-form").addEventListener("submit", onLegalSubmit);
  $("mfa-begin").addEventListener("click", onMfaBegin);
  $("mfa-confirm-form").addEventListener("submit", onMfaConfirm);
  $("mfa-off-form").addEventListener("submit", onMfaOff);
  $("mfa-new-codes").addEventListener("click", onMfaNewCodes);
  $("org-require-mfa").addEventListener("change", onPolicy("mfa-policy", "require_mfa", loadMfaMissing));
  $("org-require-approval").addEventListener("change", onPolicy("approval-policy", "require_approval"));
  $("org-require-sso").addEventListener("change", onPolicy("sso-policy", "require_sso"));
  $("sessions-end-others").addEventListener("click", onEndOtherSessions);
  $("stats-hours").addEventListener("change", () => loadStats().catch((e) => notice(e.message)));
  $("loaded-form").addEventListener("submit", onLoadedSubmit);
  $("loaded-reset").addEventListener("click", () => saveLoaded("DELETE"));
  $("loaded-close").addEventListener("click", () => $("loaded-dialog").close());
  $("loaded-form").spool.addEventListener("change", loadedSpoolChanged);
  $("slots-form").addEventListener("submit", onSlotsSubmit);
  $("approve-waiting").addEventListener("click", (ev) => approveWaiting(ev.currentTarget));
  $("slots-close").addEventListener("click", () => $("slots-dialog").close());
  $("heat-form").addEventListener("submit", onHeatSubmit);
  $("heat-close").addEventListener("click", () => $("heat-dialog").close());
  $("tune-form").addEventListener("submit", onTuneSubmit);
  $("tune-close").addEventListener("click", () => $("tune-dialog").close());
  $("slots-form").slot.addEventListener("input", slotChosen);
  $("spools-archived").addEventListener("change", () => loadSpools().catch((e) => notice(e.message)));
  $("spool-form").addEventListener("submit", onSpoolSubmit);
  $("spool-edit").addEventListener("submit", onSpoolEditSubmit);
  $("spool-edit-close").addEventListener("click", () => $("spool-dialog").close());
  $("material-form").addEventListener("submit", onMaterialSubmit);
  $("maintenance-form").addEventListener("submit", onMaintenanceSubmit);
  $("material-edit-cancel").addEventListener("click", () => setMaterialForm(null));
  buildEventChoices();
  $("channel-form").addEventListener("submit", onChannelSubmit);
  $("channel-form").kind.addEventListener("change", channelKindChanged);
  $("channel-edit-cancel").addEventListener("click", () => setChannelForm(null));
  channelKindChanged();
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("passkey-login").addEventListener("click", onPasskeyLogin);
  $("passkey-second").addEventListener("click", onPasskeySecond);
  $("passkey-form").addEventListener("submit", onPasskeyAdd);
  $("sso-code-form").addEventListener("submit", onSsoCode);
  $("sso-passkey").addEventListener("click", onSsoPasskey);
  $("sso-code-cancel").addEventListener("click", () => { notice(""); showLogin(); });
  const sso = ssoReturn();
  try {
    state.info = await call("GET", "/info");
  } catch (e) {
    notice(e.message);
  }
  if (sso && sso.finish) {
    state.ssoStarted = sso.started;
    await finishSso();
    return;
  }
  try {
    await start();
  } catch (e) {
    if (e.status === 401) {
      showLogin();
      // The session's provider was taken out of the server's configuration: say so.
      if (e.code === "sso_provider_removed") notice(e.message);
    } else notice(`Could not load the dashboard: ${e.message}`);
  }
  if (!sso) return;
  // Back from linking (or failing to link) on the Account tab: show it again.
  const signedIn = !$("tabs").hidden;
  if (signedIn && (sso.linked || sso.started.link)) showTab("account");
  if (sso.linked) notice(`Linked to ${ssoName(sso.linked)}: you can log in through it now.`);
  else if (sso.error) {
    const what = sso.started.link ? "Not linked" : sso.started.id ? "Not logged in" : "Single sign-on failed";
    notice(`${what}: ${sso.error}`);
  }
}

main();
