// Publish/subscribe as @stomp/stompjs sees it over WebSocket: MESSAGE headers, receipts,
// WebSocket frame kinds, binary bodies, topic wildcards, user destinations and transactions.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';

import { brokerTest, until } from './harness.mjs';

/** The raw WebSocket messages a client received that carried a MESSAGE frame. */
function rawMessages(client) {
  return client.raw.filter(r => r.firstLine === 'MESSAGE');
}

brokerTest('subscribe, send and receive: MESSAGE carries the required and custom headers', async ctx => {
  const server = await ctx.server();
  const alice = await ctx.client(server, { login: 'alice', passcode: 'x' });
  const carol = await ctx.client(server, { login: 'carol', passcode: 'x' });
  const bob = await ctx.client(server, { login: 'bob', passcode: 'x' });

  const aliceInbox = await alice.subscribe('/topic/greetings');
  const carolInbox = await carol.subscribe('/topic/greetings', { id: 'carol-sub-7' });

  const body = 'héllo ✓ wörld';
  const receipt = await bob.send('/topic/greetings', body, {
    'content-type': 'text/plain;charset=utf-8',
    'x-trace': 'abc-123',
    // STOMP 1.2 header escaping: colon, backslash and newline must survive the round trip.
    'x-tricky': 'a:b\\c\nd',
    // stompjs 7.5 unescapes with sequential replaces, so it decodes the correct wire form of a
    // backslash followed by 'c', 'n' or 'r' wrongly: x-tricky is checked on the wire, x-escaped
    // (no such sequence) through stompjs's decoding.
    'x-escaped': 'a:b\\d\ne',
  });
  assert.equal(receipt.command, 'RECEIPT');

  const m = await aliceInbox.next();
  assert.equal(m.command, 'MESSAGE');
  assert.equal(m.body, body);
  assert.equal(m.headers.destination, '/topic/greetings');
  assert.equal(m.headers.subscription, aliceInbox.subscription.id);
  assert.ok(m.headers['message-id'], 'message-id header is present and non-empty');
  assert.equal(m.headers['content-length'], String(Buffer.byteLength(body, 'utf8')));
  assert.equal(m.headers['content-type'], 'text/plain;charset=utf-8');
  assert.equal(m.headers['x-trace'], 'abc-123');
  assert.equal(m.headers['x-escaped'], 'a:b\\d\ne');
  const wire = rawMessages(alice)[0].head.split('\n');
  assert.ok(wire.includes('x-tricky:a\\cb\\\\c\\nd'), `x-tricky escaped on the wire: ${wire}`);
  assert.ok(wire.includes('x-escaped:a\\cb\\\\d\\ne'), `x-escaped escaped on the wire: ${wire}`);
  assert.equal(m.headers.receipt, undefined, 'the SEND receipt header is not forwarded');

  // Every subscriber of a topic gets its own copy, tagged with its own subscription id.
  const c = await carolInbox.next();
  assert.equal(c.body, body);
  assert.equal(c.headers.subscription, 'carol-sub-7');
  assert.equal(c.headers.destination, '/topic/greetings');

  // Each receiver got exactly one copy.
  await aliceInbox.expectNone();
  await carolInbox.expectNone();

  // A second message gets a different message-id.
  await bob.send('/topic/greetings', 'second');
  const m2 = await aliceInbox.next();
  assert.equal(m2.body, 'second');
  assert.notEqual(m2.headers['message-id'], m.headers['message-id'], 'message-ids are unique');

  // The sender used text WebSocket frames, so the subscriber gets text frames.
  const raws = rawMessages(alice);
  assert.equal(raws.length, 2, 'two MESSAGE frames arrived on the socket');
  assert.ok(raws.every(r => r.binary === false), 'text in, text out');
});

