// The web dashboard in a real Chromium, against a running hearth-demo (live printers, real
// keys). Run by crates/hearth-demo/tests/it (`dashboard_in_a_real_browser`), which starts the
// demo and passes its address and owner login here:
//   HEARTH_URL=http://127.0.0.1:PORT HEARTH_LOGIN=admin HEARTH_PASSPHRASE=... node dashboard.test.mjs
// Exits non-zero with the failed step on stderr. CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import { request } from "playwright-core";
import { launch, watch } from "./harness.mjs";

// The Argon2 the page runs is hash-wasm exactly as published (package-lock.json pins its
// integrity), not an edited copy.
assert.ok(
  readFileSync(new URL("../vendor/hash-wasm-argon2-4.13.0.umd.min.js", import.meta.url)).equals(
    readFileSync(new URL("node_modules/hash-wasm/dist/argon2.umd.min.js", import.meta.url))),
  "web/vendor's Argon2 differs from the published hash-wasm 4.13.0",
);

const url = process.env.HEARTH_URL;
const login = process.env.HEARTH_LOGIN;
const passphrase = process.env.HEARTH_PASSPHRASE;
assert.ok(url && login && passphrase, "HEARTH_URL, HEARTH_LOGIN and HEARTH_PASSPHRASE are required");

const browser = await launch();
const problems = [];
const sent = [];
try {
  const page = await browser.newPage();
  // A refused login (401), a refused channel or weighing (422) and a material still in use
  // (409) are answered on purpose below.
  watch(page, problems, [401, 409, 422]);
  page.on("request", (r) => sent.push(`${r.method()} ${r.url()} ${r.postData() || ""}`));
  // Confirmations are accepted (and what they asked kept); a prompt (the reason of a rejection)
  // is answered with this.
  let promptAnswer = "";
  const asked = [];
  page.on("dialog", (d) => {
    asked.push(d.message());
    return d.accept(d.type() === "prompt" ? promptAnswer : undefined);
  });

  const step = (name) => console.log(`- ${name}`);
  // The body of GET /api/v1/orgs/{org}PATH with the page's session (the demo owner's only
  // organisation): what the server holds, beside what the page shows.
  const orgGet = (path) => page.evaluate(async (p) => {
    const me = await (await fetch("/api/v1/me")).json();
    return (await fetch(`/api/v1/orgs/${me.memberships[0].org.id}${p}`)).text();
  }, path);

  step("the page asks to log in, with the address the account was created at filled in");
  // Opened through another name of the same server: the form still fills in the address the
  // server announces (the demo's public_url), which the login secret is salted with.
  await page.goto(url.replace("127.0.0.1", "localhost"));
  await page.locator("#login-form").waitFor();
  await page.locator("summary").click();
  assert.equal(await page.inputValue("input[name=server]"), url);

  step("a wrong passphrase is refused with the reasons to check");
  await page.fill("input[name=login]", login);
  await page.fill("input[name=passphrase]", `${passphrase}x`);
  await page.click("button[type=submit]");
  await page.locator("#notice", { hasText: "Login refused" }).waitFor();
  assert.ok(await page.locator("#login-form").isVisible(), "still on the login form");

  step("the right passphrase logs in and shows the fleet");
  await page.fill("input[name=passphrase]", passphrase);
  await page.click("button[type=submit]");
  await page.locator("#printers-view").waitFor();
  await page.locator("article.printer").nth(5).waitFor();
  assert.equal(await page.locator("article.printer").count(), 6);
  assert.match(await page.textContent("#fleet-summary"), /^6 printers: /);
  // The demo's shortest print (the mk4-left's) is named as the next to finish.
  await page.locator("#fleet-summary", { hasText: /· next to finish: mk4-left, about (\w{3} )?\d{1,2}:\d{2}( [AP]M)?$/ }).waitFor();
  assert.equal(await page.textContent("#role"), "owner");
  for (const r of sent) assert.ok(!r.includes(passphrase), `the passphrase left the browser: ${r}`);

  step("printers move on live, without reloading the page");
  // A printing printer's card changes as its telemetry arrives: temperatures while it heats,
  // then progress, layer and times.
  const printing = page.locator("article.printer[data-state=printing]").first();
  await printing.waitFor();
  const id = await printing.getAttribute("data-printer-id");
  const sel = `article.printer[data-printer-id="${id}"]`;
  const before = await page.locator(sel).textContent();
  await page.waitForFunction(
    ([s, v]) => {
      const card = document.querySelector(s);
      return card && card.textContent !== v;
    },
    [sel, before],
    { timeout: 60_000 },
  );
  assert.equal(await page.locator("#live").textContent(), "live");

  step("each card shows the spool loaded on the printer and what is left on it");
  const card = (name) => page.locator("article.printer", { has: page.locator(".name", { hasText: new RegExp(`^${name}$`) }) });
  assert.match(await card("mk4-left").locator("dd[data-row=spool]").textContent(),
    /^Prusament PLA Galaxy Black · \d+ g left$/);
  assert.match(await card("voron").locator("dd[data-row=spool]").textContent(), /Polymaker ABS Red · \d+ g left LOW$/);

  step("an operator holds a printer (no new job) and releases it");
  await card("xl").locator("button[data-action=hold]").click();
  await card("xl").locator("dd[data-row=held]", { hasText: "no new job until released" }).waitFor();
  assert.equal(JSON.parse(await orgGet("/printers")).find((p) => p.name === "xl").held, true);
  await card("xl").locator("button[data-action=release]").click();
  await card("xl").locator("dd[data-row=held]").waitFor({ state: "detached" });

  step("an idle printer is preheated for its PETG from its card, its bed set by hand, and cooled down");
  const xlHeat = card("xl");
  await xlHeat.locator("button[data-action=preheat]").click();
  await page.locator("#notice", { hasText: /^xl: nozzle 240 °C, bed 80 °C: done\.$/ }).waitFor();
  await xlHeat.locator("dd[data-row=heaters]", { hasText: /^tool0 \d+° → 240° · bed \d+° → 80°$/ }).waitFor();
  await xlHeat.locator("button[data-action=heat]").click();
  assert.equal(await page.textContent("#heat-limits"), "nozzle up to 285 °C, bed up to 110 °C");
  await page.fill("#heat-form input[name=nozzle]", "");
  await page.fill("#heat-form input[name=bed]", "45");
  await page.click("#heat-form button[type=submit]");
  await xlHeat.locator("dd[data-row=heaters]", { hasText: /^tool0 \d+° → 240° · bed \d+° → 45°$/ }).waitFor();
  await xlHeat.locator("button[data-action=cool-down]").click();
  await xlHeat.locator("dd[data-row=heaters]", { hasNotText: "→" }).waitFor();
  assert.equal(await xlHeat.locator("button[data-action=cool-down]").count(), 0, "nothing to cool any more");

  step("an idle printer's actions run from its card; a printing one offers only those for printing");
  assert.deepEqual(await card("xl").locator(".controls button").allTextContents(), ["Home axes", "Motors off", "Part fan off"]);
  // Homing asks first (the demo's configuration says so); accepted, it runs.
  await card("xl").locator("button[data-run=home]").click();
  await page.locator("#notice", { hasText: /^xl: Home axes: done\.$/ }).waitFor();
  assert.equal(asked.at(-1), "xl: Home axes: Is the bed clear?");
  // (One without a light of its own: the x1c's shows beside.)
  const printingCard = page.locator("article.printer[data-state=printing]", { hasNot: page.locator("dd[data-row=light]") }).first();
  assert.deepEqual(await printingCard.locator(".controls button").allTextContents(), ["Part fan off"]);

  step("a printing printer's speed and fan are tuned from its card, within its agent's limits; an idle one offers no tuning");
  const tuned = card(await printingCard.locator(".name").textContent());
  const tunedName = await tuned.locator(".name").textContent();
  await tuned.locator("dd[data-row=speed]", { hasText: /^100 %$/ }).waitFor();
  // When it ends, on the member's clock, beside what is left.
  assert.match(await tuned.locator("dd[data-row=remaining]").textContent(),
    /^\d+ (s|min|h \d+ min) · ends about (\w{3} )?\d{1,2}:\d{2}( [AP]M)?$/);
  await tuned.locator("dd[data-row=fan]", { hasText: /^off$/ }).waitFor();
  assert.equal(await card("xl").locator("button[data-action=tune]").count(), 0, "idle: nothing to tune");
  await tuned.locator("button[data-action=tune]").click();
  assert.equal(await page.textContent("#tune-limits"), "speed 25 to 200 %, flow 75 to 125 %, fan 0 to 100 %");
  assert.equal(await page.inputValue("#tune-form input[name=speed]"), "100", "filled with what the printer reports");
  await page.fill("#tune-form input[name=speed]", "150");
  await page.fill("#tune-form input[name=fan]", "80");
  await page.click("#tune-form button[type=submit]");
  await page.locator("#notice", { hasText: new RegExp(`^${tunedName}: speed 150 %, fan 80 %: done\\.$`) }).waitFor();
  await tuned.locator("dd[data-row=speed]", { hasText: /^150 %$/ }).waitFor();
  await tuned.locator("dd[data-row=fan]", { hasText: /^80 %$/ }).waitFor();
  assert.equal(await tuned.locator("dd[data-row=flow]").textContent(), "100 %", "the flow, left alone, is as it was");

  step("each card charts its printer's nozzle and bed since the page's first sample (half an hour at most), from the server's samples and live");
  const chart = card("xl").locator(".temp-chart");
  await chart.locator("polyline.tool:not(.target)").waitFor();
  const points = async (sel) => (await chart.locator(sel).getAttribute("points")).trim().split(" ").length;
  assert.ok((await points("polyline.tool:not(.target)")) >= 2, "a line, not a point");
  assert.ok((await points("polyline.bed:not(.target)")) >= 2);
  assert.equal(await points("polyline.tool.target"), await points("polyline.tool:not(.target)"), "its target beside it");
  // Steps: a value holds until the next sample (pairs of points at one height).
  const ys = (await chart.locator("polyline.bed:not(.target)").getAttribute("points")).trim().split(" ").map((p) => p.split(",")[1]);
  assert.equal(ys[0], ys[1]);
  assert.match(await chart.locator("title").textContent(), /^Temperatures over the last \d+ min \(up to \d+°\)$/);
  const steady = card("ender").locator(".temp-chart polyline.bed:not(.target)");
  assert.ok((await steady.getAttribute("points")).trim().split(" ").length >= 2, "a steady printer's line reaches now");
  // The server keeps them: what a page opened later draws at once.
  const kept = JSON.parse(await orgGet(`/printers/${await card("xl").getAttribute("data-printer-id")}/temperatures`));
  assert.ok(kept.length >= 2, JSON.stringify(kept));
  // A browser whose clock is ten minutes ahead charts on the server's clock (its Date answers):
  // the chart spans the minutes the server has, not ten more.
  const skewed = await browser.newContext();
  await skewed.clock.install({ time: Date.now() + 10 * 60_000 });
  const ahead = await skewed.newPage();
  await ahead.goto(url);
  await ahead.fill("input[name=login]", login);
  await ahead.fill("input[name=passphrase]", passphrase);
  await ahead.click("button[type=submit]");
  const aheadChart = ahead.locator('article.printer:has(.name:text-is("xl")) .temp-chart title');
  await aheadChart.waitFor({ state: "attached" });
  const minutes = Number((await aheadChart.textContent()).match(/last (\d+) min/)[1]);
  assert.ok(minutes < 10, `the chart spans ${minutes} min: the browser's clock, not the server's`);
  await skewed.close();

  step("the Bambu Lab printer's chamber light: reported on its card, switched off and on from it");
  const lit = card("x1c");
  await lit.locator("dd[data-row=light]", { hasText: /^on$/ }).waitFor();
  assert.equal(await lit.locator("button[data-run=light-on]").count(), 0, "already on");
  await lit.locator("button[data-run=light-off]").click();
  await page.locator("#notice", { hasText: /^x1c: Light off: done\.$/ }).waitFor();
  await lit.locator("dd[data-row=light]", { hasText: /^off$/ }).waitFor();
  await lit.locator("button[data-run=light-on]").click();
  await lit.locator("dd[data-row=light]", { hasText: /^on$/ }).waitFor();

  step("the demo's maintenance reminders: the voron's lubrication due on its card and in the tab, marked done");
  // A nozzle every 300 h of printing on every printer, the voron's lubrication 5 days overdue, the
  // x1c's build plate due tomorrow.
  await card("voron").locator("dd[data-row=maintenance]", { hasText: /^due: lubrication$/ }).waitFor();
  assert.equal(await card("x1c").locator("dd[data-row=maintenance]").textContent(), "soon: build plate");
  assert.equal(await card("voron").locator("dd[data-row=maintenance] .low").count(), 1, "due is a warning");
  assert.equal(await card("xl").locator("dd[data-row=maintenance]").count(), 0, "nothing due on the xl");
  await page.click("button[data-tab=maintenance]");
  await page.locator("#maintenance tr").nth(7).waitFor();
  assert.equal(await page.locator("#maintenance tr").count(), 8);
  assert.equal(await page.locator('#maintenance tr[data-kind="nozzle"][data-status="ok"]').count(), 6);
  const nozzle = page.locator('#maintenance tr[data-printer="xl"][data-kind="nozzle"] td');
  assert.equal(await nozzle.nth(2).textContent(), "300 h printing");
  assert.match(await nozzle.nth(3).textContent(), /^\d+(\.\d)? h printing · last done \d{4}-\d\d-\d\d$/);
  assert.match(await nozzle.nth(4).textContent(), /^OK · \d+(\.\d)? h of printing left$/);
  const plate = page.locator('#maintenance tr[data-printer="x1c"][data-kind="build_plate"]');
  assert.equal(await plate.getAttribute("data-status"), "soon");
  assert.match(await plate.locator("td").nth(4).textContent(), /^Soon · due \d{4}-\d\d-\d\d$/);
  const voronLube = page.locator('#maintenance tr[data-printer="voron"][data-kind="lubrication"]');
  assert.equal(await voronLube.getAttribute("data-status"), "due");
  assert.equal(await voronLube.locator("td").nth(1).textContent(), "lubrication");
  assert.equal(await voronLube.locator("td").nth(2).textContent(), "30 days");
  assert.match(await voronLube.locator("td").nth(4).textContent(), /^Due · was due \d{4}-\d\d-\d\d$/);
  await voronLube.locator("button[data-action=maintenance-done]").click();
  await page.locator('#maintenance tr[data-printer="voron"][data-kind="lubrication"][data-status="ok"]').waitFor();
  const voronTask = JSON.parse(await orgGet("/maintenance")).find((t) => t.printer === "voron" && t.kind === "lubrication");
  assert.equal(voronTask.status, "ok");
  assert.ok(Math.abs(Date.parse(voronTask.last_done) - Date.now()) < 300_000, voronTask.last_done);
  assert.match(await voronLube.locator("td").nth(3).textContent(),
    new RegExp(`^\\d+(\\.\\d)? h printing · last done ${voronTask.last_done.slice(0, 10)} by ${login}$`));
  await page.click("button[data-tab=printers]");
  await card("voron").locator("dd[data-row=maintenance]").waitFor({ state: "detached" });
  assert.equal(await card("x1c").locator("dd[data-row=maintenance]").textContent(), "soon: build plate");

  step("a printer with an AMS shows what each slot holds, and the inventory's spool in its first tray");
  // The RFID spool in A2 joins the inventory once the printer's first report has been handled.
  await card("x1c").locator("dd[data-row=slots]", {
    hasText: /^A1 PLA 80% \(Bambu PLA Basic White · \d+ g left\) · A2 PLA 45% \(Bambu PLA #161616 · 450 g left\) · A3 PETG 100% · A4 ASA 12%$/,
  }).waitFor();

  step("the card of a printer with jobs waiting for it says how many");
  await card("mk4-left").locator("dd[data-row=queue]", { hasText: /^2 jobs waiting$/ }).waitFor();

  step("each card says when its camera's last sealed frame arrived, and how to open it");
  await card("xl").locator("dd[data-row=camera]", { hasText: /^sealed frame \d+ (s|min) ago · see it with hearth ui$/ }).waitFor();

  step("the jobs tab lists the demo's jobs with who sent them");
  await page.click("button[data-tab=jobs]");
  const row = page.locator("#jobs tr[data-state=printing]").first();
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(login));
  const job = await row.getAttribute("data-job-id");
  // Printing for real, not heating: the cancelled print has used some filament.
  const jobPrinter = JSON.parse(await orgGet(`/jobs/${job}`)).printer;
  await page.waitForFunction((p) => {
    const bar = document.querySelector(`article.printer[data-printer-id="${p}"] progress`);
    return bar && Number(bar.value) > 0;
  }, jobPrinter, { timeout: 60_000 });

  step("the jobs waiting for a busy printer show their place in the fleet queue; an operator moves one to the top");
  await page.locator("#jobs tr[data-state=queued] .queue-place", { hasText: /^#2 in the queue · after job / }).waitFor();
  const second = page.locator("#jobs tr[data-state=queued]", { has: page.locator(".queue-place", { hasText: /^#2 / }) });
  const moved = await second.getAttribute("data-job-id");
  assert.equal(await page.locator("#jobs tr[data-state=queued] button[data-action=top]").count(), 1, "only #2 can move up");
  await second.locator("button[data-action=top]").click();
  await page.locator(`#jobs tr[data-job-id="${moved}"] .queue-place`, { hasText: /^#1 in the queue · priority 1/ }).waitFor();
  assert.equal(JSON.parse(await orgGet(`/jobs/${moved}`)).priority, 1);

  step("the printing job keeps a timelapse (the demo's cameras take a frame every few seconds)");
  const deadline = Date.now() + 60_000;
  while (!JSON.parse(await orgGet("/timelapses")).some((t) => t.job_id === job && t.frames > 0)) {
    assert.ok(Date.now() < deadline, "no timelapse frame of the printing job within a minute");
    await new Promise((r) => setTimeout(r, 500));
  }

  step("an admin sets the job's printer to wait for a clear bed between jobs");
  const jobPrinterName = JSON.parse(await orgGet("/printers")).find((p) => p.id === jobPrinter).name;
  await page.click("button[data-tab=printers]");
  await card(jobPrinterName).locator("button[data-action=bed-confirm]").click();
  await card(jobPrinterName).locator("dd[data-row=bed]", { hasText: "clear; cleared by hand between jobs" }).waitFor();
  await page.click("button[data-tab=jobs]");

  step("cancelling a printing job reaches the server and the printer");
  await row.locator("button[data-action=cancel]").click();
  await page.locator(`#jobs tr[data-job-id="${job}"]`).waitFor({ state: "detached" });
  await page.uncheck("#jobs-active");
  await page.locator(`#jobs tr[data-job-id="${job}"][data-state=cancelled]`).waitFor();
  const cancelled = JSON.parse(await orgGet(`/jobs/${job}`));
  assert.equal(cancelled.state, "cancelled");

  step("the printer waits for its bed until an operator says it is clear");
  await page.click("button[data-tab=printers]");
  const waitingCard = card(jobPrinterName);
  await waitingCard.locator("dd[data-row=bed]", { hasText: `part of job ${job.slice(-8)} on it` }).waitFor();
  await waitingCard.locator("button[data-action=bed-cleared]").click();
  await waitingCard.locator("dd[data-row=bed]", { hasText: "clear; cleared by hand between jobs" }).waitFor();
  assert.equal(JSON.parse(await orgGet("/printers")).find((p) => p.id === jobPrinter).bed.to_clear, null);
  await waitingCard.locator("button[data-action=bed-confirm]").click();
  await waitingCard.locator("dd[data-row=bed]").waitFor({ state: "detached" });
  await page.click("button[data-tab=jobs]");

  step("the cancelled job lists its sealed timelapse with the command that opens it; the owner deletes it");
  const timelapse = page.locator(`#jobs tr[data-job-id="${job}"] td.timelapse`);
  // The job ended: the timelapse says until when it is kept (the server's 30 days).
  await timelapse.locator("span.frames", { hasText: /^\d+ sealed frames? · .* · kept until / }).waitFor();
  assert.equal(await timelapse.locator("code").textContent(), `hearth timelapse ${job}`);
  await timelapse.locator("button[data-action=delete-timelapse]").click();
  await page.locator(`#jobs tr[data-job-id="${job}"] td.timelapse`, { hasText: /^—$/ }).waitFor();
  assert.ok(!JSON.parse(await orgGet("/timelapses")).some((t) => t.job_id === job), "deleted on the server");

  step("the cancelled print's share of filament is taken from its printer's spool, and listed under it");
  await page.click("button[data-tab=spools]");
  const printersNow = JSON.parse(await orgGet("/printers"));
  const cancelledOn = printersNow.find((p) => p.id === jobPrinter);
  // The x1c feeds its jobs from the spool in its AMS's first tray.
  const fedFrom = cancelledOn.spool || cancelledOn.slot_spools[0];
  const usedSpool = page.locator(`#spools tr[data-spool-id="${fedFrom.id}"]`);
  assert.match(await usedSpool.locator("td.where").textContent(),
    new RegExp(`^on ${cancelledOn.name}${cancelledOn.spool ? "" : " \\(A1\\)"}$`));
  await usedSpool.locator("button[data-action=uses]").click();
  const use = page.locator(`#spool-uses tr[data-job-id="${job}"]`);
  await use.waitFor();
  assert.match(await use.textContent(), /cancelled/);
  const taken = JSON.parse(await orgGet(`/spools/${fedFrom.id}/usage`)).find((u) => u.job_id === job);
  assert.ok(taken.grams > 0 && taken.grams < cancelled.facts.filament_grams, JSON.stringify(taken));

  step("an operator adds a material and a spool, weighs it, and a weighing below the empty spool is refused");
  await page.fill("#material-form input[name=mname]", "Test PETG Signal White");
  await page.fill("#material-form input[name=material]", "PETG");
  await page.fill("#material-form input[name=color]", "signal white");
  await page.fill("#material-form input[name=price]", "30");
  await page.click("#material-submit");
  const material = page.locator('#library tr[data-material="Test PETG Signal White"]');
  await material.waitFor();
  assert.match(await material.textContent(), /1\.27 g\/cm³/, "PETG's usual density");
  await page.selectOption("#spool-form select[name=material]", { label: "Test PETG Signal White" });
  await page.fill("#spool-form input[name=empty]", "250");
  await page.fill("#spool-form input[name=location]", "shelf B");
  await page.click("#spool-form button[type=submit]");
  const newSpool = page.locator("#spools tr", { has: page.locator("td", { hasText: /^shelf B$/ }) });
  await newSpool.waitFor();
  const spoolId = await newSpool.getAttribute("data-spool-id");
  const spoolRow = page.locator(`#spools tr[data-spool-id="${spoolId}"]`);
  assert.match(await spoolRow.locator("td.left").textContent(), /^1\.00 kg of 1\.00 kg/);
  await spoolRow.locator("button[data-action=edit]").click();
  await page.fill("#spool-edit input[name=weighed]", "100");
  await page.click("#spool-edit button[type=submit]");
  await page.locator("#spool-edit-error", { hasText: "less than the empty spool" }).waitFor();
  await page.fill("#spool-edit input[name=weighed]", "1000");
  await page.click("#spool-edit button[type=submit]");
  await spoolRow.locator("td.left", { hasText: /^750 g of 1\.00 kg/ }).waitFor();

  step("the spool is loaded on a printer from its card: material and colour come with it");
  await page.click("button[data-tab=printers]");
  const ender = card("ender");
  const tpu = JSON.parse(await orgGet("/printers")).find((p) => p.name === "ender").spool.id;
  await ender.locator("button[data-action=loaded]").click();
  await page.selectOption("#loaded-form select[name=spool]", spoolId);
  assert.equal(await page.inputValue("#loaded-form input[name=material]"), "PETG");
  assert.ok(await page.locator("#loaded-form input[name=material]").isDisabled());
  await page.click("#loaded-form button[type=submit]");
  await ender.locator("dd[data-row=spool]", { hasText: "Test PETG Signal White · 750 g left" }).waitFor();
  assert.match(await ender.locator("dd[data-row=loaded]").textContent(), /^PETG, signal white/);
  const onEnder = JSON.parse(await orgGet("/printers")).find((p) => p.name === "ender");
  assert.equal(onEnder.spool.id, spoolId);
  assert.equal(JSON.parse(await orgGet(`/spools/${tpu}`)).printer, null, "the TPU spool came off");

  step("stating the material by hand takes the spool off; the agent's configuration comes back");
  await ender.locator("button[data-action=loaded]").click();
  await page.selectOption("#loaded-form select[name=spool]", "");
  await page.fill("#loaded-form input[name=material]", "PETG");
  await page.fill("#loaded-form input[name=color]", "neon");
  await page.click("#loaded-form button[type=submit]");
  await ender.locator("dd[data-row=loaded]", { hasText: "PETG, neon" }).waitFor();
  assert.match(await ender.locator("dd[data-row=loaded]").textContent(), /set by a member/);
  assert.equal(await ender.locator("dd[data-row=spool]").count(), 0);
  await ender.locator("button[data-action=loaded]").click();
  await page.click("#loaded-reset");
  await ender.locator("dd[data-row=loaded]", { hasText: /^TPU, green · 0\.6 mm nozzle$/ }).waitFor();

  step("a spool goes into an AMS tray of the x1c from its card, is listed there, and comes out again");
  const x1c = card("x1c");
  await x1c.locator("button[data-action=slots]").click();
  await page.fill("#slots-form input[name=slot]", "A3");
  assert.equal(await page.inputValue("#slots-form select[name=spool]"), "", "A3 holds no spool yet");
  await page.selectOption("#slots-form select[name=spool]", spoolId);
  await page.click("#slots-form button[type=submit]");
  await x1c.locator("dd[data-row=slots] .slot-spool[data-slot=A3]",
    { hasText: "(Test PETG Signal White · 750 g left)" }).waitFor();
  assert.match(await x1c.locator("dd[data-row=slots]").textContent(), /A3 PETG 100% \(Test PETG Signal White/);
  const inTray = JSON.parse(await orgGet(`/spools/${spoolId}`));
  const x1cId = JSON.parse(await orgGet("/printers")).find((p) => p.name === "x1c").id;
  assert.deepEqual([inTray.printer, inTray.slot], [x1cId, "A3"]);
  await page.click("button[data-tab=spools]");
  await spoolRow.locator("td.where", { hasText: "on x1c (A3)" }).waitFor();
  await page.click("button[data-tab=printers]");
  await x1c.locator("button[data-action=slots]").click();
  await page.fill("#slots-form input[name=slot]", "A3");
  assert.equal(await page.inputValue("#slots-form select[name=spool]"), spoolId, "the dialog shows what A3 holds");
  await page.selectOption("#slots-form select[name=spool]", "");
  await page.click("#slots-form button[type=submit]");
  await x1c.locator(".slot-spool[data-slot=A3]").waitFor({ state: "detached" });
  assert.equal(JSON.parse(await orgGet(`/spools/${spoolId}`)).slot, undefined, "out of the tray");

  step("a printer that reports no slots takes a spool in a tool's slot typed by hand (T1 of the xl)");
  const xlCard = card("xl");
  assert.equal(await xlCard.locator("dd[data-row=slots]").count(), 0);
  await xlCard.locator("button[data-action=slots]").click();
  await page.fill("#slots-form input[name=slot]", "T1");
  await page.selectOption("#slots-form select[name=spool]", spoolId);
  await page.click("#slots-form button[type=submit]");
  await xlCard.locator("dd[data-row=slots]", { hasText: /^T1 PETG \(Test PETG Signal White · 750 g left\)$/ }).waitFor();
  await xlCard.locator("button[data-action=slots]").click();
  await page.fill("#slots-form input[name=slot]", "T1");
  await page.selectOption("#slots-form select[name=spool]", "");
  await page.click("#slots-form button[type=submit]");
  await xlCard.locator("dd[data-row=slots]").waitFor({ state: "detached" });

  step("a material's price is cleared; a material with spools cannot be removed; a spool is archived");
  await page.click("button[data-tab=spools]");
  await material.locator("button[data-action=edit]").click();
  assert.equal(await page.inputValue("#material-form input[name=price]"), "30");
  await page.fill("#material-form input[name=price]", "");
  await page.click("#material-submit");
  await material.locator("td", { hasText: /^—$/ }).nth(1).waitFor();
  const stored = JSON.parse(await orgGet("/materials")).find((m) => m.name === "Test PETG Signal White");
  assert.equal(stored.price_per_kg, null);
  assert.equal(stored.color, "signal white");
  await material.locator("button[data-action=remove]").click();
  await page.locator("#notice", { hasText: "Could not remove Test PETG Signal White" }).waitFor();
  await spoolRow.locator("button[data-action=archive]").click();
  await spoolRow.waitFor({ state: "detached" });
  await page.check("#spools-archived");
  await page.locator(`#spools tr.archived[data-spool-id="${spoolId}"]`).waitFor();
  await page.uncheck("#spools-archived");
  await spoolRow.waitFor({ state: "detached" });

  step("statistics: time per state for every printer, the cancelled job counted on its printer");
  await page.click("button[data-tab=stats]");
  await page.locator("#stats tr").nth(5).waitFor();
  assert.equal(await page.locator("#stats tr").count(), 6);
  const statRow = page.locator(`#stats tr[data-printer-id="${cancelled.printer}"] td`);
  assert.equal(await statRow.nth(7).textContent(), "1");
  // What the server counts is what the page shows.
  const fleet = JSON.parse(await orgGet("/stats?days=7"));
  const counted = fleet.printers.find((p) => p.printer_id === cancelled.printer).jobs;
  assert.equal(counted.failed + counted.cancelled + counted.refused, 1);
  // Every printer's telemetry since the demo started is in the rollups, in one state or another.
  const spoolStats = page.locator(`#spool-stats tr[data-material="${cancelled.facts.material}"]`);
  await spoolStats.waitFor();
  assert.match(await spoolStats.textContent(), /\d/);
  // Per member: the demo's jobs are all the owner's, and the cancelled one is counted.
  const byMember = JSON.parse(await orgGet("/usage/members?days=1"));
  const mine = byMember.find((m) => m.login === login);
  assert.ok(mine && mine.jobs.cancelled >= 1, JSON.stringify(byMember));
  const memberRow = page.locator(`#member-stats tr[data-member="${login}"] td`);
  await memberRow.first().waitFor();
  assert.equal(await memberRow.nth(2).textContent(), String(mine.jobs.failed + mine.jobs.cancelled));
  for (const row of await page.locator("#stats tr").all()) {
    const cells = await row.locator("td").allTextContents();
    const id = await row.getAttribute("data-printer-id");
    const hist = await orgGet(`/printers/${id}/history?hours=168`);
    assert.ok(cells.slice(1, 6).some((c) => /^\d+ s \(\d+ %\)$/.test(c)), `no time recorded: ${cells} ${hist}`);
    assert.match(cells[8], /^\d+ %$/, "the share of time spent printing");
  }

  step("an operator sets up a maintenance task due at once: listed due, shown on the card, marked done");
  await page.click("button[data-tab=maintenance]");
  const mf = page.locator("#maintenance-form");
  await mf.locator("select[name=printer]").selectOption({ label: "mk4-left" });
  await mf.locator("select[name=kind]").selectOption("lubrication");
  await mf.locator("input[name=days]").fill("30");
  await mf.locator("input[name=last]").fill(new Date(Date.now() - 40 * 86_400_000).toISOString().slice(0, 10));
  await mf.locator("button[type=submit]").click();
  const lube = page.locator('#maintenance tr[data-printer="mk4-left"][data-kind="lubrication"]');
  await lube.waitFor();
  assert.equal(await lube.getAttribute("data-status"), "due");
  assert.match(await lube.textContent(), /30 days/);
  // Without an interval, the server's reason is shown.
  await mf.locator("select[name=kind]").selectOption("belts");
  await mf.locator("button[type=submit]").click();
  await page.locator("#maintenance-error", { hasText: "every_print_hours, every_days or both" }).waitFor();
  await page.click("button[data-tab=printers]");
  await card("mk4-left").locator("dd[data-row=maintenance]", { hasText: "due: lubrication" }).waitFor();
  await page.click("button[data-tab=maintenance]");
  await lube.locator("button[data-action=maintenance-done]").click();
  await page.locator('#maintenance tr[data-printer="mk4-left"][data-kind="lubrication"][data-status="ok"]').waitFor();
  const lubeTask = JSON.parse(await orgGet("/maintenance")).find((t) => t.printer === "mk4-left" && t.kind === "lubrication");
  assert.equal(lubeTask.status, "ok");
  assert.ok(lubeTask.done_by, "who did it is recorded");
  await page.click("button[data-tab=printers]");
  await card("mk4-left").locator("dd[data-row=maintenance]").waitFor({ state: "detached" });

  step("an admin adds a signed webhook channel, sends a test, reads its deliveries and removes it");
  const received = [];
  const receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      received.push({ path: req.url, headers: req.headers, body });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  try {
    await page.click("button[data-tab=notify]");
    await page.locator("#channels-empty").waitFor();
    await page.fill("#channel-form input[name=cname]", "ops");
    await page.selectOption("#channel-form select[name=kind]", "webhook");
    await page.fill("#channel-form input[name=url]", "ftp://example.org/hook");
    await page.click("#channel-form button[type=submit]");
    await page.locator("#channel-error", { hasText: "https://" }).waitFor();
    await page.fill("#channel-form input[name=url]", `http://127.0.0.1:${receiver.address().port}/hooks/hearth`);
    await page.fill("#channel-form input[name=pools]", "pla, petg");
    await page.click("#channel-form button[type=submit]");
    await page.locator("#channel-secret-value", { hasText: /^whsec_/ }).waitFor();
    const channel = page.locator('#channels tr[data-channel="ops"]');
    await channel.waitFor();
    assert.match(await channel.textContent(), /job\.completed/);
    assert.match(await channel.textContent(), /pools petg, pla/);
    assert.doesNotMatch(await channel.textContent(), /hooks/, "the URL's path is not shown");
    await channel.locator("button[data-action=test]").click();
    await channel.locator(".latest .ok", { hasText: "delivered (200)" }).waitFor();
    assert.equal(received.length, 1);
    assert.equal(received[0].path, "/hooks/hearth");
    assert.match(received[0].headers["webhook-signature"], /^v1,/);
    assert.equal(JSON.parse(received[0].body).type, "test");
    await channel.locator("button[data-action=deliveries]").click();
    await page.locator("#deliveries tr[data-state=delivered]").waitFor();
    // Edited: other events and every printer; the destination stays.
    await channel.locator("button[data-action=edit]").click();
    assert.equal(await page.inputValue("#channel-form input[name=pools]"), "petg, pla");
    await page.uncheck('#channel-events input[value="job.completed"]');
    await page.check('#channel-events input[value="job.started"]');
    await page.fill("#channel-form input[name=pools]", "");
    // Quiet at night in Berlin: only alerts then.
    await page.fill("#channel-form input[name=qfrom]", "22:00");
    await page.fill("#channel-form input[name=qto]", "07:00");
    await page.fill("#channel-form input[name=qzone]", "Europe/Berlin");
    await page.click("#channel-submit");
    await channel.locator("td", { hasText: /^all$/ }).waitFor();
    assert.equal(await channel.locator("td[data-cell=quiet]").textContent(), "22:00–07:00 Europe/Berlin");
    const edited = JSON.parse(await orgGet("/notifications"))[0];
    assert.deepEqual(edited.quiet_hours, { from: "22:00", to: "07:00", time_zone: "Europe/Berlin" });
    assert.ok(edited.events.includes("job.started") && !edited.events.includes("job.completed"), JSON.stringify(edited));
    assert.ok(edited.events.includes("spool.low"), "spools running low are followed by default");
    assert.deepEqual(edited.pools, []);
    await channel.locator("button[data-action=remove]").click();
    await channel.waitFor({ state: "detached" });
    assert.equal(JSON.parse(await orgGet("/notifications")).length, 0);
  } finally {
    receiver.close();
  }

  step("the audit log shows the cancellation by this account, and its chain verifies");
  await page.click("button[data-tab=audit]");
  const entry = page.locator('#audit tr[data-action="job.cancel"]').first();
  await entry.waitFor();
  assert.match(await entry.textContent(), new RegExp(`${login}job\\.canceljob:${job}`));
  assert.match(await page.locator('#audit tr[data-action="printer.action"]').first().textContent(), new RegExp(`${login}printer\\.actionprinter:`));
  await page.click("#audit-verify");
  // Whatever the check says, said in full if it is not "Intact".
  await page.waitForFunction(() => /^(Intact|Broken|Could not)/.test(document.querySelector("#audit-result").textContent));
  assert.match(await page.textContent("#audit-result"), /^Intact: /);

  step("the owner, an instance admin, records a legal request: listed under the log, an entry of its chain, which verifies");
  {
    const legalOrg = JSON.parse(await orgGet("")).id;
    const me = JSON.parse(await page.evaluate(async () => (await fetch("/api/v1/me")).text()));
    assert.equal(me.user.instance_admin, true, "the demo's owner set the server up");
    const rows = page.locator("#legal tr");
    await page.locator("#legal-empty", { hasText: /^No legal request recorded for this organisation\.$/ }).waitFor();
    assert.equal(await rows.count(), 0);
    const lf = page.locator("#legal-form");
    assert.ok(await lf.isVisible(), "an instance admin may record one");
    assert.ok(await lf.locator("input[name=concerns]").isChecked(), "it concerns this organisation by default");
    // An authority of blanks passes the browser's check of a required field, not the server's:
    // its reason is shown and nothing is recorded.
    await lf.locator("input[name=authority]").fill("   ");
    await lf.locator("input[name=reference]").fill("27 O 123/26");
    await lf.locator("input[name=received]").fill("2026-12-01");
    await lf.locator("textarea[name=requested]").fill("the organisation's files");
    await lf.locator("textarea[name=disclosed]").fill("nothing: the files are sealed");
    await lf.locator("button[type=submit]").click();
    await page.locator("#notice", { hasText: /^Could not record the legal request: authority: / }).waitFor();
    assert.equal(await rows.count(), 0);
    assert.ok(await page.locator("#legal-empty").isVisible());
    assert.deepEqual(JSON.parse(await orgGet("/legal-requests")), []);
    assert.equal(await page.locator('#audit tr[data-action="legal.request"]').count(), 0);
    // Corrected, the rest of the form as it was.
    await lf.locator("input[name=authority]").fill("Landgericht Berlin");
    await lf.locator("button[type=submit]").click();
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1);
    assert.ok(await page.locator("#notice").isHidden(), "the refusal's notice is gone");
    assert.ok(await page.locator("#legal-empty").isHidden());
    assert.match(await page.textContent("#legal-status"), /^Recorded in this organisation's audit log and the instance's/);
    assert.equal(await lf.locator("input[name=authority]").inputValue(), "", "the form is emptied");
    const [stored, ...more] = JSON.parse(await orgGet("/legal-requests"));
    assert.deepEqual(more, []);
    assert.equal(stored.scope, legalOrg);
    assert.equal(stored.org, legalOrg);
    assert.equal(stored.recorded_by, login);
    const cells = await rows.first().locator("td").allTextContents();
    assert.deepEqual(cells.slice(0, 5),
      ["2026-12-01", "Landgericht Berlin", "27 O 123/26", "the organisation's files", "nothing: the files are sealed"]);
    assert.match(cells[5], new RegExp(`^by ${login}, .+ · entry #${stored.seq}$`));
    // The audit log above was read again: the request is its entry, by this account, about the organisation.
    const legalEntry = page.locator(`#audit tr[data-action="legal.request"][data-seq="${stored.seq}"]`);
    await legalEntry.waitFor();
    assert.match(await legalEntry.textContent(), new RegExp(`${login}legal\\.requestorg:${legalOrg}`));
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/audit/verify")),
      page.click("#audit-verify"),
    ]);
    await page.waitForFunction(() => /^(Intact|Broken|Could not)/.test(document.querySelector("#audit-result").textContent));
    const verified = await page.textContent("#audit-result");
    assert.match(verified, /^Intact: /);
    assert.ok(Number(/ head #(\d+) /.exec(verified)[1]) >= stored.seq, `the check covers the new entry: ${verified}`);
  }

  step("an admin requires approval of operators' jobs: a new operator's jobs await it on the Jobs tab and the printer card");
  // What the test sets up through the API as the owner, with the page's session.
  const api = (method, path, body) => page.evaluate(async ([m, p, b]) => {
    const r = await fetch(`/api/v1${p}`, {
      method: m,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": sessionStorage.getItem("hearth.csrf") || "" },
      body: b === undefined ? undefined : JSON.stringify(b),
    });
    return { status: r.status, body: await r.text() };
  }, [method, path, body]);
  const ok = (r) => {
    assert.ok(r.status >= 200 && r.status < 300, `${r.status} ${r.body}`);
    return r.body ? JSON.parse(r.body) : null;
  };
  const orgId = JSON.parse(await orgGet("")).id;
  const owner = JSON.parse(await page.evaluate(async () => (await fetch("/api/v1/me")).text())).user;
  await page.click("button[data-tab=account]");
  const approvalPolicy = () => page.waitForResponse((r) => r.url().endsWith("/approval-policy") && r.status() === 200);
  assert.equal(await page.isChecked("#org-require-approval"), false);
  await Promise.all([approvalPolicy(), page.check("#org-require-approval")]);
  assert.equal(JSON.parse(await orgGet("")).require_approval, true);
  // An operator joins (an account made by the owner, an instance admin) and sends two jobs to
  // the xl, held so that an approved job stays in the queue: the sealed payload and signed
  // manifest of a demo job, which is all the server checks of a submission.
  const operator = { login: "approval-operator", secret: "the operator's login secret" };
  const opUser = ok(await api("POST", "/users", { ...operator, instance_admin: false }));
  ok(await api("POST", `/orgs/${orgId}/members`, { login: operator.login, role: "operator" }));
  const xl = JSON.parse(await orgGet("/printers")).find((p) => p.name === "xl");
  ok(await api("PUT", `/orgs/${orgId}/printers/${xl.id}/hold`, { held: true }));
  const demoJob = JSON.parse(await orgGet("/jobs")).find((j) => j.printer && !j.approval);
  const { manifest } = JSON.parse(await orgGet(`/jobs/${demoJob.id}/manifest`));
  const opApi = await request.newContext({ baseURL: url });
  try {
    const opLogin = await opApi.post("/api/v1/auth/login", { data: operator });
    assert.equal(opLogin.status(), 200, await opLogin.text());
    const opHeaders = { "X-CSRF-Token": (await opLogin.json()).csrf_token };
    const uuidv7 = () => {
      const b = crypto.getRandomValues(new Uint8Array(16));
      const t = Date.now();
      for (let i = 0; i < 6; i += 1) b[i] = Math.floor(t / 2 ** (8 * (5 - i))) & 0xff;
      b[6] = (b[6] & 0x0f) | 0x70;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    };
    const submit = async () => {
      const r = await opApi.post(`/api/v1/orgs/${orgId}/jobs`, {
        headers: opHeaders,
        data: { job_id: uuidv7(), printer: xl.id, blob_sha256: demoJob.blob_sha256, manifest, facts: {}, priority: 0 },
      });
      assert.equal(r.status(), 201, await r.text());
      const j = await r.json();
      assert.equal(j.state, "queued");
      assert.deepEqual(j.approval, { state: "pending" });
      return j;
    };
    const toApprove = await submit();
    const toReject = await submit();
    // Only admins decide.
    const refused = await opApi.post(`/api/v1/orgs/${orgId}/jobs/${toApprove.id}/approve`, { headers: opHeaders, data: {} });
    assert.equal(refused.status(), 403);

    await page.click("button[data-tab=printers]");
    await card("xl").locator("dd[data-row=queue]", { hasText: /^2 jobs awaiting approval$/ }).waitFor();
    await page.click("button[data-tab=jobs]");
    for (const j of [toApprove, toReject]) {
      const r = page.locator(`#jobs tr[data-job-id="${j.id}"][data-state=queued]`);
      await r.locator(".awaiting-approval", { hasText: /^awaiting approval$/ }).waitFor();
      assert.equal(await r.locator(".queue-place").count(), 0, "no place in the queue: no printer takes it yet");
      assert.equal(await r.locator("button[data-action=approve]").count(), 1);
      assert.equal(await r.locator("button[data-action=reject]").count(), 1);
      assert.equal(await r.locator("button[data-action=top]").count(), 0);
      // The new member's login, read when their first job arrived.
      await r.locator("td", { hasText: new RegExp(`^${operator.login}$`) }).waitFor();
    }

    step("approving a job puts it in the queue; rejecting one cancels it with the reason");
    const approvedRow = page.locator(`#jobs tr[data-job-id="${toApprove.id}"]`);
    await approvedRow.locator("button[data-action=approve]").click();
    await approvedRow.locator(".awaiting-approval").waitFor({ state: "detached" });
    await approvedRow.locator(".approval", { hasText: new RegExp(`^approved by ${login}$`) }).waitFor();
    await approvedRow.locator(".queue-place", { hasText: /^#\d+ in the queue/ }).waitFor();
    assert.equal(await approvedRow.locator("button[data-action=approve]").count(), 0);
    const approved = JSON.parse(await orgGet(`/jobs/${toApprove.id}`));
    assert.equal(approved.state, "queued", "its printer is held");
    assert.equal(approved.approval.state, "approved");
    assert.equal(approved.approval.by, owner.id);
    const rejectedRow = page.locator(`#jobs tr[data-job-id="${toReject.id}"]`);
    promptAnswer = "wrong material for the xl";
    await rejectedRow.locator("button[data-action=reject]").click();
    promptAnswer = "";
    await page.locator(`#jobs tr[data-job-id="${toReject.id}"][data-state=cancelled]`).waitFor();
    assert.equal(await rejectedRow.locator(".message").textContent(), `rejected by ${login}: wrong material for the xl`);
    assert.equal(await rejectedRow.locator("button").count(), 0);
    const rejected = JSON.parse(await orgGet(`/jobs/${toReject.id}`));
    assert.equal(rejected.state, "cancelled");
    assert.equal(rejected.approval.state, "rejected");
    assert.equal(rejected.message, `rejected by ${login}: wrong material for the xl`);
    // Decided already: a second decision is refused.
    assert.equal((await api("POST", `/orgs/${orgId}/jobs/${toReject.id}/approve`, {})).status, 409);
    await page.click("button[data-tab=printers]");
    await card("xl").locator("dd[data-row=queue]", { hasText: /^1 job waiting$/ }).waitFor();

    step("two more wait; an admin approves all waiting jobs at once");
    const more = [await submit(), await submit()];
    await page.click("button[data-tab=jobs]");
    const approveAll = page.locator("#approve-waiting", { hasText: "Approve the 2 waiting jobs" });
    await approveAll.click();
    for (const j of more) {
      await page.locator(`#jobs tr[data-job-id="${j.id}"] .approval`, { hasText: `approved by ${login}` }).waitFor();
      assert.equal(JSON.parse(await orgGet(`/jobs/${j.id}`)).approval.state, "approved");
    }
    assert.ok(await page.locator("#approve-waiting").isHidden(), "nothing waits any more");
    await page.click("button[data-tab=printers]");
    await card("xl").locator("dd[data-row=queue]", { hasText: /^3 jobs waiting$/ }).waitFor();
  } finally {
    await opApi.dispose();
  }

  step("the approval policy is lifted; the xl, its job and the operator are as before");
  for (const j of JSON.parse(await orgGet("/jobs")).filter((x) =>
    x.submitted_by === opUser.id && x.state === "queued")) {
    ok(await api("POST", `/orgs/${orgId}/jobs/${j.id}/cancel`));
  }
  ok(await api("PUT", `/orgs/${orgId}/printers/${xl.id}/hold`, { held: false }));
  ok(await api("DELETE", `/orgs/${orgId}/members/${opUser.id}`));
  await card("xl").locator("dd[data-row=queue]").waitFor({ state: "detached" });
  await page.click("button[data-tab=account]");
  await Promise.all([approvalPolicy(), page.uncheck("#org-require-approval")]);
  assert.equal(JSON.parse(await orgGet("")).require_approval, false);

  step("logging out ends the session: a reload asks to log in again");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  await page.reload();
  await page.locator("#login-form").waitFor();
  assert.equal(await page.locator("article.printer").count(), 0);
  const status = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
  assert.equal(status, 401);

  step("a second factor set up on the Account tab: its QR code, a code, recovery codes");
  const logIn = async () => {
    await page.fill("input[name=login]", login);
    await page.fill("input[name=passphrase]", passphrase);
    await page.click("button[type=submit]");
  };
  await logIn();
  await page.locator("#tabs").waitFor();
  await page.click("button[data-tab=account]");
  await page.locator("#mfa-state", { hasText: "Off:" }).waitFor();
  await page.click("#mfa-begin");
  await page.locator("#mfa-setup").waitFor();
  assert.ok(await page.locator("#mfa-qr").evaluate((img) => img.complete && img.naturalWidth > 0),
    "the QR code is an image the browser shows");
  const secret = await page.textContent("#mfa-secret");
  // Codes made by the reference oathtool, as an authenticator app would.
  const totp = (steps) => execFileSync("oathtool", [
    "--totp", "-b", `--now=@${Math.floor(Date.now() / 1000) + steps * 30}`, secret,
  ]).toString().trim();
  await page.fill("#mfa-confirm-form input[name=code]", totp(0));
  await page.click("#mfa-confirm-form button[type=submit]");
  await page.locator("#mfa-codes li").nth(9).waitFor();
  assert.equal(await page.locator("#mfa-codes li").count(), 10);
  await page.locator("#mfa-state", { hasText: "On:" }).waitFor();
  assert.equal(await page.textContent("#mfa-recovery-left"), "10 recovery codes left.");
  const firstCodes = await page.locator("#mfa-codes li").allTextContents();
  await page.click("#mfa-new-codes");
  await page.waitForFunction((before) => document.querySelector("#mfa-codes li").textContent !== before,
    firstCodes[0]);
  assert.equal(await page.locator("#mfa-codes li").count(), 10);

  step("the owner requires it of every member, and lifts it again");
  await page.locator("#org-mfa-missing", { hasText: /^(Without a second factor: |Every member has a second factor)/ }).waitFor();
  assert.ok(!(await page.textContent("#org-mfa-missing")).includes(`${login},`), "the owner has one now");
  const policy = () => page.waitForResponse((r) => r.url().endsWith("/mfa-policy") && r.status() === 200);
  await Promise.all([policy(), page.check("#org-require-mfa")]);
  assert.equal(JSON.parse(await orgGet("")).require_mfa, true);
  await Promise.all([policy(), page.uncheck("#org-require-mfa")]);
  assert.equal(JSON.parse(await orgGet("")).require_mfa, false);

  step("the next login asks for the app's code once the passphrase is right");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  await logIn();
  await page.locator("#notice", { hasText: "asks for a second factor" }).waitFor();
  assert.ok(await page.locator("#code-field").isVisible());
  await page.fill("input[name=code]", "000000");
  await page.click("button[type=submit]");
  await page.locator("#notice", { hasText: "That code was not accepted" }).waitFor();
  await page.fill("input[name=code]", totp(1));
  await page.click("button[type=submit]");
  await page.locator("#tabs").waitFor();
  assert.equal(await page.textContent("#who"), login);
  assert.ok(await page.locator("#code-field").isHidden());

  step("the Account tab lists where this account is logged in, and its API tokens");
  await page.locator('#sessions tr[data-current="true"]', { hasText: / on Linux/ }).waitFor();
  await page.locator("#tokens tbody tr").first().waitFor();
  await page.click("#sessions-end-others");
  await page.waitForFunction(() => document.querySelectorAll("#sessions tbody tr").length === 1);
  assert.equal(await page.locator('#sessions tbody tr[data-current="true"]').count(), 1);

  step("turned off from the Account tab of this fresh login");
  await page.click("button[data-tab=account]");
  await page.click("#mfa-off-form button[type=submit]");
  await page.locator("#mfa-state", { hasText: "Off:" }).waitFor();
  assert.equal(JSON.parse(await page.evaluate(async () => JSON.stringify(await (await fetch("/api/v1/me")).json()))).mfa, false);

  assert.deepEqual(problems, []);
  console.log("dashboard: all steps passed");
} finally {
  await browser.close();
}
