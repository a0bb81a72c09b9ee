// Passkeys (WebAuthn) in the dashboard, in a real Chromium whose virtual authenticator (the
// DevTools protocol's WebAuthn domain) stands for the device: a platform authenticator keeping
// resident (discoverable) credentials, its user verification always passing. One is added on the
// Account tab, refused a second time for the same device, logs in from the login page (the
// session says so), its login answer is refused when sent again, and once removed it logs in no
// more; a browser without WebAuthn is offered none. Run by crates/hearth-server/tests/it/passkeys.rs
// (`the_dashboard_…`), which starts a hearthd whose public_url is HEARTH_URL and whose owner has no
// second factor:
//   HEARTH_URL=http://localhost:PORT HEARTH_LOGIN=owner HEARTH_PASSPHRASE=... node passkeys.test.mjs
// `localhost`, not 127.0.0.1: WebAuthn takes no IP address as relying party (its host is the
// relying party's ID). Exits non-zero with the failed step on stderr. CHROMIUM overrides
// /usr/bin/chromium.
import assert from "node:assert/strict";
import { authenticators, launch, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const login = process.env.HEARTH_LOGIN;
const passphrase = process.env.HEARTH_PASSPHRASE;
assert.ok(url && login && passphrase, "HEARTH_URL, HEARTH_LOGIN and HEARTH_PASSPHRASE are required");
const rpId = new URL(url).hostname;
const FINISH = "/api/v1/auth/passkey/finish";

const browser = await launch();
const problems = [];
// Not logged in yet (401), a ceremony sent again (400), a passkey refused (401, or 409 when the
// server is the one to find the device's passkey registered already) are answered on purpose.
const expected = [400, 401, 403, 409];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page, problems, expected);
  // Confirmations are accepted, and kept to check what they asked.
  const dialogs = [];
  let renameTo = null; // what a prompt (Rename) is answered with
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    if (d.type() === "prompt") d.accept(renameTo ?? d.defaultValue());
    else d.accept();
  });
  // What the page sent: the passphrase never leaves the browser, and the body of each passkey
  // login's answer, to send it again.
  const sent = [];
  const finishBodies = [];
  page.on("request", (r) => {
    sent.push(`${r.method()} ${r.url()} ${r.postData() || ""}`);
    if (r.method() === "POST" && new URL(r.url()).pathname === FINISH) finishBodies.push(r.postData());
  });

  // The device: Chromium's virtual authenticator, answering without a prompt.
  const device = await authenticators(context, page, "internal");
  const { cdp } = device;
  const authenticatorId = await device.add();
  const held = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  // CDP gives credential ids in base64, the server in base64url.
  const base64url = (b64) => b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  const step = (name) => console.log(`- ${name}`);
  // GET /api/v1/PATH with the page's session: its status and body.
  const get = (path) => page.evaluate(async (p) => {
    const r = await fetch(`/api/v1${p}`);
    return { status: r.status, body: r.ok ? await r.json() : null };
  }, path);
  const passkeyLogin = page.getByRole("button", { name: "Log in with a passkey" });
  const rows = page.locator("#passkeys tbody tr");
  const laptop = page.locator('#passkeys tr[data-name="Laptop"]');

  step("the login page offers a passkey; the passphrase logs in; Account says there is no passkey yet");
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  assert.equal((await get("/info")).body.passkeys, true, "the server takes passkeys");
  assert.equal(await page.evaluate(() => window.isSecureContext), true, `${url} is a secure context`);
  await passkeyLogin.waitFor();
  await page.fill("#login-form input[name=login]", login);
  await page.fill("#login-form input[name=passphrase]", passphrase);
  await page.click("#login-form button[type=submit]");
  await page.locator("#tabs").waitFor();
  assert.equal(await page.textContent("#who"), login);
  await page.click("button[data-tab=account]");
  await page.locator("#passkey-card").waitFor();
  await page.locator("#passkeys-none", { hasText: "No passkey yet" }).waitFor();
  assert.ok(await page.locator("#passkeys").isHidden(), "no table of none");
  assert.ok(await page.locator("#passkey-card p.muted", { hasText: "does not open sealed designs" }).isVisible());
  assert.ok(await page.locator("#passkey-unavailable").isHidden(), "this browser can add one");
  assert.equal(await page.inputValue("#passkey-form input[name=pkname]"), "Passkey", "a name is suggested");
  assert.deepEqual(await held(), [], "the device holds nothing yet");

  step("a passkey named Laptop is added: listed, and held by the device as a resident credential for the server's host");
  await page.fill("#passkey-form input[name=pkname]", "Laptop");
  await page.click("#passkey-add");
  await laptop.waitFor();
  await page.locator("#passkey-status", { hasText: "Added «Laptop»" }).waitFor();
  assert.equal(await rows.count(), 1);
  assert.equal(await laptop.locator("td[data-cell=name]").textContent(), "Laptop");
  assert.equal(await laptop.locator("td[data-cell=used]").textContent(), "never");
  assert.ok(await page.locator("#passkeys-none").isHidden());
  assert.equal(await page.textContent("#passkey-error"), "");
  const creds = await held();
  assert.equal(creds.length, 1, "one credential on the device");
  assert.equal(creds[0].isResidentCredential, true, "discoverable: it logs in with no account typed");
  assert.equal(creds[0].rpId, rpId);
  assert.equal(await laptop.getAttribute("data-id"), base64url(creds[0].credentialId), "the server lists the device's credential");
  const listed = await get("/me/passkeys");
  assert.equal(listed.body.length, 1);
  assert.equal(listed.body[0].name, "Laptop");
  assert.equal(listed.body[0].last_used_at, null);

  step("renamed from its row, and back");
  for (const [from, to] of [["Laptop", "Work laptop"], ["Work laptop", "Laptop"]]) {
    renameTo = to;
    await page.locator(`#passkeys tr[data-name="${from}"]`).getByRole("button", { name: "Rename" }).click();
    await page.locator(`#passkeys tr[data-name="${to}"]`).waitFor();
    assert.match(dialogs.at(-1), new RegExp(`A new name for the passkey «${from}»`));
    assert.equal((await get("/me/passkeys")).body[0].name, to);
  }
  renameTo = null;

  step("the same device again (with the passphrase, as after five minutes) is refused, and the page says why");
  await page.fill("#passkey-form input[name=pkname]", "Laptop again");
  await page.fill("#passkey-form input[name=passphrase]", passphrase);
  const registerStart = page.waitForRequest((r) => new URL(r.url()).pathname === "/api/v1/me/passkeys/register");
  await page.click("#passkey-add");
  assert.match(JSON.parse((await registerStart).postData()).secret, /^[0-9a-f]{64}$/,
    "the login secret derived from the passphrase goes, not the passphrase");
  await page.locator("#passkey-error", { hasText: "This device already holds a passkey for your account." }).waitFor();
  assert.equal(await rows.count(), 1, "still one listed");
  assert.equal((await get("/me/passkeys")).body.length, 1, "still one on the server");
  assert.equal((await held()).length, 1, "still one on the device");
  assert.equal(await page.locator('#passkeys tr[data-name="Laptop again"]').count(), 0);
  for (const r of sent) assert.ok(!r.includes(passphrase), `the passphrase left the browser: ${r}`);

  step("logged out, the login page's passkey logs the owner in: the session says so, and Last used is filled");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  await passkeyLogin.waitFor();
  const finished = page.waitForResponse((r) => new URL(r.url()).pathname === FINISH);
  await passkeyLogin.click();
  assert.equal((await finished).status(), 200);
  await page.locator("#tabs").waitFor();
  assert.equal(await page.textContent("#who"), login);
  assert.ok(await page.locator("#login-view").isHidden());
  assert.ok(await page.locator("#notice").isHidden(), "no problem shown");
  assert.equal((await get("/me")).body.user.login, login, "the page has the owner's session");
  await page.click("button[data-tab=account]");
  // The Account tab read again (logging out emptied it).
  await page.locator("#sessions tr[data-current=true] td[data-cell=by]", { hasText: /^passkey «Laptop»$/ }).waitFor();
  await laptop.locator("td[data-cell=used]", { hasText: /\d/ }).waitFor();
  assert.notEqual((await get("/me/passkeys")).body[0].last_used_at, null);

  step("the login's answer sent again is refused: its ceremony was used");
  assert.equal(finishBodies.length, 1, "one passkey login answered");
  const sessionsBefore = (await get("/me/sessions")).body.length;
  const replayed = await page.evaluate(async ([path, body]) => {
    const r = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": sessionStorage.getItem("hearth.csrf") || "" },
      body,
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, [FINISH, finishBodies[0]]);
  assert.equal(replayed.status, 400);
  assert.equal(replayed.body.code, "passkey_expired");
  // And from elsewhere, without the page's cookies.
  const elsewhere = await fetch(new URL(FINISH, url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: finishBodies[0],
  });
  assert.equal(elsewhere.status, 400);
  assert.equal((await elsewhere.json()).code, "passkey_expired");
  assert.equal(elsewhere.headers.get("set-cookie"), null, "no session opened");
  assert.equal((await get("/me/sessions")).body.length, sessionsBefore, "no session opened");

  step("removed after a confirmation, the passkey ends the session it opened (this one, said so) and logs in no more");
  await laptop.getByRole("button", { name: "Remove" }).click();
  await page.locator("#notice", {
    hasText: "You removed the passkey «Laptop» this session was opened with, so it ended: log in again.",
  }).waitFor();
  await page.locator("#login-form").waitFor();
  assert.match(dialogs.at(-1), /Remove the passkey «Laptop»\?.*the sessions it opened end/);
  assert.equal((await get("/me")).status, 401, "the session it opened ended");
  assert.equal((await held()).length, 1, "the device still holds it");
  const refused = page.waitForResponse((r) => new URL(r.url()).pathname === FINISH);
  await passkeyLogin.click();
  assert.equal((await refused).status(), 401);
  await page.locator("#notice", {
    hasText: "This passkey is not (or no longer) registered with this server, or its answer did not check out",
  }).waitFor();
  assert.ok(await page.locator("#login-form").isVisible(), "still on the login form");
  assert.ok(await page.locator("#tabs").isHidden());
  assert.equal((await get("/me")).status, 401, "no session");

  step("a browser without WebAuthn is offered no passkey, and told why on the Account tab");
  const bare = await browser.newContext();
  await bare.addInitScript(() => { delete window.PublicKeyCredential; });
  const other = await bare.newPage();
  watch(other, problems, expected);
  await other.goto(url);
  await other.locator("#login-form").waitFor();
  assert.ok(await other.locator("#passkey-login-area").isHidden(), "no passkey button");
  await other.fill("#login-form input[name=login]", login);
  await other.fill("#login-form input[name=passphrase]", passphrase);
  await other.click("#login-form button[type=submit]");
  await other.locator("#tabs").waitFor();
  await other.click("button[data-tab=account]");
  await other.locator("#passkey-unavailable", { hasText: "This browser has no passkeys" }).waitFor();
  await other.locator("#passkeys-none").waitFor();
  assert.ok(await other.locator("#passkey-form").isHidden(), "nothing to add one with");
  await bare.close();

  assert.deepEqual(problems, []);
  console.log("passkeys: all steps passed");
} finally {
  await browser.close();
}
