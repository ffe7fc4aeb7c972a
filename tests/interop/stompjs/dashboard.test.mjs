// The dashboard in a real headless browser (Debian's chromium, driven by playwright-core), as a
// person uses it: log in, reconcile two uploaded files and read the counts, download a result
// file, pause and resume a job, lose the WebSocket and see the page catch up without losing an
// event. Screenshots (desktop and phone) go to target/dashboard/.
//
// chromium is installed by scripts/test.sh; without it this test fails, it never skips.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { brokerTest, chromiumPath } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = path.resolve(HERE, '..', 'node_modules');
const SHOTS = path.resolve(HERE, '..', '..', '..', 'target', 'dashboard');
const WAIT = 20_000;

let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });
  await mkdir(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

/** A page on `server`'s dashboard; page errors are collected for the final check. */
async function open(server, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', error => problems.push(error.message));
  await page.goto(`http://${server.httpAddr}/`);
  return { page, problems, context };
}

async function logIn(page, user, password) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });
}

function row(page, id) {
  return page.locator(`tr[data-job-id="${id}"]`);
}

async function progressOf(page, id) {
  return Number(await row(page, id).getByRole('progressbar').getAttribute('aria-valuenow'));
}

/** The id of the newest job row. */
async function newestJob(page) {
  const first = page.locator('tr[data-job-id]').first();
  await first.waitFor({ timeout: WAIT });
  return first.getAttribute('data-job-id');
}

brokerTest('a user logs in, reconciles two uploaded files, reads the counts and downloads a result', async ctx => {
  const server = await ctx.server({ users: ['ann:pw', 'bob:pw'] });
  const work = await mkdtemp(path.join(tmpdir(), 'stompede-dashboard-'));
  const bo = path.join(work, 'bo.csv');
  const partner = path.join(work, 'partner.csv');
  await writeFile(bo, 'id;amount\n1;10.00\n2;20.00\n3;30.00\n');
  await writeFile(partner, 'ref;amount\n1;10.00\n2;25.00\n4;40.00\n');

  const { page, problems } = await open(server);
  // No session yet: the login form, with a password field.
  assert.equal(await page.getByLabel('Password').getAttribute('type'), 'password');
  await logIn(page, 'ann', 'pw');

  await page.getByLabel('Back-office file').setInputFiles(bo);
  await page.getByLabel('Partner file').setInputFiles(partner);
  // The keys are chosen from the files' own headers.
  await page.waitForFunction(() => document.querySelectorAll('#bo-key option').length === 2);
  await page.getByLabel('Back-office key').selectOption('id');
  await page.waitForFunction(() => document.querySelectorAll('#partner-key option').length === 2);
  await page.getByLabel('Partner key').selectOption('ref');
  await page.getByRole('button', { name: 'Start reconciliation' }).click();

  const id = await newestJob(page);
  await page.waitForFunction(
    id => document.querySelector(`tr[data-job-id="${id}"] [role=progressbar]`)?.getAttribute('aria-valuenow') === '100',
    id,
    { timeout: WAIT },
  );
  // The bar fills with the last chunk; the job completes once its merge is done.
  await page.waitForFunction(
    id => document.querySelector(`tr[data-job-id="${id}"] .status`)?.textContent === 'completed',
    id,
    { timeout: WAIT },
  );
  // The job's page: the counts, and the result files.
  await page.waitForSelector('dl.counts dt', { timeout: WAIT });
  // The job's page lists its events from the first.
  await page.waitForFunction(() => document.querySelector('#timeline li')?.dataset.seq === '1', null, { timeout: WAIT });
  const counts = await page.locator('dl.counts').innerText();
  assert.match(counts, /totalMismatches\s+1/);
  assert.match(counts, /totalMatches\s+1/);
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: WAIT }),
    page.getByRole('button', { name: 'Download mismatches.csv' }).click(),
  ]);
  const saved = path.join(work, 'mismatches.csv');
  await download.saveAs(saved);
  assert.match(await readFile(saved, 'utf8'), /25\.00/);
  await page.screenshot({ path: path.join(SHOTS, 'desktop.png'), fullPage: true });

  // Another user sees none of ann's jobs.
  const other = await open(server);
  await logIn(other.page, 'bob', 'pw');
  await other.page.waitForSelector('#jobs-empty:not([hidden])', { timeout: WAIT });
  assert.equal(await other.page.locator('tr[data-job-id]').count(), 0);
  assert.deepEqual(problems, []);
});

