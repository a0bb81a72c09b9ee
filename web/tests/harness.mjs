// What every browser test of the dashboard sets up the same way: the system's Chromium (CHROMIUM
// overrides /usr/bin/chromium) and a page watched so that a page error or a console error (a
// Content-Security-Policy violation is one) fails the test. Chromium logs every failed fetch as a
// console error, so each test names the HTTP statuses it provokes on purpose.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});

// Watches `page`: 30 s for each action and navigation, and every problem pushed on `problems`,
// except console errors of fetches answered with one of `expected` (e.g. [401, 409]).
export function watch(page, problems, expected = []) {
  page.setDefaultTimeout(30_000);
  page.setDefaultNavigationTimeout(30_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const answered = new RegExp(`status of (${expected.join("|") || "-"})\\b`);
  page.on("console", (m) => {
    if (m.type() === "error" && !answered.test(m.text())) problems.push(`console: ${m.text()}`);
  });
}

// The test provider (oidc-peer.mjs) answers its next login as `sub` (null: refused). The browser
// first forgets its session at the provider, as a browser that never logged in there: otherwise
// the provider would answer at once as whoever logged in last. Its cookies share the host
// 127.0.0.1 with hearthd's (cookies ignore ports), whose own are all named hearth_*, and kept.
export async function nextLogin(context, issuer, sub) {
  const r = await fetch(`${issuer}/_test/next-login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sub }),
  });
  assert.equal(r.status, 204, "the provider took the next login");
  await context.clearCookies({ name: /^(?!hearth_)/ });
}

// Chromium's virtual authenticators (the DevTools protocol's WebAuthn domain) for `page`: `add()`
// plugs in one that keeps resident credentials and verifies its user (a PIN, or the device's own
// lock with transport "internal"), answering without a prompt, and gives its id.
export async function authenticators(context, page, transport = "usb") {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const add = async () => (await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  })).authenticatorId;
  return { cdp, add };
}
