// `hearth org approval required` in the pages of `hearth ui`, in a real Chromium. Run by
// crates/hearth-cli/tests/it/ui.rs (`an_admin_approves_and_rejects_waiting_jobs_in_the_page`),
// which starts a server, an agent with one simulated printer `mk4`, turns approval on, has Bob (an
// operator) print `keep.gcode` and `drop.gcode`, which wait, starts `hearth ui` for Ada (the owner)
// and for Bob, and passes:
//   HEARTH_UI_LINK=http://127.0.0.1:PORT/open?token=...            Ada's page
//   HEARTH_OPERATOR_UI_LINK=http://127.0.0.1:PORT/open?token=...   Bob's page
//   HEARTH_APPROVE_JOB=JOB HEARTH_REJECT_JOB=JOB HEARTH_REJECT_REASON=... node member-ui-approval.test.mjs
// Exits non-zero with the failed step on stderr. CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const { HEARTH_UI_LINK: link, HEARTH_OPERATOR_UI_LINK: operatorLink } = process.env;
const { HEARTH_APPROVE_JOB: kept, HEARTH_REJECT_JOB: dropped, HEARTH_REJECT_REASON: reason } = process.env;
assert.ok(link && operatorLink && kept && dropped && reason,
  "HEARTH_UI_LINK, HEARTH_OPERATOR_UI_LINK, HEARTH_APPROVE_JOB, HEARTH_REJECT_JOB and HEARTH_REJECT_REASON are required");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const problems = [];
try {
  const step = (name) => console.log(`- ${name}`);

  /** A page opened with `hearth ui`'s printed link; a page error, console error or failed request fails the test. */
  const open = async (who, url) => {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`${who}: console: ${m.text()}`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`${who}: ${r.status()} ${r.url()}`);
    });
    await page.goto(url);
    return page;
  };
  /** Job `id`'s row in the Jobs tab, in one of `states` if given. */
  const row = (page, id, ...states) =>
    page.locator(states.length
      ? states.map((s) => `#jobs tbody tr[data-id="${id}"][data-state="${s}"]`).join(", ")
      : `#jobs tbody tr[data-id="${id}"]`);
  // A job a printer took: printing, or (the simulated printer is fast) printed already.
  const taken = (page, id) => row(page, id, "printing", "completed");
  /** Clicks `button`, answering the dialog it opens with `answer(dialog)`; what the dialog asked. */
  const answering = async (page, button, answer) => {
    const asked = new Promise((resolve) =>
      page.once("dialog", async (d) => {
        const seen = { type: d.type(), message: d.message() };
        await answer(d);
        resolve(seen);
      }));
    await button.click();
    return asked;
  };

  step("Bob's page lists his jobs as awaiting approval, without the buttons that decide");
  const bob = await open("bob", operatorLink);
  await bob.locator("#who", { hasText: "bob · Acme (operator)" }).waitFor();
  await bob.click('.tab[data-tab="jobs"]');
  for (const [id, name] of [[kept, "keep.gcode"], [dropped, "drop.gcode"]]) {
    const r = row(bob, id, "awaiting-approval");
    await r.waitFor();
    assert.equal(await r.locator(".name").textContent(), name);
    assert.equal(await r.locator("td.state").textContent(), "awaiting approval");
    assert.equal(await r.locator("button.approve, button.reject").count(), 0);
  }

  step("Ada's page lists Bob's waiting jobs by name, with Approve and Reject…");
  const page = await open("ada", link);
  await page.locator("#who", { hasText: "ada · Acme (owner)" }).waitFor();
  await page.click('.tab[data-tab="jobs"]');
  for (const [id, name] of [[kept, "keep.gcode"], [dropped, "drop.gcode"]]) {
    const r = row(page, id, "awaiting-approval");
    await r.waitFor();
    assert.equal(await r.locator(".name").textContent(), name);
    assert.equal(await r.locator("td").nth(3).textContent(), "mk4");
    assert.equal(await r.locator("td").nth(4).textContent(), "bob");
    assert.equal(await r.locator("td.state").textContent(), "awaiting approval");
    assert.equal(await r.locator("button.approve").textContent(), "Approve");
    assert.equal(await r.locator("button.reject").textContent(), "Reject…");
  }
  // Every decision the page sends, to check that a called-off one sends none.
  const decisions = [];
  page.on("request", (r) => {
    if (/\/api\/jobs\/[^/]+\/(approve|reject)$/.test(new URL(r.url()).pathname)) decisions.push(r.url());
  });

  step("a rejection called off at its prompt sends nothing: the job still waits");
  const prompt = {
    type: "prompt",
    message: "Reject drop.gcode? It is cancelled; say why, for the member who sent it:",
  };
  assert.deepEqual(await answering(page, row(page, dropped).locator("button.reject"), (d) => d.dismiss()), prompt);
  assert.ok(await page.locator("#done").isHidden());
  assert.ok(await page.locator("#notice").isHidden());
  await row(page, dropped, "awaiting-approval").locator("button.reject").waitFor();

  step("Approve: the job takes its place in the queue, and the printer takes it");
  await row(page, kept).locator("button.approve").click();
  // As the server answered at once: queued, or sent to the printer's agent already.
  await page.locator("#done", { hasText: /^keep\.gcode: approved; the job is (queued|assigned|transferring|printing)\.$/ }).waitFor();
  // The page refreshes the jobs every 5 s.
  await taken(page, kept).waitFor();
  assert.equal(await taken(page, kept).locator("td").nth(3).textContent(), "mk4");
  assert.equal(await taken(page, kept).locator("button.approve, button.reject").count(), 0);
  // The one decision sent so far (none from the rejection called off).
  assert.deepEqual(decisions, [new URL(`/api/jobs/${kept}/approve`, link).href]);

  step("Reject…: asked why, the job is cancelled, saying who and why");
  assert.deepEqual(await answering(page, row(page, dropped).locator("button.reject"), (d) => d.accept(reason)), prompt);
  await page.locator("#done", { hasText: "drop.gcode: rejected; the job is cancelled." }).waitFor();
  const gone = row(page, dropped, "cancelled");
  await gone.waitFor();
  assert.equal(await gone.locator("td.state").textContent(), "cancelled");
  assert.equal(await gone.locator(".note").textContent(), `rejected by ada: ${reason}`);
  assert.equal(await gone.locator("button.approve, button.reject, button.cancel").count(), 0);
  assert.equal(decisions.length, 2);
  assert.equal(decisions[1], new URL(`/api/jobs/${dropped}/reject`, link).href);

  step("what the server holds, as hearth ui lists it: both decided, the rejected one cancelled with why");
  const listed = await (await page.request.get(new URL("/api/jobs", link).href)).json();
  const held = (id) => listed.find((j) => j.id === id);
  assert.equal(held(kept).approval.state, "approved");
  assert.ok(["printing", "completed"].includes(held(kept).state), held(kept).state);
  assert.equal(held(dropped).approval.state, "rejected");
  assert.equal(held(dropped).state, "cancelled");
  assert.equal(held(dropped).message, `rejected by ada: ${reason}`);

  step("Bob's page then shows his job taken by the printer, and the other rejected with Ada's reason");
  await bob.reload();
  await bob.click('.tab[data-tab="jobs"]');
  await taken(bob, kept).waitFor();
  const told = row(bob, dropped, "cancelled");
  await told.waitFor();
  assert.equal(await told.locator(".note").textContent(), `rejected by ada: ${reason}`);

  assert.deepEqual(problems, []);
  console.log("ok");
} finally {
  await browser.close();
}
