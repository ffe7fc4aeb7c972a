// Two stompede nodes joined through a nats-server (`--cluster`, issue #24), as @stomp/stompjs
// sees them over WebSocket: a topic pattern and a user destination across nodes, headers and
// binary bodies intact. The Rust suite (tests/cluster.rs) covers order, volume and failures.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';

import { brokerTest, sleep } from './harness.mjs';

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

/** Starts Debian's nats-server (scripts/test.sh installs it) on a free port. */
async function startNats() {
  const port = await freePort();
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
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