brokerTest('receipts for SEND, SUBSCRIBE and UNSUBSCRIBE; no delivery after UNSUBSCRIBE', async ctx => {
  const server = await ctx.server();
  const c = await ctx.client(server, { name: 'receipts' });

  const sendReceipt = await c.send('/topic/nobody-listens', 'x');
  assert.equal(sendReceipt.command, 'RECEIPT');
  assert.match(sendReceipt.headers['receipt-id'], /^send-/);

  const inbox = await c.subscribe('/topic/receipts'); // waits for the SUBSCRIBE receipt
  await c.send('/topic/receipts', 'one');
  assert.equal((await inbox.next()).body, 'one');

  const unsubReceipt = c.receipt('unsub-1');
  inbox.subscription.unsubscribe({ receipt: 'unsub-1' });
  const r = await unsubReceipt;
  assert.equal(r.headers['receipt-id'], 'unsub-1');

  // stompjs drops unknown-subscription MESSAGEs into onUnhandledMessage; watch the raw socket.
  const before = rawMessages(c).length;
  await c.send('/topic/receipts', 'two');
  await inbox.expectNone();
  assert.equal(rawMessages(c).length, before, 'no MESSAGE frame after UNSUBSCRIBE');
});

brokerTest('binary body with all 256 byte values round-trips byte for byte in binary frames', async ctx => {
  const server = await ctx.server();
  const sub = await ctx.client(server, { name: 'bin-sub' });
  const pub = await ctx.client(server, { name: 'bin-pub' });
  const inbox = await sub.subscribe('/topic/binary');

  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  await pub.sendBinary('/topic/binary', all, { 'content-type': 'application/octet-stream' });
  const m = await inbox.next();
  assert.equal(m.headers['content-length'], '256');
  assert.equal(m.headers['content-type'], 'application/octet-stream');
  assert.deepEqual(Buffer.from(m.binaryBody), Buffer.from(all), 'body bytes differ');

  // A larger random body, NULs included.
  const big = new Uint8Array(randomBytes(16 * 1024));
  await pub.sendBinary('/topic/binary', big);
  const m2 = await inbox.next();
  assert.equal(m2.headers['content-length'], String(big.length));
  assert.ok(Buffer.from(m2.binaryBody).equals(Buffer.from(big)), '16 KiB random body differs');

  // Then a text message on the same subscription.
  await pub.send('/topic/binary', 'plain text');
  const m3 = await inbox.next();
  assert.equal(m3.body, 'plain text');

  const raws = rawMessages(sub);
  assert.equal(raws.length, 3, 'three MESSAGE frames arrived');
  assert.equal(raws[0].binary, true, 'binary SEND is delivered in a binary WebSocket frame');
  assert.equal(raws[1].binary, true, 'binary SEND is delivered in a binary WebSocket frame');
  assert.equal(raws[2].binary, false, 'text SEND is delivered in a text WebSocket frame');
});

brokerTest('topic wildcards: * matches one segment, ** matches many', async ctx => {
  const server = await ctx.server();
  const sub = await ctx.client(server, { name: 'wild-sub' });
  const pub = await ctx.client(server, { name: 'wild-pub' });

  const one = await sub.subscribe('/topic/sensors/*/temp');
  const many = await sub.subscribe('/topic/sensors/**');
  const exact = await sub.subscribe('/topic/sensors/kitchen/temp');

  const sends = [
    '/topic/sensors/kitchen/temp', // one, many, exact
    '/topic/sensors/kitchen/humidity', // many
    '/topic/sensors/attic/north/temp', // many (two segments: not *)
    '/topic/sensors/garage/temp', // one, many
    '/topic/other/kitchen/temp', // none
  ];
  for (const [i, dest] of sends.entries()) {
    await pub.send(dest, `m${i}`);
  }
  // A final marker that every subscription matches: per-publisher order makes it the last.
  await pub.send('/topic/sensors/kitchen/temp', 'marker');

  async function drain(inbox) {
    const got = [];
    for (;;) {
      const m = await inbox.next();
      if (m.body === 'marker') return got;
      got.push(`${m.body} ${m.headers.destination}`);
    }
  }
  assert.deepEqual(await drain(one), [
    'm0 /topic/sensors/kitchen/temp',
    'm3 /topic/sensors/garage/temp',
  ]);
  assert.deepEqual(await drain(many), [
    'm0 /topic/sensors/kitchen/temp',
    'm1 /topic/sensors/kitchen/humidity',
    'm2 /topic/sensors/attic/north/temp',
    'm3 /topic/sensors/garage/temp',
  ]);
  assert.deepEqual(await drain(exact), ['m0 /topic/sensors/kitchen/temp']);

  // Each MESSAGE names the subscription that matched.
  await pub.send('/topic/sensors/x/temp', 'tagged');
  const a = await one.next();
  const b = await many.next();
  assert.equal(a.headers.subscription, one.subscription.id);
  assert.equal(b.headers.subscription, many.subscription.id);
  assert.notEqual(a.headers.subscription, b.headers.subscription);
});

