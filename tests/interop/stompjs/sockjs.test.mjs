// STOMP over SockJS from Node, as a page that connects with `new SockJS(url)` does: sockjs-client
// with @stomp/stompjs, over each transport Node's sockjs-client can run, forced one at a time.
// (The transports that need a DOM, iframe-htmlfile and jsonp-polling, run in the browser test,
// browser.test.mjs.)

import assert from 'node:assert/strict';

import SockJS from 'sockjs-client';

import { TestClient, brokerTest } from './harness.mjs';

/** A stompjs client whose "WebSocket" is a SockJS connection over `transports`. */
export class SockJsClient extends TestClient {
  constructor(server, transports, opts = {}) {
    super(`http://${server.httpAddr}/sockjs`, opts);
    this.transports = transports;
  }

  _openSocket() {
    const socket = new SockJS(this.url, null, { transports: this.transports });
    this.socket = socket;
    this.sockets.push(socket);
    return socket;
  }
}

const BURST = 10_000;

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource']) {
  brokerTest(
    `stompjs over SockJS ${transport}: a 1 MiB message and a burst of ${BURST}, all in order`,
    async ctx => {
      const server = await ctx.server();
      const client = new SockJsClient(server, [transport], { name: transport, login: 'ann' });
      ctx.clients.push(client);
      const connected = await client.connect();
      assert.equal(connected.headers['user-name'], 'ann');
      assert.equal(client.socket.transport, transport, 'the forced transport carries it');

      // Another session, over WebSocket, sees what the SockJS session publishes.
      const watcher = await ctx.client(server, { name: 'watcher', login: 'bob' });
      const watched = await watcher.subscribe(`/topic/sockjs.${transport}`);
      const inbox = await client.subscribe(`/topic/sockjs.${transport}`);

      const large = 'x'.repeat(1024 * 1024 - 7) + 'the end';
      await client.send(`/topic/sockjs.${transport}`, large, { 'content-type': 'text/plain' });
      const [mine, theirs] = [await inbox.next(), await watched.next()];
      assert.equal(mine.body.length, large.length);
      assert.ok(mine.body === large, 'the 1 MiB body arrives unchanged');
      assert.ok(theirs.body === large);

      for (let i = 0; i < BURST; i++) {
        client.client.publish({ destination: `/topic/sockjs.${transport}`, body: `m-${i}` });
      }
      await client.send(`/topic/sockjs.${transport}`, 'last');
      const burst = await inbox.take(BURST + 1, 90_000);
      assert.deepEqual(
        burst.map(m => m.body),
        [...Array.from({ length: BURST }, (_, i) => `m-${i}`), 'last'],
        'every message, in order',
      );
      const seen = await watched.take(BURST + 1, 90_000);
      assert.equal(seen.at(-1).body, 'last');
      assert.equal(seen[BURST - 1].body, `m-${BURST - 1}`);
      assert.equal(client.errors.length, 0);
      await client.disconnect();
    },
    { timeout: 180_000 },
  );
}

brokerTest('a SockJS session is a STOMP session: a wrong password is refused', async ctx => {
  const server = await ctx.server({ users: ['ann:secret'] });
  const client = new SockJsClient(server, ['xhr-streaming'], {
    name: 'intruder',
    login: 'ann',
    passcode: 'wrong',
  });
  ctx.clients.push(client);
  await assert.rejects(client.connect(), /ERROR frame/);
  assert.match(client.errors[0].headers.message, /login|password|credentials|auth/i);
});
