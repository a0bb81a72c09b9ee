// An organisation that requires single sign-on, in a real Chromium: members who log in to the
// dashboard with a passphrase are refused in it (403 `sso_required_by_org`) and told, on the
// Account tab, to log out and log in with the provider's button, without the page erroring, going
// blank, asking again and again or replacing that notice (an admin's Account tab reads the
// members too, refused the same way); logged out and back in through the provider's button, the
// organisation's data loads. Run by crates/hearth-server/tests/it/sso.rs
// (`the_dashboard_tells_a_passphrase_session_to_log_in_through_the_provider_an_org_requires`),
// which starts the test provider (oidc-peer.mjs) and a hearthd with it configured as `corp`, makes
// the members HEARTH_LOGINS (an operator, then an admin) with login secrets derived from
// HEARTH_PASSPHRASE as this page derives them, adds a spool of "Policy PLA" to the organisation
// and requires single sign-on of it (from the owner's login through the provider):
//   HEARTH_URL=http://127.0.0.1:PORT OIDC_ISSUER=http://127.0.0.1:PORT HEARTH_LOGINS=olga,mia \
//     HEARTH_PASSPHRASE=... node sso-policy.test.mjs
// The provider knows the last of them as u-LOGIN, who logs in through it at the end. Exits
// non-zero with the failed step on stderr. CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { launch, nextLogin, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const issuer = process.env.OIDC_ISSUER;
const logins = (process.env.HEARTH_LOGINS || "").split(",").filter(Boolean);
const passphrase = process.env.HEARTH_PASSPHRASE;
assert.ok(url && issuer && logins.length && passphrase,
  "HEARTH_URL, OIDC_ISSUER, HEARTH_LOGINS and HEARTH_PASSPHRASE are required");
const home = `${new URL(url).origin}/`;
const step = (name) => console.log(`- ${name}`);

const browser = await launch();
const problems = [];

// A page of its own browser context (no cookie shared with another member's), watched: a page
// error or a console error (a Content-Security-Policy violation is one) fails the test, and the
// organisation's refusals are counted.
async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Not logged in yet (401) and the organisation refusing the passphrase's session (403) are
  // answered on purpose.
  watch(page, problems, [401, 403]);
  page.on("dialog", (d) => d.accept());
  const watched = { page, refusals: 0 };
  page.on("response", (r) => {
    if (r.status() === 403 && new URL(r.url()).pathname.startsWith("/api/v1/orgs/")) watched.refusals += 1;
  });
  return watched;
}

// `login` logs in with the passphrase and is refused in the organisation: told how to get in, on
// the Account tab, once. Returns the page, still logged in.
async function refusedWithPassphrase(login) {
  const watched = await openPage();
  const { page } = watched;
  const notice = page.locator("#notice");
  const accountTab = page.locator("button[data-tab=account]");

  step(`${login}: a passphrase login to the organisation that requires single sign-on`);
  await page.goto(url);
  const form = page.locator("#login-form");
  await form.waitFor();
  await page.getByRole("button", { name: "Log in with corp SSO" }).waitFor();
  await form.locator("input[name=login]").fill(login);
  await form.locator("input[name=passphrase]").fill(passphrase);
  await form.locator("button[type=submit]").click();

  step(`${login}: refused there, told to log out and log in through the provider, on the Account tab`);
  await page.locator("#who", { hasText: new RegExp(`^${login}$`) }).waitFor();
  await notice.waitFor();
  await page.locator("#account-view").waitFor();
  assert.ok(await page.locator("#tabs").isVisible(), "the tabs stay");
  assert.equal(await accountTab.getAttribute("aria-current"), "page", "the Account tab is the one shown");
  assert.ok(await page.locator("#printers-view").isHidden());
  assert.ok(await page.locator("#login-view").isHidden(), "still logged in (to see why, to link)");
  assert.ok(await page.locator("#logout").isVisible(), "Log out is there to press");
  // The Account tab's own cards load (they need no organisation): this session, by passphrase.
  await page.locator("tr[data-current=true] td[data-cell=by]", { hasText: "passphrase" }).waitFor();
  await page.getByRole("button", { name: "Link corp SSO" }).waitFor();
  const me = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
  assert.equal(me, 200, "the session stays open outside the organisation");
  // Everything the page asked has been answered by now: no retry loop, and the notice is still
  // the one that says what to do (not replaced by a refusal of the Account tab's own reads).
  const asked = watched.refusals;
  assert.ok(asked > 0, "the organisation refused");
  await page.waitForTimeout(1500);
  assert.equal(watched.refusals, asked, "the page does not ask the organisation again by itself");
  const said = await notice.textContent();
  assert.match(said, /^Organisation "[^"]+" asks its members to log in through single sign-on/, said);
  assert.match(said, /log out, then log in with "Log in with corp SSO"\.$/, said);
  assert.doesNotMatch(said, /\.\.\.|SERVER|--sso ID|\[object|undefined/, `no placeholder or raw value: ${said}`);
  assert.ok(await notice.isVisible());
  assert.equal(await accountTab.getAttribute("aria-current"), "page");
  return page;
}

try {
  let page;
  for (const login of logins) {
    if (page) await page.context().close();
    page = await refusedWithPassphrase(login);
  }
  const login = logins.at(-1);
  const notice = page.locator("#notice");

  step(`${login}: logged out, then in through the provider's button: the organisation's data loads`);
  await page.locator("#logout").click();
  await page.locator("#login-form").waitFor();
  await nextLogin(page.context(), issuer, `u-${login}`);
  await page.getByRole("button", { name: "Log in with corp SSO" }).click();
  await page.locator("#tabs").waitFor();
  await page.waitForURL(home);
  await page.locator("#who", { hasText: new RegExp(`^${login}$`) }).waitFor();
  await page.locator("#printers-view").waitFor();
  await page.locator("#fleet-summary", { hasText: /\S/ }).waitFor();
  await page.locator("#live.on").waitFor();
  assert.ok(await notice.isHidden(), `no notice left shown: ${await notice.textContent()}`);
  const members = await page.evaluate(async () => {
    const me = await (await fetch("/api/v1/me")).json();
    return (await fetch(`/api/v1/orgs/${me.memberships[0].org.id}/members`)).status;
  });
  assert.equal(members, 200, "the provider's session acts in the organisation");
  await page.click("button[data-tab=spools]");
  await page.locator("#spools tr", { hasText: "Policy PLA" }).waitFor();
  assert.ok(await notice.isHidden(), "the spools read without a notice");
  await page.click("button[data-tab=account]");
  await page.locator("tr[data-current=true] td[data-cell=by]", { hasText: "corp SSO" }).waitFor();
  await page.locator("#sso-identities tr[data-provider=corp]").waitFor();
  assert.ok(await page.locator("#org-require-sso").isChecked(), "the policy shows on");
  await page.waitForTimeout(500);
  assert.ok(await notice.isHidden(), `the Account tab reads without a notice: ${await notice.textContent()}`);

  assert.deepEqual(problems, []);
  console.log("sso-policy: all steps passed");
} finally {
  await browser.close();
}