brokerTest('pause and resume a demo job; a lost WebSocket costs no event and no step back', async ctx => {
  const server = await ctx.server();
  const { page, problems } = await open(server);
  // Open mode: no login form, the page goes straight to work.
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });
  await page.getByLabel('Chunks').fill('30');
  await page.getByLabel('Delay per chunk (ms)').fill('150');
  await page.getByRole('button', { name: 'Start demo job' }).click();
  const id = await newestJob(page);
  const jobRow = row(page, id);

  await jobRow.getByRole('button', { name: 'Pause' }).click();
  await page
    .waitForFunction(id => document.querySelector(`tr[data-job-id="${id}"] .status`)?.textContent === 'paused', id, {
      timeout: WAIT,
    })
    .catch(async error => {
      // Once seen in CI and not since: say what the page showed, so that the next one is
      // understood.
      const notice = await page.locator('#notice').textContent();
      const shown = await jobRow.innerText();
      const api = await page.evaluate(async id => (await fetch(`/api/jobs/${id}`)).text(), id);
      throw new Error(`${error.message}\nnotice: ${notice}\nrow: ${shown}\nGET /api/jobs/${id}: ${api}`);
    });
  const paused = await progressOf(page, id);
  await page.waitForTimeout(600);
  assert.equal(await progressOf(page, id), paused, 'a paused job does not move');
  await jobRow.getByRole('button', { name: 'Resume' }).click();
  await page.waitForFunction(
    ([id, before]) => Number(document.querySelector(`tr[data-job-id="${id}"] [role=progressbar]`)?.getAttribute('aria-valuenow')) > before,
    [id, paused],
    { timeout: WAIT },
  );

  // The network drops the WebSocket; the page reconnects and resumes from the last event.
  const seen = [];
  await page.exposeFunction('recordProgress', value => seen.push(value));
  await page.evaluate(id => {
    const bar = document.querySelector(`tr[data-job-id="${id}"] [role=progressbar]`);
    new MutationObserver(() => window.recordProgress(Number(bar.getAttribute('aria-valuenow')))).observe(bar, {
      attributes: true,
    });
    window.stompede.stomp.drop();
  }, id);
  await page.waitForSelector('#link[data-up="false"]', { timeout: WAIT });
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });
  await page.waitForFunction(id => document.querySelector(`tr[data-job-id="${id}"] .status`)?.textContent === 'completed', id, {
    timeout: 30_000,
  });
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `the bar went back: ${seen}`);

  // The job's page lists every event once, in order, across the reconnection.
  const seqs = await page.locator('#timeline li').evaluateAll(items => items.map(li => Number(li.dataset.seq)));
  assert.ok(seqs.length > 30, `${seqs.length} events`);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1));

  // A phone-sized window.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SHOTS, 'phone.png'), fullPage: true });
  assert.deepEqual(problems, []);
}, { timeout: 90_000 });

brokerTest('the example page follows a job with @stomp/stompjs', async ctx => {
  const server = await ctx.server();
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', error => problems.push(error.message));
  // The page loads stompjs from a CDN; here it comes from node_modules, with no network.
  const bundle = path.join(NODE_MODULES, '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js');
  await page.route('https://cdn.jsdelivr.net/**', route =>
    route.fulfill({ path: bundle, contentType: 'text/javascript' }),
  );
  // Served from another origin on loopback, as `python3 -m http.server` would serve it (a page
  // opened from a file has the origin "null", which the broker refuses).
  const example = path.resolve(NODE_MODULES, '..', '..', '..', 'examples', 'web', 'follow-job.html');
  const site = createServer(async (request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(await readFile(example));
  });
  await new Promise(resolve => site.listen(0, '127.0.0.1', resolve));
  ctx.t.after(() => new Promise(resolve => site.close(resolve)));
  await page.goto(`http://127.0.0.1:${site.address().port}/follow-job.html?ws=${encodeURIComponent(server.wsUrl)}`);
  await page.getByRole('button', { name: 'Start a demo job' }).click();
  await page.waitForFunction(() => document.getElementById('status').textContent === 'completed', null, {
    timeout: WAIT,
  });
  assert.equal(await page.locator('#bar').evaluate(bar => bar.value), 100);
  const log = await page.locator('#log').innerText();
  const seqs = [...log.matchAll(/^#(\d+) /gm)].map(m => Number(m[1]));
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), log);
  assert.match(log, /JOB_COMPLETED/);
  assert.deepEqual(problems, []);
});

/** A one-page PDF with `text` in its text layer, written by hand (no PDF library needed). */
function textPdf(text) {
  const stream = `BT /F1 24 Tf 72 700 Td (${text}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
  ];
  let pdf = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) pdf += `${String(offset).padStart(10, '0')} 00000 n \n`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return pdf;
}

brokerTest('an OCR job shows each page beside its text', async ctx => {
  const server = await ctx.server();
  const work = await mkdtemp(path.join(tmpdir(), 'stompede-dashboard-ocr-'));
  const file = path.join(work, 'letter.pdf');
  await writeFile(file, textPdf('Bonjour le monde'));
  const { page, problems } = await open(server);
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });
  await page.getByLabel('PDF or image').setInputFiles(file);
  await page.getByRole('button', { name: 'Start OCR' }).click();
  await page.waitForSelector('figure.page img[src^="blob:"]', { timeout: WAIT });
  const figure = page.locator('figure.page[data-page="1"]');
  await page.waitForFunction(() => document.querySelector('figure.page .page-text')?.textContent.includes('Bonjour'), null, {
    timeout: WAIT,
  });
  const size = await figure.locator('img').evaluate(img => img.naturalWidth);
  assert.ok(size > 100, `the page's picture is drawn (${size} px wide)`);
  assert.deepEqual(problems, []);
});
