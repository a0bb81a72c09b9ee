// hearth ui: the member's own dashboard, served by `hearth ui` on this machine. Everything sealed
// is opened by that process with the device key; this page only shows it. Names and notes are
// chosen by members, so everything is put in the page as text, never as HTML.

const $ = (sel) => document.querySelector(sel);

/** A JSON (or other) answer from the local API; its `error` thrown as the message. */
async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error || message;
    } catch {
      // not JSON: the status says it
    }
    const e = new Error(message);
    e.status = res.status;
    throw e;
  }
  return res;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function notice(message) {
  const n = $("#notice");
  n.textContent = message;
  n.hidden = !message;
}

function done(message) {
  const d = $("#done");
  d.textContent = message;
  d.hidden = !message;
}

/** Seconds as people say them: 42 s, 5 min, 3 h 20 min. */
function duration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** When something `seconds` from now happens, on this machine's clock: "14:05", or "Tue 09:30". */
function endsAt(seconds) {
  const end = new Date(Date.now() + seconds * 1000);
  const time = end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return end.toDateString() === new Date().toDateString()
    ? time : `${end.toLocaleDateString([], { weekday: "short" })} ${time}`;
}

function ago(iso) {
  return duration((Date.now() - Date.parse(iso)) / 1000);
}

// ---- who and where ----------------------------------------------------------------------------

/** This member's role in the organisation (admins decide on jobs waiting for approval). */
let myRole = null;
const isAdmin = () => ["admin", "owner"].includes(myRole);

async function loadMe() {
  const me = await (await api("/api/me")).json();
  myRole = me.role;
  $("#who").textContent = `${me.login} · ${me.org.name || me.org.id} (${me.role || "not a member"}) · ${me.server}`;
  const shown = me.revealed.length ? me.revealed.join(", ") : "nothing";
  $("#footer").textContent =
    `Names, notes, thumbnails and camera frames are opened on this machine with your device key ` +
    `(fingerprint ${me.fingerprint}); ${me.server} holds them sealed and cannot read them. ` +
    `Uploads and prints reveal to it only these scheduling facts: ${shown}.`;
}

// ---- printers and cameras ---------------------------------------------------------------------

let printers = [];
/** Per printer: the frame shown, `{src, caption}` (its object URL revoked when replaced). */
const frames = new Map();
/** Per printer: when the server received the latest frame it has opened. */
const received = new Map();

function heaters(t) {
  return (t.heaters || [])
    .map((h) => `${h.name} ${Math.round(h.actual)}°${h.target ? ` / ${Math.round(h.target)}°` : ""}`)
    .join(" · ");
}

/** A colour dot, or nothing for a colour the browser does not take. */
function swatch(color) {
  if (!color || !CSS.supports("color", color)) return null;
  const dot = el("span", { class: "swatch", "aria-hidden": "true" });
  dot.style.backgroundColor = color;
  return dot;
}

/**
 * The printer's slots (AMS trays, MMU gates, tools): each as the printer names it with its
 * material and what it says is left, and the inventory's spool in it; then slots holding a spool
 * of the inventory that the printer does not report now. Nothing for a printer without either.
 */
function slotsLine(p) {
  const reported = p.telemetry.slots || [];
  const spools = p.slot_spools || [];
  const names = [...reported.map((s) => s.name), ...spools.map((s) => s.slot).filter((n) => !reported.some((r) => r.name === n))];
  if (!names.length) return null;
  const line = el("p", { class: "slots muted" });
  names.forEach((name, i) => {
    const r = reported.find((x) => x.name === name);
    const s = spools.find((x) => x.slot === name);
    const color = r && r.color && /^[0-9a-f]{6}$/i.test(r.color) ? `#${r.color}` : s && s.color;
    const said = [name, (r && r.material) || (s && s.material), r && r.remain_percent !== null && r.remain_percent !== undefined ? `${r.remain_percent}%` : null]
      .filter(Boolean).join(" ");
    const spool = s ? ` (${s.name} · ${Math.round(s.remaining_grams)} g left)` : "";
    line.append(i > 0 ? " · " : "", el("span", { class: "slot", "data-slot": name }, swatch(color), said + spool));
  });
  return line;
}

