// stompede nodes joined through NATS (`--cluster`, issue #24), as @stomp/stompjs sees them over
// WebSocket: a topic pattern and a user destination across nodes, headers and binary bodies
// intact; and a reconciliation submitted on one node, run on another and watched through the
// first, with jobs in a three-server JetStream cluster. The Rust suite (tests/cluster.rs) covers
// order, volume and failures.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { brokerTest, sleep } from './harness.mjs';
import { RECONCILE_PARAMS, outcomeCounts, writeReconcileFiles } from './reconcile_fixture.mjs';

/** A loopback port nobody listens on. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** True once something accepts on `port`. */
function accepts(port) {
  return new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts Debian's nats-server (scripts/test.sh installs it) on `port` (a free one if not given),
 * with `args` besides.
 */
async function startNats(args = [], port = undefined) {
  port ??= await freePort();
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: 'ignore' });
  let failure;
  child.once('error', err => {
    failure = err;
  });
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (failure) throw new Error(`nats-server (scripts/test.sh installs it): ${failure.message}`);
    if (Date.now() > deadline) throw new Error(`nats-server never listened on ${port}`);
    await sleep(20);
  }
  return { url: `nats://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

/** Three nats-servers routed into one NATS cluster with JetStream, each storing in `dir`. */
async function startJetStreamCluster(dir) {
  const clients = [await freePort(), await freePort(), await freePort()];
  const routes = [await freePort(), await freePort(), await freePort()];
  const allRoutes = routes.map(p => `nats://127.0.0.1:${p}`).join(',');
  const servers = [];
  try {
    for (let i = 0; i < 3; i++) {
      const args = ['-js', '-sd', join(dir, `s${i}`), '--server_name', `s${i}`,
        '--cluster_name', 'stompede-js', '--cluster', `nats://127.0.0.1:${routes[i]}`, '--routes', allRoutes];
      servers.push(await startNats(args, clients[i]));
    }
  } catch (err) {
    for (const server of servers) server.stop();
    throw err;
  }
  return { urls: servers.map(s => s.url), stop: () => servers.forEach(s => s.stop()) };
}

/**
 * Submits one-chunk demo jobs over HTTP on `server` until one is accepted: a JetStream cluster
 * just started elects its leaders first, and until then the job store refuses.
 */
async function untilJetStreamTakesJobs(server) {
  const body = JSON.stringify({ type: 'demo', params: { chunks: 1, mibPerChunk: 0 } });
  const deadline = Date.now() + 60_000;
  let last;
  while (Date.now() < deadline) {
    try {
      const answer = await fetch(`http://${server.httpAddr}/api/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${btoa('warm:x')}` },
        body,
      });
      last = `${answer.status} ${await answer.text()}`;
      if (answer.status === 202) return;
    } catch (err) {
      last = err.message;
    }
    await sleep(250);
  }
  throw new Error(`JetStream never took a job: ${last}`);
}

brokerTest('across two nodes: a topic pattern and a user destination, headers and bodies intact', async ctx => {
  const nats = await startNats();
  try {
    const node = name => ctx.server({ config: `cluster = ["${nats.url}"]\nnode-name = "${name}"\n` });
    const a = await node('a');
    const b = await node('b');
    assert.equal(a.listening.node, 'a');
    assert.equal(b.listening.node, 'b');

    const watcher = await ctx.client(a, { login: 'watcher', passcode: 'x' });
    const bob = await ctx.client(a, { login: 'bob', passcode: 'x' });
    const prices = await watcher.subscribe('/topic/prices/**');
    const inbox = await bob.subscribe('/user/queue/inbox');

    const sender = await ctx.client(b, { login: 'bob', passcode: 'x' });
    await sender.send('/topic/prices/eur/usd', 'héllo ✓', { 'x-trace': 'abc:123' });
    await sender.sendBinary('/topic/prices/raw', new Uint8Array([0, 1, 2, 255]));
    await sender.send('/user/bob/queue/inbox', 'to every bob');

    const text = await prices.next();
    assert.equal(text.headers.destination, '/topic/prices/eur/usd');
    assert.equal(text.body, 'héllo ✓');
    assert.equal(text.headers['x-trace'], 'abc:123');
    const binary = await prices.next();
    assert.deepEqual([...binary.binaryBody], [0, 1, 2, 255]);
    const mine = await inbox.next();
    assert.equal(mine.body, 'to every bob');
    assert.equal(mine.headers.destination, '/user/queue/inbox');
    await prices.expectNone();
  } finally {
    nats.stop();
  }
});

