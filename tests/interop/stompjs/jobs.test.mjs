// The job engine as a browser page uses it through @stomp/stompjs: submit a demo job, render its
// progress messages, and read the result.

import assert from 'node:assert/strict';

import { brokerTest } from './harness.mjs';
import { RECONCILE_PARAMS, outcomeCounts, writeReconcileFiles } from './reconcile_fixture.mjs';

/** What a progress page shows for an event. */
function render(event) {
  switch (event.event) {
    case 'PROGRESS_UPDATE':
      return `${event.percentage.toFixed(1)}% (${event.chunksCompleted}/${event.chunkCount} chunks)`;
    case 'CHUNK_COMPLETED':
      return `chunk ${event.chunkIndex + 1} done: ${event.result.sha256.slice(0, 8)}`;
    case 'JOB_COMPLETED':
      return `done in ${event.executionTimeMs} ms`;
    default:
      return event.event;
  }
}

brokerTest('a page submits a demo job and renders every progress message', async ctx => {
  const server = await ctx.server();
  const page = await ctx.client(server, { login: 'ann', passcode: 'x' });
  const progress = await page.subscribe('/user/queue/progress');

  const receipt = await page.send('/app/jobs', JSON.stringify({ chunks: 3, mibPerChunk: 1 }), {
    'job-type': 'demo',
    'correlation-id': 'page-1',
  });
  const jobId = receipt.headers['job-id'];
  assert.match(jobId, /^[0-9A-Z]{26}$/, 'the RECEIPT carries a ULID job-id');

  const lines = [];
  const events = [];
  for (;;) {
    const message = await progress.next();
    assert.equal(message.headers['content-type'], 'application/json');
    assert.equal(message.headers['job-id'], jobId);
    const event = JSON.parse(message.body);
    assert.equal(message.headers.event, event.event);
    assert.equal(event.correlationId, 'page-1');
    events.push(event);
    lines.push(render(event));
    if (event.event === 'JOB_COMPLETED' || event.event === 'JOB_FAILED') break;
  }
  assert.deepEqual(
    events.map(e => e.seq),
    events.map((_, i) => i + 1),
    'sequence numbers start at 1 without gaps',
  );
  assert.equal(lines[0], 'JOB_ACCEPTED');
  assert.deepEqual(
    lines.filter(l => l.startsWith('chunk ')).map(l => l.split(' ')[1]),
    ['1', '2', '3'],
  );
  assert.ok(lines.includes('100.0% (3/3 chunks)'), lines.join('\n'));
  const done = events.at(-1);
  assert.equal(done.event, 'JOB_COMPLETED');
  assert.equal(done.result.chunks.length, 3);

  // A page opened later gets the job's state first.
  const late = await ctx.client(server, { login: 'ann', passcode: 'x' });
  const watch = await late.subscribe(`/topic/jobs/${jobId}`);
  const snapshot = await watch.next();
  assert.equal(snapshot.headers.snapshot, 'true');
  assert.equal(JSON.parse(snapshot.body).status, 'completed');
});

brokerTest('a page reconciles two CSV files and follows the job to its counts', async ctx => {
  const server = await ctx.server();
  // The server's import directory is <data-dir>/import, created at start-up.
  await writeReconcileFiles(server.dataDir);

  const page = await ctx.client(server, { login: 'ann', passcode: 'x' });
  const progress = await page.subscribe('/user/queue/progress');
  const receipt = await page.send(
    '/app/jobs',
    RECONCILE_PARAMS,
    { 'job-type': 'reconcile' },
  );
  const jobId = receipt.headers['job-id'];
  const events = [];
  for (;;) {
    const event = JSON.parse((await progress.next()).body);
    assert.equal(event.jobId, jobId);
    events.push(event);
    if (event.event === 'JOB_COMPLETED' || event.event === 'JOB_FAILED') break;
  }
  const kinds = events.map(e => e.event);
  assert.equal(kinds[0], 'JOB_ACCEPTED');
  assert.ok(kinds.includes('JOB_STARTED'));
  assert.ok(kinds.filter(k => k === 'CHUNK_COMPLETED').length >= 2, kinds.join(' '));
  const done = events.at(-1);
  assert.equal(done.event, 'JOB_COMPLETED', JSON.stringify(done));
  const r = done.result;
  assert.deepEqual(outcomeCounts(r), [1, 1, 1, 1, 1, 1], JSON.stringify(r));
  assert.ok(r.files['mismatches.csv'].endsWith('mismatches.csv'));

  // Every CHUNK_COMPLETED carries the counts so far; the last ones are the job's.
  const names = ['totalBoRecords', 'totalPartnerRecords', 'totalMatches', 'totalMismatches', 'totalBoOnly',
    'totalPartnerOnly', 'duplicateBoKeys', 'duplicatePartnerKeys', 'rejectedRows'];
  const chunks = events.filter(e => e.event === 'CHUNK_COMPLETED');
  const sum = Object.fromEntries(names.map(n => [n, 0]));
  for (const chunk of chunks) {
    for (const n of names) sum[n] += chunk.result.counts[n];
    assert.deepEqual(chunk.result.runningCounts, sum, JSON.stringify(chunk));
    assert.ok(chunk.result.mismatchSample.length <= 10);
  }
  assert.deepEqual(Object.fromEntries(names.map(n => [n, r[n]])), sum);
  const sample = chunks.flatMap(c => c.result.mismatchSample);
  assert.deepEqual(
    sample.map(m => [m.key, m.column, m.boValue, m.partnerValue]),
    [['A2', 'amount', '20.00', '21,00']],
  );

  // Progress names the file being read: back-office = 1, partner = 2, of 2, never going back.
  const located = events.filter(e => e.event === 'PROGRESS_UPDATE' && e.currentFile !== undefined);
  assert.ok(located.length > 0, kinds.join(' '));
  let file = 0;
  for (const p of located) {
    assert.equal(p.totalFiles, 2);
    assert.ok(p.currentFile >= file && p.currentFile <= 2, JSON.stringify(p));
    file = p.currentFile;
    assert.ok(p.processed <= p.total);
  }
  assert.equal(located.at(-1).currentFile, 2);
});