function printerCard(p) {
  const t = p.telemetry;
  const card = el(
    "article",
    { class: "card printer", "data-name": p.name, "data-state": t.state },
    el("h2", {}, el("span", { textContent: p.name }), el("span", { class: "state", "data-state": t.state, textContent: t.state + (p.held ? " · held" : "") })),
    el("p", { class: "muted", textContent: [p.model, p.material, p.nozzle_mm ? `${p.nozzle_mm} mm` : null].filter(Boolean).join(" · ") }),
  );
  const slots = slotsLine(p);
  if (slots) card.append(slots);
  if (p.job) card.append(jobLine(p.job));
  if (t.progress !== null && t.progress !== undefined && t.job_id) {
    card.append(
      el("progress", { max: 1, value: t.progress }),
      el("p", {
        textContent: `${Math.round(t.progress * 100)} %` +
          (t.layer ? ` · layer ${t.layer}${t.total_layers ? `/${t.total_layers}` : ""}` : "") +
          (t.remaining_seconds ? ` · ${duration(t.remaining_seconds)} left` : "") +
          (t.remaining_seconds && t.state === "printing" ? `, ends about ${endsAt(t.remaining_seconds)}` : ""),
      }),
    );
  }
  const h = heaters(t);
  if (h) card.append(el("p", { class: "muted", textContent: h }));
  if (t.job_id && ["printing", "paused"].includes(t.state)) {
    const controls = el("div", { class: "controls" });
    const act = (action, label, cls) => {
      const b = el("button", { type: "button", textContent: label, class: cls || action });
      b.addEventListener("click", () => control(p, t.job_id, action));
      controls.append(b);
    };
    if (t.state === "printing" && p.can_pause) act("pause", "Pause");
    if (t.state === "paused") act("resume", "Resume");
    act("cancel", "Cancel", "cancel danger");
    card.append(controls);
  }
  const asks = printerControls(p);
  if (asks) card.append(asks);
  if (t.error) card.append(el("p", { class: "problem", textContent: t.error }));
  if (p.camera) {
    const img = el("img", { alt: `${p.name}'s camera`, hidden: true });
    const caption = el("span", { class: "said muted", textContent: p.camera.snapshot_at ? "opening the latest frame…" : "no frame yet" });
    const fresh = el("button", { type: "button", textContent: "Fresh frame", class: "fresh" });
    fresh.addEventListener("click", () => showFrame(p.name, card, true));
    const watch = el("button", {
      type: "button",
      class: "watch",
      textContent: watching.has(p.name) ? "Stop watching" : "Watch",
    });
    watch.addEventListener("click", () => toggleWatch(p.name));
    card.append(el("div", { class: "camera" }, img, el("div", { class: "caption" }, caption, el("span", { class: "buttons" }, fresh, watch))));
    const shown = frames.get(p.name);
    if (shown) {
      img.src = shown.src;
      img.hidden = false;
      caption.textContent = shown.caption;
    }
  }
  return card;
}

/** Printers being watched: a fresh frame asked for as soon as the last one is shown. */
const watching = new Set();

function cardOf(name) {
  return document.querySelector(`article.printer[data-name="${CSS.escape(name)}"]`);
}

async function toggleWatch(name) {
  if (watching.has(name)) {
    watching.delete(name);
    const b = cardOf(name)?.querySelector("button.watch");
    if (b) b.textContent = "Watch";
    return;
  }
  watching.add(name);
  cardOf(name).querySelector("button.watch").textContent = "Stop watching";
  // One frame after the other, as fast as the agent takes, seals and sends them.
  while (watching.has(name) && tab === "printers" && !document.hidden) {
    const card = cardOf(name);
    if (!card) break;
    const ok = await showFrame(name, card, true);
    if (!ok) break;
  }
  watching.delete(name);
  const b = cardOf(name)?.querySelector("button.watch");
  if (b) b.textContent = "Watch";
}

/** What a job prints, as its sealed label says (opened by hearth ui): thumbnail and name. */
function jobLine(j) {
  const line = el("p", { class: "job" });
  if (j.thumbnail) line.append(el("img", { class: "thumb", src: j.thumbnail, alt: "" }));
  if (j.name) line.append(el("span", { class: "name", textContent: j.name }));
  else if (j.label_problem) line.append(el("span", { class: "problem", textContent: `cannot open the job's label: ${j.label_problem}` }));
  else line.append(el("span", { class: "muted", textContent: `job ${j.id} (no label)` }));
  return line;
}

