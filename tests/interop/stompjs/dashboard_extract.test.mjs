// The dashboard's extraction form and an `extract` job's page, in Debian's chromium (driven by
// playwright-core) against a real server: upload a small tender file with the dce profile,
// read the fields, click one and see exactly its source text marked in the page text; upload
// it again and be told it was already extracted; a scanned page waits for its OCR child job,
// whose progress the page shows. Screenshots (desktop and phone) go to target/dashboard/.
//
// chromium is installed by scripts/test.sh; without it this test fails, it never skips.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { brokerTest, chromiumPath } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
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

async function open(server, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', error => problems.push(error.message));
  await page.goto(`http://${server.httpAddr}/`);
  return { page, problems };
}

/** A two-page tender (a form feed between the pages): the buyer on page 1, the deadline on 2. */
const TENDER = `REGLEMENT DE LA CONSULTATION

Pouvoir adjudicateur : Commune de Villeneuve-sur-Lot, 2 rue Nationale
Objet de la consultation : Entretien des espaces verts communaux
Référence : MAPA-2025-017

Article 1 - Procédure
Procédure : procédure adaptée ouverte (article R. 2123-1 du code de la
commande publique).

Article 2 - Allotissement
N° lot    Désignation                      Montant estimé HT
1         Tonte et débroussaillage         48 000,00 €
2         Taille des haies                 22 500,00 €

Classification CPV : 77310000-6 (services de plantation et d'entretien)
\f
Article 4 - Critères d'attribution
Les offres sont jugées selon les critères suivants :
1. Prix des prestations : 40 %
2. Valeur technique : 60 %

Article 5 - Conditions de remise
Date limite de réception des offres : 17 mars 2025 à 12h00

Article 6 - Durée
Le marché est conclu pour une durée de 12 mois à compter de sa
notification.
`;

