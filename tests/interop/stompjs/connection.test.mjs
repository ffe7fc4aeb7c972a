// Connection-level behaviour seen by @stomp/stompjs over WebSocket: version and subprotocol
// negotiation, authentication, heart-beats, receipts on DISCONNECT, and graceful shutdown.

import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { brokerTest, sleep, until, within, WAIT_MS } from './harness.mjs';

brokerTest('connects with the v12.stomp subprotocol and negotiates STOMP 1.2', async ctx => {
  const server = await ctx.server();
  const c = await ctx.client(server, { login: 'alice', passcode: 'any' });

  assert.equal(c.socket.protocol, 'v12.stomp', 'WebSocket subprotocol chosen by the server');
  assert.equal(c.connectedFrames.length, 1);
  const connected = c.connectedFrames[0];
  assert.equal(connected.command, 'CONNECTED');
  assert.equal(connected.headers.version, '1.2');
  if (connected.headers['heart-beat'] !== undefined) {
    assert.match(connected.headers['heart-beat'], /^\d+,\d+$/, 'CONNECTED heart-beat header');
  }
  assert.equal(c.client.connected, true);
  assert.equal(c.errors.length, 0, 'no ERROR frame');
});

for (const [protocol, version] of [
  ['v11.stomp', '1.1'],
  ['v10.stomp', '1.0'],
]) {
  brokerTest(`negotiates STOMP ${version} over ${protocol} and exchanges messages`, async ctx => {
    const server = await ctx.server();
    const opts = { protocols: [protocol], versions: [version] };
    const sub = await ctx.client(server, { ...opts, name: `sub-${version}`, login: 'a' });
    const pub = await ctx.client(server, { ...opts, name: `pub-${version}`, login: 'b' });

    assert.equal(sub.socket.protocol, protocol);
    const connected = sub.connectedFrames[0];
    if (version === '1.0') {
      // STOMP 1.0 has no version header; a newer server may still state 1.0.
      assert.ok(
        connected.headers.version === undefined || connected.headers.version === '1.0',
        `CONNECTED version for a 1.0 client: ${connected.headers.version}`,
      );
    } else {
      assert.equal(connected.headers.version, version);
    }

    const inbox = await sub.subscribe(`/topic/v${version}`);
    await pub.send(`/topic/v${version}`, `hello ${version}`, { 'x-version': version });
    const m = await inbox.next();
    assert.equal(m.body, `hello ${version}`);
    assert.equal(m.headers.destination, `/topic/v${version}`);
    assert.equal(m.headers['x-version'], version);
    assert.ok(m.headers['message-id'], 'message-id header');
  });
}

brokerTest('with --user, a wrong passcode gets an ERROR and the socket is closed', async ctx => {
  const server = await ctx.server({ users: ['alice:s3cret', 'bob:hunter2'] });

  const wrong = await ctx.client(server, {
    name: 'alice-wrong',
    login: 'alice',
    passcode: 'nope',
    connect: false,
  });
  await assert.rejects(wrong.connect(), /ERROR frame/, 'connect with a wrong passcode must fail');
  assert.equal(wrong.errors.length, 1, 'exactly one ERROR frame');
  assert.equal(wrong.errors[0].command, 'ERROR');
  assert.ok(wrong.errors[0].headers.message, 'ERROR frame has a message header');
  await until(() => wrong.closes.length > 0, 'the server to close the rejected socket');
  assert.equal(wrong.connectedFrames.length, 0, 'never CONNECTED');

  const unknown = await ctx.client(server, {
    name: 'mallory',
    login: 'mallory',
    passcode: 's3cret',
    connect: false,
  });
  await assert.rejects(unknown.connect(), /ERROR frame/, 'an unknown user must be rejected');
  await until(() => unknown.closes.length > 0, 'the server to close the unknown user socket');

  const right = await ctx.client(server, { name: 'alice', login: 'alice', passcode: 's3cret' });
  assert.equal(right.connectedFrames[0].headers.version, '1.2');
  assert.equal(right.errors.length, 0);
});