/** How to name a job to the member: its file's name when its label opened, else its id. */
const jobName = (j) => j.name || `job ${j.id}`;

/**
 * What can be asked of the printer now (operators; the server refuses others): Preheat for its
 * material and Cool down while it is idle, and its agent's actions, each in the states it runs in.
 */
function printerControls(p) {
  const st = p.telemetry.state;
  const runs = { idle: st === "idle", always: st !== "offline", printing: ["printing", "pausing", "paused"].includes(st) };
  const box = el("div", { class: "controls printer-controls" });
  const ask = (label, cls, path, body, question) => {
    const b = el("button", { type: "button", textContent: label, class: cls });
    b.addEventListener("click", () => {
      if (!question || confirm(`${p.name}: ${label}: ${question}`)) askAgent(b, path, body);
    });
    box.append(b);
  };
  const at = `/api/printers/${encodeURIComponent(p.name)}`;
  if (p.heat && st === "idle") {
    if (p.preheat) ask("Preheat", "preheat", `${at}/heat`, p.preheat);
    if ((p.telemetry.heaters || []).some((h) => h.target > 0)) ask("Cool down", "cool-down", `${at}/heat`, { nozzle_c: 0, bed_c: 0 });
  }
  if (p.tune && runs.printing) {
    const b = el("button", { type: "button", textContent: "Tune…", class: "tune" });
    b.addEventListener("click", () => openTune(p));
    box.append(b);
  }
  for (const a of p.actions || []) {
    const moot = (a.id === "light-on" && p.telemetry.light === true) || (a.id === "light-off" && p.telemetry.light === false);
    if (runs[a.when || "idle"] && !moot && (!a.admins_only || isAdmin())) ask(a.label, `run run-${a.id}`, `${at}/actions/${encodeURIComponent(a.id)}`, undefined, a.confirm);
  }
  return box.childElementCount ? box : null;
}

/** The Tune… dialog for `p`: its speed, flow and fan as it reports them, within its limits. */
function openTune(p) {
  const f = $("#tune-form");
  const t = p.telemetry;
  const l = p.tune;
  $("#tune-name").textContent = p.name;
  $("#tune-limits").textContent = `speed ${l.min_speed_percent} to ${l.max_speed_percent} %, ` +
    `flow ${l.min_flow_percent} to ${l.max_flow_percent} %, fan 0 to 100 %`;
  [f.speed.min, f.speed.max, f.flow.min, f.flow.max] =
    [l.min_speed_percent, l.max_speed_percent, l.min_flow_percent, l.max_flow_percent];
  for (const [input, v] of [[f.speed, t.speed_percent], [f.flow, t.flow_percent], [f.fan, t.fan_percent]]) {
    input.value = v === null || v === undefined ? "" : v;
    input.dataset.was = input.value;
  }
  f.dataset.printer = p.name;
  $("#tune-dialog").showModal();
}

$("#tune-cancel").addEventListener("click", () => $("#tune-dialog").close());
$("#tune-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const changed = (input) => (input.value === "" || input.value === input.dataset.was ? null : Number(input.value));
  const body = { speed_percent: changed(f.speed), flow_percent: changed(f.flow), fan_percent: changed(f.fan) };
  if (Object.values(body).every((v) => v === null)) {
    notice("Change the speed, the flow or the fan first.");
    return;
  }
  $("#tune-dialog").close();
  await askAgent($("#tune-submit"), `/api/printers/${encodeURIComponent(f.dataset.printer)}/tune`, body);
});

/** Sends a request to a printer's agent through hearth ui, which answers once the agent did. */
async function askAgent(button, path, body) {
  notice("");
  done("");
  button.disabled = true;
  try {
    const init = { method: "POST" };
    if (body) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    done((await (await api(path, init)).json()).said);
    await refresh();
  } catch (e) {
    notice(e.message);
  } finally {
    button.disabled = false;
  }
}