brokerTest('a page on node A reconciles two files on node B through JetStream and watches it through A', async ctx => {
  const natsDir = await mkdtemp(join(tmpdir(), 'stompede-interop-nats-'));
  const nats = await startJetStreamCluster(natsDir);
  try {
    // A and C take no jobs (front nodes): whatever is submitted runs on B. Each node talks to
    // its own NATS server.
    const node = (name, url, slots) =>
      ctx.server({
        config: `cluster = ["${url}"]\nnode-name = "${name}"\ncluster-jobs = true\n` +
          `cluster-replicas = 3\ncluster-job-slots = ${slots}\n`,
      });
    const a = await node('a', nats.urls[0], 0);
    const b = await node('b', nats.urls[1], 2);
    const c = await node('c', nats.urls[2], 0);
    // The nodes share what they import, as a shared volume would: the submitting node checks
    // the paths (a refused one is a JOB_REJECTED), the running node reads the files.
    for (const server of [a, b, c]) await writeReconcileFiles(server.dataDir);
    await untilJetStreamTakesJobs(a);

    const page = await ctx.client(a, { login: 'ann', passcode: 'x' });
    const progress = await page.subscribe('/user/queue/progress');
    const receipt = await page.send('/app/jobs', RECONCILE_PARAMS, { 'job-type': 'reconcile' });
    const jobId = receipt.headers['job-id'];
    assert.match(jobId, /^[0-9A-Z]{26}$/);
    const events = [];
    for (;;) {
      const message = await progress.next();
      assert.equal(message.headers['job-id'], jobId);
      const event = JSON.parse(message.body);
      events.push(event);
      if (event.event === 'JOB_COMPLETED' || event.event === 'JOB_FAILED') break;
    }
    assert.deepEqual(events.map(e => e.seq), events.map((_, i) => i + 1), 'numbered without gaps');
    const kinds = events.map(e => e.event);
    assert.equal(kinds[0], 'JOB_ACCEPTED');
    const started = events.findIndex(e => e.event === 'JOB_STARTED');
    assert.ok(started > 0, kinds.join(' '));
    for (const event of events.slice(started)) {
      assert.equal(event.node, 'b', `every event from JOB_STARTED on names the node running it: ${JSON.stringify(event)}`);
    }
    assert.ok(kinds.filter(k => k === 'CHUNK_COMPLETED').length >= 2, kinds.join(' '));
    const done = events.at(-1);
    assert.equal(done.event, 'JOB_COMPLETED', JSON.stringify(done));
    assert.deepEqual(outcomeCounts(done.result), [1, 1, 1, 1, 1, 1], JSON.stringify(done.result));

    // A page opened later on A gets the job's state, from the bucket, naming B.
    const late = await ctx.client(a, { login: 'ann', passcode: 'x' });
    const watch = await late.subscribe(`/topic/jobs/${jobId}`);
    const snapshot = await watch.next();
    assert.equal(snapshot.headers.snapshot, 'true');
    const state = JSON.parse(snapshot.body);
    assert.equal(state.status, 'completed', snapshot.body);
    assert.equal(state.node, 'b', snapshot.body);
  } finally {
    nats.stop();
    await rm(natsDir, { recursive: true, force: true });
  }
}, { timeout: 120_000 });
