// Renders a single-file Allure report in headless Chromium (Debian's) and checks that it
// shows every item of the run (the names in the report's test-results.json) and at least
// one plot: the attachment is opened as a reader would, by clicking it. Usage:
//   node scripts/check_report.mjs REPORT_DIR PLOT_NAME [ITEM_PREFIX]
// The plot is looked for on the first item whose name starts with ITEM_PREFIX.
// Needs playwright-core (make report-tools) and /usr/bin/chromium (make deps).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.resolve(process.env.IOTEMU_TOOLS || ".tools", "package.json"));
const { chromium } = require("playwright-core");

const [reportDir, plotName, prefix = ""] = process.argv.slice(2);
if (!reportDir || !plotName) {
  console.error("usage: check_report.mjs REPORT_DIR PLOT_NAME [ITEM_PREFIX]");
  process.exit(2);
}
const index = "file://" + path.resolve(reportDir, "index.html");
const results = JSON.parse(readFileSync(path.resolve(reportDir, "test-results.json"), "utf8"));
const items = Object.values(results.byId).map((r) => r.name);
const fail = (message) => { console.error(`report check: ${message}`); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(index);
  await page.waitForSelector("[data-testid=tree-content]", { timeout: 30000 });
  if (items.length === 0) fail("the report has no items");
  // every item's own page (the tree may keep passed groups folded)
  for (const result of Object.values(results.byId)) {
    await page.goto(`${index}#${result.id}`);
    try {
      await page.getByText(result.name, { exact: true }).first().waitFor({ timeout: 15000 });
    } catch {
      fail(`item not shown: ${result.name}`);
    }
  }
  // a test result that has the plot: open it and its attachment
  const withPlot = Object.values(results.byId).find((r) => r.name.startsWith(prefix));
  if (!withPlot) fail(`no item named ${prefix}…`);
  await page.goto(`${index}#${withPlot.id}`);
  const button = page.getByRole("button", { name: plotName }).first();
  try {
    await button.waitFor({ timeout: 30000 });
  } catch {
    fail(`no attachment "${plotName}" on ${withPlot.name}`);
  }
  await button.click();
  const picture = page.locator("img[src^='data:image/svg'], img[src^='blob:'], " +
                               "img[src*='.svg'], object[type='image/svg+xml']").first();
  await picture.waitFor({ timeout: 30000 });
  const box = await picture.boundingBox();
  if (!box || box.width < 100 || box.height < 50) fail(`the plot ${plotName} is not drawn`);
  await page.screenshot({ path: path.resolve(reportDir, "check.png"), fullPage: false });
  console.log(`report check: ${items.length} items shown; plot "${plotName}" drawn ` +
              `${Math.round(box.width)}x${Math.round(box.height)} px (${reportDir}/check.png)`);
} finally {
  await browser.close();
}