async function control(p, job, action, what) {
  const which = what || `the job printing on ${p.name}`;
  if (action === "cancel" && !confirm(`Cancel ${which}?`)) return;
  let body;
  if (action === "reject") {
    const reason = prompt(`Reject ${which}? It is cancelled; say why, for the member who sent it:`, "");
    if (reason === null) return;
    body = JSON.stringify({ reason });
  }
  notice("");
  done("");
  try {
    const j = await (await api(`/api/jobs/${job}/${action}`, { method: "POST", body })).json();
    const said = { approve: "approved", reject: "rejected" }[action] || `${action} sent`;
    done(`${what || p.name}: ${said}; the job is ${j.state}.`);
    await refresh();
  } catch (e) {
    notice(`Cannot ${action} ${which}: ${e.message}`);
  }
}

/** Fetches a printer's frame (checked and opened by hearth ui) into its card; whether it could. */
async function showFrame(name, card, fresh) {
  const caption = card.querySelector(".camera .said");
  const button = card.querySelector(".camera button.fresh");
  if (fresh) {
    caption.textContent = "asking the agent for a frame…";
    button.disabled = true;
  }
  try {
    const res = await api(`/api/printers/${encodeURIComponent(name)}/frame${fresh ? "?fresh=true" : ""}`);
    const blob = await res.blob();
    const src = URL.createObjectURL(blob);
    const text = `taken ${ago(res.headers.get("x-taken-at"))} ago by ${res.headers.get("x-agent")}, checked and opened here`;
    const old = frames.get(name);
    frames.set(name, { src, caption: text });
    if (old) URL.revokeObjectURL(old.src);
    // The card may have been redrawn meanwhile: show it in the current one.
    const now = document.querySelector(`article.printer[data-name="${CSS.escape(name)}"]`) || card;
    const img = now.querySelector(".camera img");
    img.src = src;
    img.hidden = false;
    now.querySelector(".camera .said").textContent = text;
    return true;
  } catch (e) {
    const now = document.querySelector(`article.printer[data-name="${CSS.escape(name)}"]`) || card;
    const span = now.querySelector(".camera .said");
    span.textContent = e.status === 404 ? "no frame yet" : `cannot show the frame: ${e.message}`;
    span.className = e.status === 404 ? "said muted" : "said problem";
    return false;
  } finally {
    button.disabled = false;
  }
}

async function loadPrinters() {
  printers = await (await api("/api/printers")).json();
  const list = $("#printers");
  list.replaceChildren(...printers.map(printerCard));
  const by = {};
  for (const p of printers) by[p.telemetry.state] = (by[p.telemetry.state] || 0) + 1;
  $("#fleet-summary").textContent = printers.length
    ? `${printers.length} printers: ${Object.entries(by).map(([s, n]) => `${n} ${s}`).join(", ")}`
    : "No printers yet: enroll an agent (`hearth agents token`).";
  // A frame that arrived since the last look is opened; the others stay as they are.
  for (const p of printers) {
    const at = p.camera?.snapshot_at;
    if (at && received.get(p.name) !== at) {
      received.set(p.name, at);
      showFrame(p.name, list.querySelector(`article.printer[data-name="${CSS.escape(p.name)}"]`), false);
    }
  }
}

// ---- jobs -------------------------------------------------------------------------------------

const FINAL = ["completed", "failed", "cancelled", "refused"];

