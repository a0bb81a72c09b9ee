// What every browser test of the dashboard sets up the same way: the system's Chromium (CHROMIUM
// overrides /usr/bin/chromium) and a page watched so that a page error or a console error (a
// Content-Security-Policy violation is one) fails the test. Chromium logs every failed fetch as a
// console error, so each test names the HTTP statuses it provokes on purpose.
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
