// Drive the demo page in Debian's headless Chromium (playwright-core, no bundled browser) for the tests.
//   node run_page.mjs golden URL OUT.json          -> waits for the golden run, writes window.goldenResults
//   node run_page.mjs photo URL PHOTO OUT.png      -> loads the page once online (the service worker caches
//                                                     it), reloads it offline, picks PHOTO in the file
//                                                     input and screenshots the result
// Chromium runs with the network-quiet flags this machine needs; playwright gives it a fresh profile.
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [mode, url, ...rest] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({ viewport: { width: 520, height: 640 } });
const problems = [];
page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
try {
  await page.goto(url);
  if (mode === 'golden') {
    await page.waitForSelector('#status[data-done], #status[data-error]', { timeout: 150000 });
    const results = await page.evaluate(() => window.goldenResults || null);
    writeFileSync(rest[0], JSON.stringify({ results, problems, status: await page.textContent('#status') }));
  } else if (mode === 'photo') {
    await page.waitForSelector('#photo:not([disabled])', { timeout: 60000 });
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload(); // now through the service worker, which caches what the page fetches
    await page.waitForSelector('#photo:not([disabled])', { timeout: 60000 });
    await page.context().setOffline(true);
    await page.reload();
    await page.waitForSelector('#photo:not([disabled])', { timeout: 60000 });
    await page.setInputFiles('#photo', rest[0]);
    await page.waitForSelector('#stats[data-done]', { timeout: 60000 });
    await page.screenshot({ path: rest[1], fullPage: true });
    console.log(JSON.stringify({ stats: await page.textContent('#stats'), offline: true, problems }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await browser.close();
}