function jobRow(j) {
  const cell = el("td", {});
  if (j.name) cell.append(el("span", { class: "name", textContent: j.name }));
  else if (j.label_problem) cell.append(el("span", { class: "problem", textContent: `cannot open the label: ${j.label_problem}` }));
  cell.append(el("code", { class: "muted id", textContent: j.id }));
  if (j.message) cell.append(el("span", { class: "note muted", textContent: j.message }));
  const actions = el("td", { class: "actions" });
  const act = (action, label, cls) => {
    const b = el("button", { type: "button", textContent: label, class: cls || action });
    b.addEventListener("click", () => control(null, j.id, action, jobName(j)));
    actions.append(b);
  };
  // Queued, but no printer takes it until an admin approves it.
  const pending = j.state === "queued" && j.approval?.state === "pending";
  if (pending && isAdmin()) {
    act("approve", "Approve", "approve");
    act("reject", "Reject…", "reject danger");
  }
  if (j.state === "printing") act("pause", "Pause");
  if (j.state === "paused") act("resume", "Resume");
  if (!FINAL.includes(j.state)) act("cancel", "Cancel", "cancel danger");
  else {
    const again = el("button", { type: "button", textContent: "Print again…", class: "again" });
    again.addEventListener("click", () => askAgain(j).catch((e) => notice(e.message)));
    actions.append(again);
  }
  return el(
    "tr",
    { "data-id": j.id, "data-state": pending ? "awaiting-approval" : j.state },
    el("td", {}, j.thumbnail ? el("img", { class: "thumb", src: j.thumbnail, alt: "" }) : ""),
    cell,
    el("td", { class: "state", textContent: pending ? "awaiting approval" : j.state }),
    el("td", { textContent: j.printer_name || (j.pool ? `pool ${j.pool}` : "-") }),
    el("td", { textContent: j.by || "-" }),
    el("td", { textContent: when(j.created_at) }),
    el("td", { textContent: duration(j.facts.estimated_seconds) }),
    actions,
  );
}

async function loadJobs() {
  $("#jobs-summary").textContent = "Opening the jobs' labels…";
  const all = await (await api("/api/jobs")).json();
  $("#jobs tbody").replaceChildren(...all.map(jobRow));
  const open = all.filter((j) => !FINAL.includes(j.state)).length;
  $("#jobs-summary").textContent = all.length
    ? `${all.length} jobs, newest first (${open} not ended); names and thumbnails are opened here.`
    : "No jobs yet: print a file from the Files tab.";
}

// ---- files ------------------------------------------------------------------------------------

let files = [];

function fileRow(f) {
  const name = f.name
    ? el("span", { class: "name", textContent: f.name })
    : el("span", { class: "problem", textContent: `cannot open: ${f.problem}` });
  const cell = el("td", {}, name);
  if (f.note) cell.append(el("span", { class: "note muted", textContent: f.note }));
  const thumb = f.thumbnail ? el("img", { class: "thumb", src: f.thumbnail, alt: "" }) : "";
  const actions = el("td", { class: "actions" });
  if (f.name) {
    const print = el("button", { type: "button", textContent: "Print…", class: "print" });
    print.addEventListener("click", () => askPrint(f).catch((e) => notice(e.message)));
    const remove = el("button", { type: "button", textContent: "Delete", class: "delete" });
    remove.addEventListener("click", () => deleteFile(f));
    actions.append(print, el("a", { href: `/api/files/${f.id}/download`, textContent: "Download", download: f.name }), remove);
  }
  return el(
    "tr",
    { "data-id": f.id },
    el("td", {}, thumb),
    cell,
    el("td", { textContent: f.uploaded_by || "-" }),
    el("td", { textContent: new Date(f.created_at).toLocaleString() }),
    el("td", { textContent: [f.facts.material, f.facts.color].filter(Boolean).join(" ") || "-" }),
    el("td", { textContent: duration(f.facts.estimated_seconds) }),
    actions,
  );
}

async function deleteFile(f) {
  if (!confirm(`Delete ${f.name} from the library? Its sealed bytes go from the server too.`)) return;
  notice("");
  done("");
  try {
    await api(`/api/files/${f.id}`, { method: "DELETE" });
    done(`${f.name} is deleted from the library.`);
    await loadFiles();
  } catch (e) {
    notice(`Cannot delete ${f.name}: ${e.message}`);
  }
}

async function loadFiles() {
  $("#files-summary").textContent = "Opening the library…";
  files = await (await api("/api/files")).json();
  files.sort((a, b) => b.created_at.localeCompare(a.created_at));
  $("#files tbody").replaceChildren(...files.map(fileRow));
  $("#files-summary").textContent = files.length
    ? `${files.length} files, newest first`
    : "The library is empty: upload a print file above.";
}