/** Where a field of the job's result was read, as the API gives it: its page's text, sliced. */
async function sourceText(server, jobId, field) {
  const response = await fetch(`http://${server.httpAddr}/api/jobs/${jobId}/result`, {
    headers: { authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}` },
  });
  const result = await response.json();
  const found = result.dce[field];
  const page = result.pages.find(p => p.page === found.source.page);
  return { page: found.source.page, text: Array.from(page.text).slice(found.source.start, found.source.end).join('') };
}

/** The marked text once it is `want` (a click re-draws the page text). */
async function markedText(page, want) {
  await page.waitForFunction(want => document.querySelector('#extract-text mark')?.textContent === want, want, {
    timeout: WAIT,
  });
  return page.locator('#extract-text mark').textContent();
}

brokerTest('extract a tender through the form, mark a field in the text, and reuse the earlier result', async ctx => {
  const server = await ctx.server({ users: ['ann:pw'] });
  const work = await mkdtemp(path.join(tmpdir(), 'stompede-dashboard-extract-'));
  const file = path.join(work, 'rc.txt');
  await writeFile(file, TENDER);

  const { page, problems } = await open(server);
  await page.getByLabel('User name').fill('ann');
  await page.getByLabel('Password').fill('pw');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });

  await page.getByLabel('Document to extract from').setInputFiles(file);
  assert.equal(await page.getByLabel('Tender file (dce)').isChecked(), true);
  await page.getByRole('button', { name: 'Start extraction' }).click();
  await page.waitForSelector('#notice:has-text("Extraction started")', { timeout: WAIT });

  // The job's page: the dce fields as a table, once the job completes.
  const table = page.locator('table.found[data-profile="dce"]');
  await table.waitFor({ timeout: WAIT });
  const jobId = page.url().match(/#\/jobs\/([0-9A-Z]+)$/)[1];
  const buyer = table.locator('tr[data-field="buyer"]');
  assert.equal(await buyer.locator('td.value').textContent(), 'Commune de Villeneuve-sur-Lot');
  assert.match(await buyer.locator('td.confidence').textContent(), /^\s*\d+%$/);
  assert.equal(await buyer.locator('td.page').textContent(), '1');
  const deadline = table.locator('tr[data-field="offers deadline"]');
  assert.equal(await deadline.locator('td.value').textContent(), '2025-03-17 12:00');
  assert.equal(await deadline.locator('td.page').textContent(), '2');
  // Lists come as nested rows: each lot, with its own fields.
  assert.ok(await table.locator('tr', { hasText: 'lot 2' }).count() >= 1, 'lot 2 has a row');
  assert.equal(await table.locator('tr[data-field="title"] td.value').first().textContent(), 'Tonte et débroussaillage');

  // Clicking a field marks exactly its source text, turning to its page.
  const deadlineSource = await sourceText(server, jobId, 'offersDeadline');
  await deadline.getByRole('button', { name: 'offers deadline' }).click();
  assert.equal(await markedText(page, deadlineSource.text), deadlineSource.text);
  assert.match(deadlineSource.text, /17 mars 2025/);
  assert.equal(await page.locator('.pager button[aria-pressed="true"]').textContent(), '2');
  const buyerSource = await sourceText(server, jobId, 'buyer');
  await buyer.getByRole('button', { name: 'buyer' }).click();
  assert.equal(await markedText(page, buyerSource.text), 'Commune de Villeneuve-sur-Lot');
  assert.equal(await page.locator('.pager button[aria-pressed="true"]').textContent(), '1');
  assert.equal(await page.locator('#extract-text mark').count(), 1);
  assert.ok(await page.locator('#extract-text mark').isVisible());
  await page.screenshot({ path: path.join(SHOTS, 'extract-desktop.png'), fullPage: true });

  // The same file again: the earlier job, not a new one.
  await page.getByLabel('Document to extract from').setInputFiles(file);
  await page.getByRole('button', { name: 'Start extraction' }).click();
  await page.waitForSelector('#notice:has-text("already extracted: showing the earlier result")', { timeout: WAIT });
  assert.equal(page.url().match(/#\/jobs\/([0-9A-Z]+)$/)[1], jobId);
  assert.equal(await page.locator('tr[data-job-id]').count(), 1);

  // A phone-sized window: one column, the text under the fields.
  await page.setViewportSize({ width: 390, height: 844 });
  await deadline.getByRole('button', { name: 'offers deadline' }).click();
  await markedText(page, deadlineSource.text);
  // The window as the click left it (the mark in view), the whole page, and the fields.
  assert.ok(await page.locator('#extract-text mark').isVisible());
  await page.screenshot({ path: path.join(SHOTS, 'extract-phone-mark.png') });
  await page.screenshot({ path: path.join(SHOTS, 'extract-phone.png'), fullPage: true });
  await table.screenshot({ path: path.join(SHOTS, 'extract-phone-fields.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  assert.deepEqual(problems, []);
}, { timeout: 90_000 });

brokerTest('a scanned page waits for its OCR child job, whose progress the page shows', async ctx => {
  const server = await ctx.server();
  const work = await mkdtemp(path.join(tmpdir(), 'stompede-dashboard-scan-'));
  // The scan: a page of large black text on white, photographed by the browser itself.
  const scan = path.join(work, 'scan.png');
  const { page, problems } = await open(server);
  // Open mode: no login form, the page goes straight to work.
  await page.waitForSelector('#link[data-up="true"]', { timeout: WAIT });
  const painter = await page.context().newPage();
  await painter.setViewportSize({ width: 1100, height: 300 });
  await painter.setContent(
    '<body style="margin:40px;background:#fff;color:#000;font:32px/1.5 sans-serif">' +
      'Pouvoir adjudicateur : Commune de Montauban<br>Objet de la consultation : Nettoyage des locaux</body>',
  );
  await painter.screenshot({ path: scan });
  await painter.close();

  await page.getByLabel('Document to extract from').setInputFiles(scan);
  await page.getByRole('button', { name: 'Start extraction' }).click();
  // The child's line appears, and follows it to its end.
  const child = page.locator('#child-jobs .child');
  await child.waitFor({ timeout: WAIT });
  assert.match(await child.locator('a').textContent(), /OCR/);
  await page.waitForFunction(() => document.querySelector('#child-jobs .child [role=progressbar]')?.getAttribute('aria-valuenow') === '100', null, {
    timeout: 60_000,
  });
  await page.locator('table.found[data-profile="dce"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('.page-caption').textContent(), /recognised/);
  assert.match(await page.locator('#extract-text').textContent(), /Montauban/);
  await page.screenshot({ path: path.join(SHOTS, 'extract-scan.png'), fullPage: true });
  assert.deepEqual(problems, []);
}, { timeout: 120_000 });
