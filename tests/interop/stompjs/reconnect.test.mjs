// stompjs's automatic reconnect (reconnectDelay) across a broker restart on the same ports.

import assert from 'node:assert/strict';

import { brokerTest, Inbox, until, WAIT_MS } from './harness.mjs';

brokerTest('client reconnects after a server restart on the same ports and resubscribes', async ctx => {
  const first = await ctx.server();

  // stompjs does not resubscribe by itself: the application does it in onConnect, as here.
  const inbox = new Inbox('watcher:/topic/restart');
  const resubscribed = [];
  const watcher = await ctx.client(first, {
    name: 'watcher',
    login: 'watcher',
    reconnectDelay: 200,
    onConnect: (_frame, tc) => {
      const receiptId = `resub-${tc.connectedFrames.length}`;
      resubscribed.push(tc.receipt(receiptId));
      tc.client.subscribe('/topic/restart', m => inbox.push(m), { receipt: receiptId });
    },
  });
  await resubscribed[0];

  const before = await ctx.client(first, { name: 'publisher-1' });
  await before.send('/topic/restart', 'before restart');
  assert.equal((await inbox.next()).body, 'before restart');

  // Stop the broker. The watcher is told and loses its socket.
  const status = await first.stop(WAIT_MS);
  assert.equal(status.code, 0, `first server exit code ${status.code} (signal ${status.signal})`);
  await until(() => watcher.closes.length >= 1, 'the watcher socket to close');
  assert.equal(watcher.client.connected, false);

  // Start a new broker on the very same ports (and data dir).
  const second = await ctx.server({
    stomp: first.stompAddr,
    http: first.httpAddr,
    dataDir: first.dataDir,
  });
  assert.equal(second.wsUrl, first.wsUrl, 'the restarted server listens on the same ws url');

  await until(() => watcher.connectedFrames.length >= 2, 'the watcher to reconnect (reconnectDelay 200ms)');
  await resubscribed[1];
  assert.ok(watcher.sockets.length >= 2, 'a new WebSocket was opened');
  assert.equal(watcher.client.connected, true);

  const after = await ctx.client(second, { name: 'publisher-2' });
  await after.send('/topic/restart', 'after restart');
  const m = await inbox.next();
  assert.equal(m.body, 'after restart');
  assert.equal(m.headers.destination, '/topic/restart');
  await inbox.expectNone();
});
