// A passkey as Hearth's second factor after a single sign-on provider vouched for the member, in a
// real Chromium whose virtual authenticator stands for a security key. The owner has an
// authenticator app: through the provider, the second-factor form offers "Use a passkey", which
// says so while the account has none; a recovery code logs in and a passkey is added on the
// Account tab; from then on "Use a passkey" finishes the provider's login instead of the app's
// code (the session says "corp SSO and passkey «Key»"). Run by crates/hearth-server/tests/it/sso.rs
// (`a_passkey_answers_hearths_second_factor_after_the_provider_in_a_real_browser`), which starts
// the test provider (oidc-peer.mjs) and a hearthd at http://localhost:PORT with it as `corp`:
//   HEARTH_URL=http://localhost:PORT OIDC_ISSUER=http://127.0.0.1:PORT HEARTH_RECOVERY_CODE=... \
//     node sso-passkey.test.mjs
// The provider's u-1 is Hearth's `owner`. Exits non-zero with the failed step on stderr.
// CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { authenticators, launch, nextLogin, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const issuer = process.env.OIDC_ISSUER;
const recoveryCode = process.env.HEARTH_RECOVERY_CODE;
assert.ok(url && issuer && recoveryCode, "HEARTH_URL, OIDC_ISSUER and HEARTH_RECOVERY_CODE are required");
const FINISH = "/api/v1/auth/sso/finish";

const browser = await launch();
const problems = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The second factor asked for (401) and a passkey asked of an account without one (409) are
  // answered on purpose.
  watch(page, problems, [401, 409]);
  page.on("dialog", (d) => d.accept());
  await (await authenticators(context, page)).add();

  const step = (name) => console.log(`- ${name}`);
  const throughProvider = async () => {
    await nextLogin(context, issuer, "u-1");
    await page.getByRole("button", { name: "Log in with corp SSO" }).click();
    await page.locator("#sso-code-form").waitFor();
    await page.locator("#notice", { hasText: "or use one of your passkeys" }).waitFor();
  };
  const codeForm = page.locator("#sso-code-form");
  const usePasskey = codeForm.getByRole("button", { name: "Use a passkey" });
  const currentBy = "#sessions tr[data-current=true] td[data-cell=by]";

  step("through the provider, the second factor offers a passkey, and says when the account has none");
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  await throughProvider();
  assert.ok(await usePasskey.isVisible());
  await usePasskey.click();
  await page.locator("#notice", { hasText: "This account has no passkey yet" }).waitFor();
  assert.ok(await codeForm.isVisible(), "the code can still be typed");
  assert.ok(await page.locator("#tabs").isHidden(), "not logged in");

  step("a recovery code logs in; a passkey named Key is added on the Account tab");
  await codeForm.locator("input[name=code]").fill(recoveryCode);
  await codeForm.locator("button[type=submit]").click();
  await page.locator("#tabs").waitFor();
  await page.click("button[data-tab=account]");
  await page.locator(currentBy, { hasText: "corp SSO and a recovery code" }).waitFor();
  await page.fill("#passkey-form input[name=pkname]", "Key");
  await page.click("#passkey-add");
  await page.locator('#passkeys tr[data-name="Key"]').waitFor();

  step("logged out, the provider then the passkey log in, no code typed; the session says both");
  await page.click("#logout");
  await page.locator("#login-form").waitFor();
  await throughProvider();
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === FINISH &&
    (r.request().postData() || "").includes('"passkey"'));
  await usePasskey.click();
  assert.equal((await answered).status(), 200);
  await page.locator("#tabs").waitFor();
  assert.equal(await page.textContent("#who"), "owner");
  assert.ok(await page.locator("#notice").isHidden(), "no problem shown");
  assert.ok(await codeForm.isHidden());
  await page.click("button[data-tab=account]");
  await page.locator(currentBy, { hasText: "corp SSO and passkey «Key»" }).waitFor();
  const current = await page.evaluate(async () =>
    (await (await fetch("/api/v1/me/sessions")).json()).find((s) => s.current));
  assert.equal(current.sso, "corp");
  assert.equal(current.second_factor, "passkey");
  assert.equal(current.passkey, "Key");

  assert.deepEqual(problems, []);
  console.log("sso passkey second factor: all steps passed");
} finally {
  await browser.close();
}
