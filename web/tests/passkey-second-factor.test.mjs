// A passkey as the second factor of a passphrase login, in a real Chromium whose virtual
// authenticator (the DevTools protocol's WebAuthn domain) stands for a security key. The account
// has an authenticator app: the passphrase alone is answered "second factor", a recovery code logs
// in, a passkey is added on the Account tab, and from then on the login form's "Use a passkey"
// answers the second factor instead of the app's code (the session says "passphrase and passkey
// «Key»"); the answer sent again is refused, a passkey the account does not hold is refused, and
// the same passkey still logs in alone. Run by crates/hearth-server/tests/it/passkeys.rs
// (`a_passkey_answers_…`), which starts a hearthd at HEARTH_URL whose owner has an authenticator
// app and gives one of its recovery codes:
//   HEARTH_URL=http://localhost:PORT HEARTH_LOGIN=owner HEARTH_PASSPHRASE=... \
//     HEARTH_RECOVERY_CODE=... node passkey-second-factor.test.mjs
// Exits non-zero with the failed step on stderr. CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { authenticators, launch, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const login = process.env.HEARTH_LOGIN;
const passphrase = process.env.HEARTH_PASSPHRASE;
const recoveryCode = process.env.HEARTH_RECOVERY_CODE;
assert.ok(url && login && passphrase && recoveryCode,
  "HEARTH_URL, HEARTH_LOGIN, HEARTH_PASSPHRASE and HEARTH_RECOVERY_CODE are required");
const LOGIN = "/api/v1/auth/login";

const browser = await launch();
const problems = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // A login asking for its second factor (401), a ceremony sent again (400) and a passkey
  // refused (401) are answered on purpose.
  watch(page, problems, [400, 401]);
  page.on("dialog", (d) => d.accept());
  // Every request the page sent, and the bodies of the logins that carried a passkey's answer.
  const sent = [];
  const passkeyLogins = [];
  page.on("request", (r) => {
    sent.push(`${r.method()} ${r.url()} ${r.postData() || ""}`);
    if (r.method() === "POST" && new URL(r.url()).pathname === LOGIN && /"passkey"/.test(r.postData() || "")) {
      passkeyLogins.push(r.postData());
    }
  });

  // A security key: it keeps resident credentials and verifies its user (a PIN).
  const { cdp, add: addAuthenticator } = await authenticators(context, page);
  let authenticatorId = await addAuthenticator();

  const step = (name) => console.log(`- ${name}`);
  const get = (path) => page.evaluate(async (p) => {
    const r = await fetch(`/api/v1${p}`);
    return { status: r.status, body: r.ok ? await r.json() : null };
  }, path);
  const usePasskey = page.getByRole("button", { name: "Use a passkey" });
  const submit = () => page.click("#login-form button[type=submit]");
  const passphraseLogin = async () => {
    await page.fill("#login-form input[name=login]", login);
    await page.fill("#login-form input[name=passphrase]", passphrase);
    await submit();
    await page.locator("#code-field").waitFor();
  };
  const currentBy = "#sessions tr[data-current=true] td[data-cell=by]";

  step("the passphrase alone is answered with the second factor; a recovery code logs in");
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  await passphraseLogin();
  await page.locator("#notice", { hasText: "This account asks for a second factor" }).waitFor();
  assert.ok(await usePasskey.isVisible(), "a passkey is offered in place of the code");
  assert.ok(await page.locator("#tabs").isHidden(), "not logged in yet");
  await page.fill("#login-form input[name=code]", recoveryCode);
  await submit();
  await page.locator("#tabs").waitFor();
  await page.click("button[data-tab=account]");
  await page.locator(currentBy, { hasText: "passphrase and a recovery code" }).waitFor();

  step("a passkey named Key is added from the Account tab (a fresh session needs no passphrase)");
  await page.fill("#passkey-form input[name=pkname]", "Key");
  await page.click("#passkey-add");
  await page.locator('#passkeys tr[data-name="Key"]').waitFor();

  step("logged out, the passphrase then the passkey log in: no code typed, and the session says both");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  assert.ok(await page.locator("#code-field").isHidden(), "the code is asked only after the passphrase");
  assert.ok(await usePasskey.isHidden());
  await passphraseLogin();
  await page.locator("#notice", { hasText: "or use one of your passkeys" }).waitFor();
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === LOGIN && r.request().postData().includes('"passkey"'));
  await usePasskey.click();
  assert.equal((await answered).status(), 200);
  await page.locator("#tabs").waitFor();
  assert.equal(await page.textContent("#who"), login);
  assert.ok(await page.locator("#notice").isHidden(), "no problem shown");
  assert.equal(await page.inputValue("#login-form input[name=code]"), "", "no code was typed");
  await page.click("button[data-tab=account]");
  await page.locator(currentBy, { hasText: "passphrase and passkey «Key»" }).waitFor();
  const current = (await get("/me/sessions")).body.find((s) => s.current);
  assert.equal(current.second_factor, "passkey");
  assert.equal(current.passkey, "Key");
  await page.locator('#passkeys tr[data-name="Key"] td[data-cell=used]', { hasText: /\d/ }).waitFor();
  for (const r of sent) assert.ok(!r.includes(passphrase), `the passphrase left the browser: ${r}`);

  step("the same answer sent again is refused: its challenge was used");
  assert.equal(passkeyLogins.length, 1);
  const sessionsBefore = (await get("/me/sessions")).body.length;
  const replay = await fetch(new URL(LOGIN, url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: passkeyLogins[0],
  });
  assert.equal(replay.status, 400);
  assert.equal((await replay.json()).code, "passkey_expired");
  assert.equal(replay.headers.get("set-cookie"), null, "no session opened");
  assert.equal((await get("/me/sessions")).body.length, sessionsBefore);

  step("another security key, which holds no passkey of this account, answers nothing: the code is still asked");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  assert.equal(await page.locator("#sessions tbody tr").count(), 0, "the last login's sessions are left in the page");
  // The Key's credential is kept (the virtual authenticator exports its private key) to be put
  // back on a key later.
  const [keyCredential] = (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
  const stranger = await addAuthenticator();
  await passphraseLogin();
  // The browser finds none of the credentials the server allowed on this key: WebAuthn answers
  // NotAllowedError, as when the member cancels its dialog.
  await usePasskey.click();
  await page.locator("#login-status", { hasText: "Cancelled." }).waitFor();
  assert.ok(await page.locator("#tabs").isHidden(), "not logged in");
  assert.ok(await page.locator("#code-field").isVisible(), "the code is still asked");

  step("the Key, back, still logs in alone as a passkey login (two factors in one)");
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: stranger });
  authenticatorId = await addAuthenticator();
  await cdp.send("WebAuthn.addCredential", { authenticatorId, credential: keyCredential });
  await page.getByRole("button", { name: "Log in with a passkey" }).click();
  await page.locator("#tabs").waitFor();
  await page.click("button[data-tab=account]");
  await page.locator(currentBy, { hasText: /^passkey «Key»$/ }).waitFor();
  assert.equal((await get("/me/sessions")).body.find((s) => s.current).second_factor, null);

  assert.deepEqual(problems, []);
  console.log("passkey second factor: all steps passed");
} finally {
  await browser.close();
}