$("#upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const file = form.file.files[0];
  if (!file) return;
  const button = form.querySelector("button");
  const status = $("#upload-status");
  button.disabled = true;
  status.textContent = `analysing, sealing and uploading ${file.name}…`;
  notice("");
  done("");
  try {
    const q = new URLSearchParams({ name: file.name });
    if (form.note.value.trim()) q.set("note", form.note.value.trim());
    const r = await (await api(`/api/files?${q}`, { method: "POST", body: file })).json();
    done(`${r.name} is sealed and in the library (file ${r.id}).`);
    form.reset();
    await loadFiles();
  } catch (e) {
    notice(`Upload of ${file.name} failed: ${e.message}`);
  } finally {
    status.textContent = "";
    button.disabled = false;
  }
});

// ---- printing ---------------------------------------------------------------------------------

let printing = null;

/** The print dialog for a library file, or (`url`, `chosen`) for what a job printed, again. */
async function askPrint(f, url = `/api/files/${f.id}/print`, chosen = null) {
  printing = { name: f.name, url };
  $("#print-name").textContent = f.name;
  // A plate project may hold several sliced plates, of which a job prints one.
  $("#print-plate").hidden = !/\.3mf$/i.test(f.name || "");
  $("#print-form input[name=plate]").value = "";
  if (!printers.length) printers = await (await api("/api/printers")).json();
  const select = $("#print-form select[name=target]");
  const pools = [...new Set(printers.flatMap((p) => p.pools))].sort();
  select.replaceChildren(
    ...printers.map((p) => el("option", { value: `printer:${p.name}`, textContent: `${p.name} (${p.telemetry.state})` })),
    ...pools.map((p) => el("option", { value: `pool:${p}`, textContent: `any printer of pool ${p}` })),
  );
  if (chosen) select.value = chosen;
  $("#print-dialog").showModal();
}

/** Print what job `j` printed again: by default where it went before. */
function askAgain(j) {
  const chosen = j.pool ? `pool:${j.pool}` : j.printer_name ? `printer:${j.printer_name}` : null;
  return askPrint({ name: jobName(j) }, `/api/jobs/${j.id}/again`, chosen);
}

$("#print-cancel").addEventListener("click", () => $("#print-dialog").close());