brokerTest('heart-beats flow both ways and an idle connection stays up', async ctx => {
  const server = await ctx.server({ heartbeat: '100,100' });
  const c = await ctx.client(server, {
    name: 'idle',
    heartbeatIncoming: 200,
    heartbeatOutgoing: 200,
  });
  const heartBeat = c.connectedFrames[0].headers['heart-beat'];
  assert.match(heartBeat ?? '', /^\d+,\d+$/, 'CONNECTED carries heart-beat');
  const [sx, sy] = heartBeat.split(',').map(Number);
  assert.ok(sx > 0 && sx <= 200, `server offers to send heart-beats (sx=${sx})`);
  assert.ok(sy > 0 && sy <= 200, `server wants heart-beats from us (sy=${sy})`);

  const before = c.heartbeatsSeen;
  await sleep(1_500);
  const seen = c.heartbeatsSeen - before;
  // Negotiated period is max(200, sx) = 200ms: about 7 in 1.5s. Allow for timer slop.
  assert.ok(seen >= 3, `expected >= 3 server heart-beats in 1.5s idle, saw ${seen}`);
  assert.equal(c.closes.length, 0, 'socket must not close while heart-beating');
  assert.equal(c.errors.length, 0, 'no ERROR while heart-beating');
  assert.equal(c.client.connected, true, 'still connected after 1.5s idle');
  assert.ok(!c.debugLines.some(l => l.includes('did not receive server activity')),
    'stompjs never declared the server dead');

  // The connection is still usable.
  const inbox = await c.subscribe('/topic/after-idle');
  await c.send('/topic/after-idle', 'still here');
  assert.equal((await inbox.next()).body, 'still here');
});

brokerTest('server drops a client that stops sending the heart-beats it promised', async ctx => {
  const server = await ctx.server({ heartbeat: '100,100' });
  const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
  ctx.t.after(() => ws.terminate());
  const frames = [];
  ws.on('message', data => frames.push(data.toString()));
  const closed = new Promise(resolve => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await within(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'raw WebSocket open');
  // Promise a heart-beat every 200ms, then go silent.
  ws.send('CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:200,0\n\n\0');
  await until(() => frames.some(f => f.startsWith('CONNECTED')), 'CONNECTED on the raw socket');
  const start = Date.now();
  const result = await within(closed, 'the server to close a silent client (promised 200ms heart-beats)');
  const after = Date.now() - start;
  assert.ok(after >= 200, `closed too early (${after}ms): the grace must exceed one period`);
});

brokerTest('a client still sending when the server answers with an ERROR reads that ERROR', async ctx => {
  // The `ws` socket @stomp/stompjs uses in Node. Closing a socket with unread input makes the
  // kernel reset the connection, which destroys the ERROR before the client reads it (close
  // code 1006): the server must half-close and read on until the client closes too.
  const server = await ctx.server();
  for (let attempt = 0; attempt < 5; attempt++) {
    const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
    ctx.t.after(() => ws.terminate());
    const frames = [];
    ws.on('message', data => frames.push(data.toString()));
    ws.on('error', () => {});
    const closed = new Promise(resolve => ws.once('close', code => resolve(code)));
    await within(new Promise(resolve => ws.once('open', resolve)), 'raw WebSocket open');
    ws.send('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0');
    await until(() => frames.some(f => f.startsWith('CONNECTED')), 'CONNECTED on the raw socket');
    ws.send('SEND\n\nno destination\0');
    // Keep sending, as a busy client does, until the server's answer arrives.
    const body = 'x'.repeat(4096);
    const flood = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      for (let i = 0; i < 50; i++) ws.send(`SEND\ndestination:/topic/flood\n\n${body}\0`);
      setImmediate(flood);
    };
    flood();
    const code = await within(closed, 'the server to close after its ERROR');
    const error = frames.find(f => f.startsWith('ERROR'));
    assert.ok(error, `attempt ${attempt}: no ERROR frame before the close (code ${code})`);
    assert.match(error, /^message:SEND frame has no destination header$/m);
    assert.notEqual(code, 1006, `attempt ${attempt}: the connection was reset, not closed`);
  }
});

brokerTest('DISCONNECT with a receipt is answered before the socket closes', async ctx => {
  const server = await ctx.server();
  const c = await ctx.client(server, { name: 'leaver' });
  await c.disconnect();
  assert.equal(c.disconnectFrames.length, 1, 'stompjs saw the RECEIPT for DISCONNECT');
  assert.equal(c.disconnectFrames[0].command, 'RECEIPT');
  assert.match(c.disconnectFrames[0].headers['receipt-id'], /^close-/);
  assert.ok(c.closes.length >= 1, 'socket closed');
});

brokerTest('SIGTERM sends ERROR "server shutting down" to clients and exits 0', async ctx => {
  const server = await ctx.server();
  const a = await ctx.client(server, { name: 'a' });
  const b = await ctx.client(server, { name: 'b', protocols: ['v11.stomp'], versions: ['1.1'] });

  const status = await server.stop(WAIT_MS);
  assert.equal(status.killed, false, 'server exited by itself after SIGTERM');
  assert.equal(status.signal, null, `exit signal ${status.signal}`);
  assert.equal(status.code, 0, `exit code ${status.code}`);

  for (const c of [a, b]) {
    await until(() => c.errors.length > 0, `${c.name} to get an ERROR frame`, 2_000);
    assert.equal(c.errors[0].headers.message, 'server shutting down');
    await until(() => c.closes.length > 0, `${c.name} socket to close`, 2_000);
  }
});