// protocol/docs/destinations.md: SEND to `/user/<user>/queue/<name>` reaches every session of
// <user> subscribed to `/user/queue/<name>`; by default a user may send only to their own
// `/user/<user>/...` destinations, and `[[acl]]` rules can allow more.

brokerTest("user destinations: /user/<name>/queue/x reaches every session of that user, no one else's", async ctx => {
  const server = await ctx.server();
  const alice = await ctx.client(server, { name: 'alice', login: 'alice', passcode: 'a' });
  const alice2 = await ctx.client(server, { name: 'alice-2nd', login: 'alice', passcode: 'a' });
  const aliceSender = await ctx.client(server, { name: 'alice-sender', login: 'alice', passcode: 'a' });
  const bob = await ctx.client(server, { name: 'bob', login: 'bob', passcode: 'b' });

  const aliceInbox = await alice.subscribe('/user/queue/x');
  const alice2Inbox = await alice2.subscribe('/user/queue/x');
  const bobInbox = await bob.subscribe('/user/queue/x');

  await aliceSender.send('/user/alice/queue/x', 'for alice', { 'x-kind': 'private' });
  for (const inbox of [aliceInbox, alice2Inbox]) {
    const m = await inbox.next();
    assert.equal(m.body, 'for alice');
    assert.equal(m.headers['x-kind'], 'private');
    assert.equal(m.headers.subscription, inbox.subscription.id);
    assert.equal(m.headers.destination, '/user/queue/x', 'MESSAGE names the subscribed form');
    assert.ok(m.headers['message-id']);
  }
  await bobInbox.expectNone();

  await bob.send('/user/bob/queue/x', 'for bob');
  const b = await bobInbox.next();
  assert.equal(b.body, 'for bob');
  assert.equal(b.headers.destination, '/user/queue/x');
  await aliceInbox.expectNone(100);
  await alice2Inbox.expectNone(100);
});

brokerTest("user destinations: by default another user's /user/<name>/... is refused with an ERROR", async ctx => {
  const server = await ctx.server();
  const alice = await ctx.client(server, { name: 'alice', login: 'alice', passcode: 'a' });
  const bob = await ctx.client(server, { name: 'bob', login: 'bob', passcode: 'b' });
  const carol = await ctx.client(server, { name: 'carol', login: 'carol', passcode: 'c' });
  const aliceInbox = await alice.subscribe('/user/queue/x');
  const bobInbox = await bob.subscribe('/user/queue/x');

  await assert.rejects(
    carol.send('/user/alice/queue/x', 'not for carol to send'),
    /ERROR frame/,
    "carol's SEND to alice's user destination must be refused",
  );
  const error = carol.errors[0];
  assert.equal(error.command, 'ERROR');
  assert.match(error.headers['receipt-id'] ?? '', /^send-/, 'the ERROR answers the SEND receipt');
  assert.ok(error.headers.message, 'ERROR carries a message header');
  await until(() => carol.closes.length > 0, "the server to close carol's socket after the ERROR");
  await aliceInbox.expectNone();
  await bobInbox.expectNone(100);
});

brokerTest('user destinations: with an [[acl]] rule another user sends to /user/alice/queue/x; bob gets nothing', async ctx => {
  const server = await ctx.server({
    config: '[[acl]]\nuser = "*"\ndestination = "/user/**"\nread = true\nwrite = true\n',
  });
  const alice = await ctx.client(server, { name: 'alice', login: 'alice', passcode: 'a' });
  const bob = await ctx.client(server, { name: 'bob', login: 'bob', passcode: 'b' });
  const carol = await ctx.client(server, { name: 'carol', login: 'carol', passcode: 'c' });
  const aliceInbox = await alice.subscribe('/user/queue/x');
  const bobInbox = await bob.subscribe('/user/queue/x');

  await carol.send('/user/alice/queue/x', 'from carol', { 'x-from': 'carol' });
  const m = await aliceInbox.next();
  assert.equal(m.body, 'from carol');
  assert.equal(m.headers['x-from'], 'carol');
  assert.equal(m.headers.destination, '/user/queue/x');
  await bobInbox.expectNone();

  // A user nobody is connected as: no one gets it.
  await carol.send('/user/dave/queue/x', 'for dave');
  await aliceInbox.expectNone();
  await bobInbox.expectNone(100);
});

