// A real headless browser (Debian's chromium, driven by playwright-core) loads a page served by
// this test from another origin than stompede, with sockjs-client and stompjs from node_modules,
// and talks STOMP over SockJS with WebSocket out of the question (`transports` forced): it
// watches a demo job through /user/queue/progress, and pushes a 1 MiB message and a burst over
// the transports that need a DOM (iframe-htmlfile, jsonp-polling).
//
// chromium is installed by scripts/test.sh; without it this test fails, it never skips.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { brokerTest, chromiumPath } from './harness.mjs';

const NODE_MODULES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'node_modules');

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>stompede SockJS</title>
<script src="/sockjs.min.js"></script>
<script src="/stomp.umd.min.js"></script>
<script>
function within(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error('timed out waiting for ' + what)), ms))]);
}

function connect(url, transports, login) {
  return new Promise((resolve, reject) => {
    const client = new StompJs.Client({
      webSocketFactory: () => new SockJS(url, null, { transports }),
      connectHeaders: { login, passcode: 'x' },
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      onConnect: () => resolve(client),
      onStompError: frame => reject(new Error('ERROR ' + frame.headers.message)),
      onWebSocketClose: event => reject(new Error('closed ' + event.code + ' ' + event.reason)),
    });
    client.activate();
  });
}

let receipts = 0;
function subscribed(client, destination, onMessage) {
  const receipt = 'sub-' + ++receipts;
  const live = new Promise(resolve => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, onMessage, { receipt });
  return within(live, 10000, 'the subscription receipt');
}

function published(client, destination, body, headers = {}) {
  const receipt = 'send-' + ++receipts;
  const done = new Promise(resolve => client.watchForReceipt(receipt, resolve));
  client.publish({ destination, body, headers: { ...headers, receipt } });
  return done;
}

// Submits a demo job and returns every progress event it sees, until the job ends.
window.watchDemoJob = async (url, transports) => {
  const client = await connect(url, transports, 'ann');
  const events = [];
  let finished;
  const over = new Promise(resolve => { finished = resolve; });
  await subscribed(client, '/user/queue/progress', message => {
    const event = JSON.parse(message.body);
    events.push({ event: event.event, seq: event.seq, jobId: message.headers['job-id'] });
    if (event.event === 'JOB_COMPLETED' || event.event === 'JOB_FAILED') finished();
  });
  const receipt = await published(client, '/app/jobs', JSON.stringify({ chunks: 3, mibPerChunk: 1 }),
    { 'job-type': 'demo' });
  await within(over, 60000, 'the end of the job');
  const transport = client.webSocket.transport;
  await client.deactivate();
  return { transport, jobId: receipt.headers['job-id'], events };
};

// Sends a 1 MiB message and a burst of small ones to itself; returns what came back.
window.burst = async (url, transports, count) => {
  const client = await connect(url, transports, 'bob');
  const bodies = [];
  let last;
  const allIn = new Promise(resolve => { last = resolve; });
  await subscribed(client, '/topic/burst', message => {
    bodies.push(message.body);
    if (message.body === 'last') last();
  });
  const large = 'x'.repeat(1024 * 1024 - 7) + 'the end';
  await published(client, '/topic/burst', large);
  for (let i = 0; i < count; i++) client.publish({ destination: '/topic/burst', body: 'm-' + i });
  await published(client, '/topic/burst', 'last');
  await within(allIn, 90000, 'the whole burst');
  const transport = client.webSocket.transport;
  await client.deactivate();
  const inOrder = bodies.slice(1, -1).every((body, i) => body === 'm-' + i);
  return { transport, largeIntact: bodies[0] === large, count: bodies.length - 2, inOrder };
};
</script></head><body><h1>stompede over SockJS</h1></body></html>`;

/** Serves the page and the two client bundles; its origin is not stompede's. */
async function servePage() {
  const files = {
    '/sockjs.min.js': path.join(NODE_MODULES, 'sockjs-client', 'dist', 'sockjs.min.js'),
    '/stomp.umd.min.js': path.join(NODE_MODULES, '@stomp', 'stompjs', 'bundles', 'stomp.umd.min.js'),
  };
  const server = createServer(async (req, res) => {
    const file = files[req.url];
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else if (file) {
      res.writeHead(200, { 'content-type': 'application/javascript' });
      res.end(await readFile(file));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve));
  return server;
}

let browser;
let pageServer;
let pageOrigin;

before(async () => {
  pageServer = await servePage();
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise(resolve => pageServer?.close(resolve));
});

/** A stompede whose iframe page loads sockjs-client from the test's page server. */
async function startServer(ctx) {
  return ctx.server({ config: `sockjs-client-url = "${pageOrigin}/sockjs.min.js"\n` });
}

async function openPage() {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', error => problems.push(error.message));
  await page.goto(`${pageOrigin}/`);
  return { page, problems };
}

for (const transport of ['xhr-streaming', 'xhr-polling']) {
  brokerTest(`a browser page watches a demo job over SockJS ${transport}`, async ctx => {
    const server = await startServer(ctx);
    const { page, problems } = await openPage();
    try {
      const url = `http://${server.httpAddr}/sockjs`;
      const seen = await page.evaluate(([url, transports]) => window.watchDemoJob(url, transports), [
        url,
        [transport],
      ]);
      assert.equal(seen.transport, transport, 'WebSocket was out of the question');
      assert.match(seen.jobId, /^[0-9A-Z]{26}$/);
      const { events } = seen;
      assert.ok(events.every(e => e.jobId === seen.jobId));
      assert.deepEqual(
        events.map(e => e.seq),
        events.map((_, i) => i + 1),
        'every event, in order, without a gap',
      );
      assert.equal(events[0].event, 'JOB_ACCEPTED');
      assert.equal(events.at(-1).event, 'JOB_COMPLETED');
      assert.equal(events.filter(e => e.event === 'CHUNK_COMPLETED').length, 3);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  }, { timeout: 120_000 });
}

for (const transport of ['iframe-htmlfile', 'jsonp-polling', 'xhr-streaming', 'eventsource']) {
  brokerTest(`a browser page sends 1 MiB and a burst of 10000 over SockJS ${transport}`, async ctx => {
    const server = await startServer(ctx);
    const { page, problems } = await openPage();
    try {
      const url = `http://${server.httpAddr}/sockjs`;
      const got = await page.evaluate(
        ([url, transports]) => window.burst(url, transports, 10000),
        [url, [transport]],
      );
      assert.deepEqual(got, { transport, largeIntact: true, count: 10000, inOrder: true });
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  }, { timeout: 180_000 });
}