$("#print-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const [kind, ...rest] = form.target.value.split(":");
  const body = {
    [kind]: rest.join(":"),
    copies: Number(form.copies.value),
    priority: Number(form.priority.value),
  };
  if (!$("#print-plate").hidden && form.plate.value) body.plate = Number(form.plate.value);
  const button = $("#print-submit");
  button.disabled = true;
  notice("");
  done("");
  try {
    const r = await (await api(printing.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    })).json();
    $("#print-dialog").close();
    const waiting = r.jobs.some((j) => j.approval?.state === "pending")
      ? " It waits for an admin's approval before a printer takes it."
      : "";
    done(`${printing.name}: queued ${r.jobs.map((j) => `job ${j.id}`).join(", ")} on ${rest.join(":")}.` +
      waiting + r.warnings.map((w) => ` Note: ${w}.`).join(""));
    refresh();
  } catch (e) {
    $("#print-dialog").close();
    notice(`Printing ${printing.name} failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
});

// ---- timelapses -------------------------------------------------------------------------------

/** Bytes as people read them. */
function size(b) {
  if (b < 1e3) return `${b} B`;
  if (b < 1e6) return `${Math.round(b / 1e3)} kB`;
  if (b < 1e9) return `${(b / 1e6).toFixed(1)} MB`;
  return `${(b / 1e9).toFixed(1)} GB`;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "-");

async function loadTimelapses() {
  const all = await (await api("/api/timelapses")).json();
  $("#timelapses tbody").replaceChildren(...all.map((t) => {
    const play = el("button", { type: "button", class: "play", textContent: "Play" });
    play.addEventListener("click", () => playReel(t.job_id));
    return el(
      "tr",
      { "data-job": t.job_id },
      el("td", {}, t.name ? el("span", { class: "name", textContent: t.name }) : "", el("code", { class: "muted id", textContent: t.job_id })),
      el("td", { textContent: t.printer || "-" }),
      el("td", { textContent: String(t.frames) }),
      el("td", { textContent: size(t.bytes) }),
      el("td", { textContent: when(t.first_at) }),
      el("td", { textContent: when(t.last_at) }),
      el("td", { textContent: when(t.expires_at) }),
      el("td", {}, t.frames ? play : ""),
    );
  }));
  $("#timelapses-summary").textContent = all.length
    ? `${all.length} timelapses, newest first; each frame is checked and opened here when played.`
    : "No timelapses: an agent keeps them for printers whose camera has timelapse = true.";
}

/** The reel on show: its frames' object URLs as they are opened, and the playing timer. */
const reel = { job: null, urls: [], taken: [], count: 0, at: 0, timer: null, playing: true };

function showReelFrame(i) {
  if (!reel.urls[i]) return;
  reel.at = i;
  $("#player-img").src = reel.urls[i];
  $("#player-seek").value = String(i);
  $("#player-label").textContent =
    `frame ${i + 1} of ${reel.count} · taken ${new Date(reel.taken[i]).toLocaleString()}` +
    (reel.urls.length < reel.count ? ` · ${reel.urls.length} opened so far` : "");
}

function stopReel() {
  clearInterval(reel.timer);
  reel.timer = null;
  for (const u of reel.urls) URL.revokeObjectURL(u);
  Object.assign(reel, { job: null, urls: [], taken: [], count: 0, at: 0 });
}

async function playReel(job) {
  stopReel();
  reel.job = job;
  const t = await (await api(`/api/timelapses/${job}`)).json();
  reel.count = t.frames.length;
  $("#player").hidden = false;
  const row = document.querySelector(`#timelapses tr[data-job="${CSS.escape(job)}"] .name`);
  $("#player-job").textContent = row ? `${row.textContent} (job ${job})` : `job ${job}`;
  $("#player-printer").textContent = t.printer;
  $("#player-seek").max = String(Math.max(0, reel.count - 1));
  $("#player-play").textContent = "Pause";
  reel.playing = true;
  // 10 frames a second, over what is opened so far; the frames open one after the other.
  reel.timer = setInterval(() => {
    if (reel.playing && reel.urls.length) showReelFrame((reel.at + 1) % reel.urls.length);
  }, 100);
  for (const f of t.frames) {
    if (reel.job !== job) return; // another reel was asked for
    try {
      const res = await api(`/api/timelapses/${job}/${f.index}`);
      const url = URL.createObjectURL(await res.blob());
      if (reel.job !== job) return URL.revokeObjectURL(url);
      reel.urls.push(url);
      reel.taken.push(res.headers.get("x-taken-at"));
      if (reel.urls.length === 1) showReelFrame(0);
    } catch (e) {
      $("#player-label").textContent = `frame ${f.index + 1} cannot be shown: ${e.message}`;
      reel.playing = false;
      $("#player-play").textContent = "Play";
      return;
    }
  }
}

$("#player-play").addEventListener("click", () => {
  reel.playing = !reel.playing;
  $("#player-play").textContent = reel.playing ? "Pause" : "Play";
});

$("#player-seek").addEventListener("input", (ev) => {
  reel.playing = false;
  $("#player-play").textContent = "Play";
  showReelFrame(Math.min(Number(ev.target.value), reel.urls.length - 1));
});

// ---- tabs and refresh -------------------------------------------------------------------------

let tab = "printers";

function show(name) {
  if (name !== tab) {
    notice("");
    done("");
  }
  tab = name;
  for (const b of document.querySelectorAll(".tab")) {
    if (b.dataset.tab === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  $("#printers-view").hidden = name !== "printers";
  $("#files-view").hidden = name !== "files";
  $("#jobs-view").hidden = name !== "jobs";
  $("#timelapses-view").hidden = name !== "timelapses";
  if (name !== "timelapses") {
    stopReel();
    $("#player").hidden = true;
  }
  refresh();
}

for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.tab));

async function refresh() {
  try {
    if (tab === "printers") await loadPrinters();
    else if (tab === "files") await loadFiles();
    else if (tab === "jobs") await loadJobs();
    else await loadTimelapses();
  } catch (e) {
    notice(e.status === 401 ? e.message : `Cannot load: ${e.message}`);
  }
}

try {
  await loadMe();
  await refresh();
} catch (e) {
  notice(e.message);
}
// Printers and their latest frames, or the jobs, every 5 s while the page is seen (a frame is
// opened only when a newer one has arrived; a label only once).
setInterval(() => {
  if (["printers", "jobs"].includes(tab) && !document.hidden) refresh();
}, 5000);
