// The dashboard's single sign-on in a real Chromium: the login page's provider button, a refusal
// shown from the provider's round trip, Hearth's own second factor after the provider, and the
// Account tab's identities (unlinked, then linked again through the provider). Run by
// crates/hearth-server/tests/it/sso.rs (`the_dashboard_logs_in_and_links_through_the_provider_in_a_real_browser`),
// which starts the test provider (oidc-peer.mjs) and a hearthd with it configured as `corp`:
//   HEARTH_URL=http://127.0.0.1:PORT OIDC_ISSUER=http://127.0.0.1:PORT HEARTH_RECOVERY_CODE=... node sso.test.mjs
// The provider knows u-1 (Hearth's `owner`, whose account has a second factor on) and u-2
// (`mallory`, who has no Hearth account). Exits non-zero with the failed step on stderr.
// CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { launch, nextLogin as providerNext, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const issuer = process.env.OIDC_ISSUER;
const recoveryCode = process.env.HEARTH_RECOVERY_CODE;
assert.ok(url && issuer && recoveryCode, "HEARTH_URL, OIDC_ISSUER and HEARTH_RECOVERY_CODE are required");
const home = `${new URL(url).origin}/`;

const browser = await launch();
const problems = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Not logged in yet (401), a second factor asked for or refused (401) and a refused unlink
  // (409) are answered on purpose.
  watch(page, problems, [401, 409]);
  // Confirmations are accepted.
  page.on("dialog", (d) => d.accept());

  const step = (name) => console.log(`- ${name}`);

  const nextLogin = (sub) => providerNext(context, issuer, sub);
  const noFragment = () => {
    assert.equal(page.url(), home, "the address bar keeps no fragment");
  };
  const ssoButton = page.getByRole("button", { name: "Log in with corp SSO" });

  step("the login page offers the provider; someone without a Hearth account is refused, and told why");
  await nextLogin("u-2");
  await page.goto(url);
  await page.locator("#login-form").waitFor();
  await ssoButton.waitFor();
  assert.equal(await page.locator("#sso-buttons button").count(), 1);
  await ssoButton.click();
  await page.locator("#notice", { hasText: 'there is no Hearth account "mallory": ask an administrator to create it' })
    .waitFor();
  await page.waitForURL(home);
  noFragment();
  assert.ok(await page.locator("#login-form").isVisible(), "back on the login form");
  assert.ok(await ssoButton.isVisible(), "the provider's button is there to try again");

  step("the provider refusing the login says so");
  await nextLogin(null);
  await ssoButton.click();
  await page.locator("#notice", { hasText: "corp SSO refused the login (access_denied)" }).waitFor();
  noFragment();

  step("the owner through the provider: Hearth's second factor is asked, a wrong code refused, a recovery code taken");
  await nextLogin("u-1");
  await ssoButton.click();
  const codeForm = page.locator("#sso-code-form");
  await codeForm.waitFor();
  await page.locator("#notice", { hasText: "asks for a second factor" }).waitFor();
  noFragment();
  assert.ok(await page.locator("#login-form").isHidden(), "no passphrase is asked");
  assert.match(await page.textContent("#sso-code-intro"), /^corp SSO vouched for you/);
  await codeForm.locator("input[name=code]").fill("000000");
  await codeForm.locator("button[type=submit]").click();
  await page.locator("#notice", { hasText: "That code was not accepted" }).waitFor();
  assert.ok(await codeForm.isVisible(), "the code can be typed again");
  await codeForm.locator("input[name=code]").fill(recoveryCode);
  await codeForm.locator("button[type=submit]").click();
  await page.locator("#tabs").waitFor();
  await page.locator("#who", { hasText: /^owner$/ }).waitFor();
  await page.locator("#printers-view").waitFor();
  await page.locator("#fleet-summary", { hasText: /\S/ }).waitFor();
  assert.ok(await page.locator("#login-view").isHidden());
  assert.ok(await page.locator("#notice").isHidden(), "no problem left shown");
  const session = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
  assert.equal(session, 200, "the page has its session");
  await page.click("button[data-tab=account]");
  await page.locator("tr[data-current=true] td[data-cell=by]", { hasText: "corp SSO" }).waitFor();
  await page.click("button[data-tab=printers]");

  step("Account lists the provider's account, unlinks it after a confirmation, and offers to link it");
  await page.click("button[data-tab=account]");
  const corp = page.locator("#sso-identities tr[data-provider=corp]");
  await corp.waitFor();
  assert.equal(await corp.locator("td").first().textContent(), "corp SSO");
  assert.equal(await corp.locator("td[data-cell=claimed]").textContent(), "owner");
  assert.ok(await page.locator("#sso-card p.muted", { hasText: "passphrase" }).first().isVisible());
  assert.equal(await page.getByRole("button", { name: "Link corp SSO" }).count(), 0, "linked already");
  await corp.getByRole("button", { name: "Unlink" }).click();
  await corp.waitFor({ state: "detached" });
  const link = page.getByRole("button", { name: "Link corp SSO" });
  await link.waitFor();
  await page.locator("#sso-none").waitFor();

  step("linked again through the provider, back on the Account tab");
  await nextLogin("u-1");
  await link.click();
  await page.locator("#notice", { hasText: "Linked to corp SSO: you can log in through it now" }).waitFor();
  noFragment();
  await page.locator("#account-view").waitFor();
  await corp.waitFor();
  assert.equal(await corp.locator("td[data-cell=claimed]").textContent(), "owner");
  assert.equal(await link.count(), 0);
  assert.equal(await page.textContent("#who"), "owner");

  step("the owner, logged in through the provider, requires single sign-on of the organisation and lifts it");
  const orgOf = () => page.evaluate(async () => {
    const me = await (await fetch("/api/v1/me")).json();
    return (await fetch(`/api/v1/orgs/${me.memberships[0].org.id}`)).json();
  });
  const requireSso = page.locator("#org-require-sso");
  await requireSso.waitFor();
  await requireSso.check();
  await page.waitForFunction(async () => {
    const me = await (await fetch("/api/v1/me")).json();
    return (await (await fetch(`/api/v1/orgs/${me.memberships[0].org.id}`)).json()).require_sso;
  });
  assert.equal((await orgOf()).require_sso, true);
  await requireSso.uncheck();
  await page.waitForFunction(async () => {
    const me = await (await fetch("/api/v1/me")).json();
    return !(await (await fetch(`/api/v1/orgs/${me.memberships[0].org.id}`)).json()).require_sso;
  });
  assert.ok(await page.locator("#notice").isHidden(), "no problem shown");

  step("logging out of the dashboard logs out at the provider too, and comes back to the login page");
  await page.click("#logout");
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/session/end`));
  await page.getByRole("button", { name: "Yes, sign me out" }).click();
  await page.waitForURL(home);
  await ssoButton.waitFor();

  assert.deepEqual(problems, []);
  console.log("sso: all steps passed");
} finally {
  await browser.close();
}