brokerTest('transactions: sends are delivered on COMMIT and discarded on ABORT', async ctx => {
  const server = await ctx.server();
  const sub = await ctx.client(server, { name: 'tx-sub' });
  const pub = await ctx.client(server, { name: 'tx-pub' });
  const inbox = await sub.subscribe('/topic/tx');

  const tx = pub.client.begin('tx-commit');
  pub.client.publish({ destination: '/topic/tx', body: 'c1', headers: { transaction: tx.id } });
  pub.client.publish({ destination: '/topic/tx', body: 'c2', headers: { transaction: tx.id } });
  // A receipted non-transactional send is a barrier: the server has seen the two above.
  await pub.send('/topic/tx', 'outside');
  assert.equal((await inbox.next()).body, 'outside', 'only the non-transactional send is delivered');
  await inbox.expectNone();
  tx.commit();
  const committed = await inbox.take(2);
  assert.deepEqual(committed.map(m => m.body), ['c1', 'c2']);

  const tx2 = pub.client.begin('tx-abort');
  pub.client.publish({ destination: '/topic/tx', body: 'a1', headers: { transaction: tx2.id } });
  tx2.abort();
  await pub.send('/topic/tx', 'after-abort');
  assert.equal((await inbox.next()).body, 'after-abort', 'the aborted send was delivered');
  await inbox.expectNone();
  assert.equal(pub.errors.length, 0, 'no ERROR for the transaction frames');
});

brokerTest('a plain TCP STOMP client and a WebSocket client exchange messages', async ctx => {
  const server = await ctx.server();
  const ws = await ctx.client(server, { name: 'ws' });
  const inbox = await ws.subscribe('/topic/cross');

  const [host, port] = server.stompAddr.split(':');
  const tcp = net.connect(Number(port), host);
  ctx.t.after(() => tcp.destroy());
  let received = Buffer.alloc(0);
  tcp.on('data', chunk => {
    received = Buffer.concat([received, chunk]);
  });
  tcp.on('error', () => {});
  // Complete frames only: whatever follows the last NUL is still arriving.
  const frames = () =>
    received.toString('utf8').split('\0').slice(0, -1).map(f => f.replace(/^[\r\n]+/, ''));

  tcp.write('CONNECT\naccept-version:1.2\nhost:localhost\nlogin:tcp\npasscode:x\n\n\0');
  await until(() => frames().some(f => f.startsWith('CONNECTED\n')), 'CONNECTED over TCP');
  assert.ok(frames().find(f => f.startsWith('CONNECTED\n')).includes('\nversion:1.2\n'));

  tcp.write('SEND\ndestination:/topic/cross\ncontent-type:text/plain\nx-from:tcp\n\nfrom tcp\0');
  const m = await inbox.next();
  assert.equal(m.body, 'from tcp');
  assert.equal(m.headers['x-from'], 'tcp');
  assert.equal(m.headers.destination, '/topic/cross');
  assert.equal(m.headers['content-length'], '8');

  tcp.write('SUBSCRIBE\nid:t1\ndestination:/topic/cross-back\nreceipt:r-sub\n\n\0');
  await until(() => frames().some(f => f.startsWith('RECEIPT\n') && f.includes('receipt-id:r-sub')),
    'RECEIPT for the TCP SUBSCRIBE');
  await ws.send('/topic/cross-back', 'from ws', { 'x-from': 'ws' });
  await until(() => frames().some(f => f.startsWith('MESSAGE\n')), 'MESSAGE over TCP');
  const frame = frames().find(f => f.startsWith('MESSAGE\n'));
  const [head, body] = frame.split('\n\n');
  const headers = Object.fromEntries(head.split('\n').slice(1).map(l => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
  assert.equal(body, 'from ws');
  assert.equal(headers.destination, '/topic/cross-back');
  assert.equal(headers.subscription, 't1');
  assert.equal(headers['x-from'], 'ws');
  assert.ok(headers['message-id']);
});
