// Opens an ituna-report HTML page in Debian's Chromium (headless, through playwright-core,
// which downloads no browser) and checks what a reader relies on: no console error, no
// network request but the file itself, the expected bottleneck first in the ranking, the
// search box opening an order's waterfall, a send span's attributes (order.id) on click.
// Saves a screenshot.
//
// node check_report.js --html PAGE --expect-first STAGE --order ORDER_ID --screenshot PNG
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');

function args() {
  const out = {};
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith('--') || a[i + 1] === undefined) throw new Error('bad argument ' + a[i]);
    out[a[i].slice(2)] = a[i + 1];
  }
  for (const k of ['html', 'expect-first', 'order', 'screenshot']) {
    if (!out[k]) throw new Error('missing --' + k);
  }
  return out;
}

async function main() {
  const opt = args();
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    throw new Error('playwright-core is not installed: run `npm ci` in tests/browser (' + e.message + ')');
  }
  const exe = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(exe)) throw new Error('Chromium not found at ' + exe + ' (apt-get install chromium)');
  const pageUrl = pathToFileURL(path.resolve(opt.html)).href;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ituna-chromium-'));
  const failures = [];
  const requests = [];
  const consoleErrors = [];
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: exe,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-quic', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  try {
    ctx.on('request', (r) => requests.push(r.url()));
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
    await page.goto(pageUrl, { waitUntil: 'load' });
    await page.waitForSelector('#ranking tr.rank-row', { timeout: 10000 });

    const first = await page.getAttribute('#ranking tr.rank-row', 'data-stage');
    if (first !== opt['expect-first']) failures.push('first in ranking is "' + first + '", expected "' + opt['expect-first'] + '"');

    await page.fill('#search', opt.order);
    await page.click('#search-btn');
    const head = await page.textContent('#waterfall .wf-head');
    if (!head || head.indexOf(opt.order) < 0) failures.push('searching ' + opt.order + ' did not open its waterfall (head: ' + head + ')');
    const rows = await page.$$('#waterfall .wf-row');
    if (rows.length < 2) failures.push('waterfall has ' + rows.length + ' rows');
    // A PRODUCER "send <topic>" row: the services put order.id on every span, send spans
    // included (issue 7), so the order can be found from any span.
    let sendRow = null;
    for (const r of rows) {
      const label = await r.$eval('.wf-label', (e) => e.textContent);
      if (/^(\u26a0 )?send /.test(label)) { sendRow = r; break; }
    }
    if (!sendRow) {
      failures.push('the waterfall has no send span row');
    } else {
      await sendRow.click();
      const attrs = await page.$$eval('#details #attrs tr', (trs) =>
        Object.fromEntries(trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
      if (attrs['order.id'] !== JSON.stringify(opt.order) || !attrs['order.source']) {
        failures.push('clicking a send span did not show its order.id/order.source (order.id: ' +
                      attrs['order.id'] + ', order.source: ' + attrs['order.source'] + ')');
      }
    }
    await page.screenshot({ path: opt.screenshot, fullPage: true });

    await page.fill('#search', 'no-such-order-zzz');
    await page.click('#search-btn');
    const msg = await page.textContent('#search-msg');
    if (!msg || msg.indexOf('no-such-order-zzz') < 0) failures.push('an unknown id gave no message');

    const foreign = requests.filter((u) => u !== pageUrl);
    if (foreign.length) failures.push('network requests besides the page: ' + foreign.join(', '));
    if (consoleErrors.length) failures.push('console errors: ' + consoleErrors.join(' | '));
    console.log(JSON.stringify({ page: pageUrl, first, rows: rows.length, requests, consoleErrors,
                                 screenshot: opt.screenshot, failures }));
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (failures.length) {
    console.error('FAIL: ' + failures.join('\n      '));
    process.exit(1);
  }
}

main().catch((e) => { console.error('ERROR: ' + (e && e.stack || e)); process.exit(2); });
