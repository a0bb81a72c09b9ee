// The Audit log tab tells an instance admin that sending the audit log to the syslog collector
// fails, since when and why, and how many entries wait. Run by crates/hearth-server/tests/it/syslog.rs
// (`the_dashboard_tells_an_instance_admin_that_forwarding_fails`), whose hearthd forwards to a
// port nothing listens on:
//   HEARTH_URL=http://127.0.0.1:PORT HEARTH_LOGIN=owner HEARTH_PASSPHRASE=... HEARTH_SYSLOG=tcp://... \
//     node audit-forwarding.test.mjs
// Exits non-zero with the failed step on stderr. CHROMIUM overrides /usr/bin/chromium.
import assert from "node:assert/strict";
import { launch, watch } from "./harness.mjs";

const url = process.env.HEARTH_URL;
const login = process.env.HEARTH_LOGIN;
const passphrase = process.env.HEARTH_PASSPHRASE;
const syslog = process.env.HEARTH_SYSLOG;
assert.ok(url && login && passphrase && syslog,
  "HEARTH_URL, HEARTH_LOGIN, HEARTH_PASSPHRASE and HEARTH_SYSLOG are required");

const browser = await launch();
const problems = [];
try {
  const page = await browser.newPage();
  // Not logged in yet (401) is answered on purpose.
  watch(page, problems, [401]);
  const step = (name) => console.log(`- ${name}`);

  step("the instance admin logs in and opens the Audit log tab");
  await page.goto(url);
  await page.fill("#login-form input[name=login]", login);
  await page.fill("#login-form input[name=passphrase]", passphrase);
  await page.click("#login-form button[type=submit]");
  await page.locator("#tabs").waitFor();
  await page.click("button[data-tab=audit]");

  step("it says that sending to the collector fails, why, and that entries wait");
  const line = page.locator("#audit-forwarding");
  await line.waitFor();
  const text = await line.textContent();
  assert.match(text, new RegExp(`^Sending the audit log to the syslog collector ${syslog} fails since `));
  assert.match(text, /cannot connect to 127\.0\.0\.1:\d+/);
  assert.match(text, /\d+ entries wait; they go as soon as it takes them\.$/);
  assert.equal(await line.getAttribute("class"), "bad");

  assert.deepEqual(problems, []);
  console.log("audit forwarding: all steps passed");
} finally {
  await browser.close();
}
