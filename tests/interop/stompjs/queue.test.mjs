// Point-to-point queues as @stomp/stompjs sees them over WebSocket: competing consumers in
// round robin, ack modes, NACK and disconnect redelivery, prefetch-count.

import assert from 'node:assert/strict';

import { brokerTest, sleep, until } from './harness.mjs';

/** ACK or NACK with a receipt and wait for it, so the server has processed it. */
async function settle(client, message, kind, receiptId) {
  const got = client.receipt(receiptId);
  message[kind]({ receipt: receiptId });
  const r = await got;
  assert.equal(r.headers['receipt-id'], receiptId);
}

function isRedelivered(message) {
  return message.headers.redelivered === 'true';
}

brokerTest('queue: competing consumers get messages round robin, each exactly once', async ctx => {
  const server = await ctx.server();
  const consumers = [];
  for (let i = 0; i < 3; i++) {
    const c = await ctx.client(server, { name: `worker-${i}` });
    consumers.push(await c.subscribe('/queue/jobs'));
  }
  const producer = await ctx.client(server, { name: 'producer' });

  const total = 9;
  for (let n = 0; n < total; n++) {
    await producer.send('/queue/jobs', `job-${n}`);
  }
  const received = () => consumers.reduce((sum, inbox) => sum + inbox.messages.length, 0);
  await until(() => received() >= total, `all ${total} queue messages to be consumed`);
  const owner = new Map(); // body -> consumer index
  consumers.forEach((inbox, i) => {
    for (const m of inbox.messages.splice(0)) {
      assert.ok(!owner.has(m.body), `${m.body} delivered twice (to ${owner.get(m.body)} and ${i})`);
      owner.set(m.body, i);
      assert.equal(m.headers.destination, '/queue/jobs');
    }
  });
  assert.equal(owner.size, total, 'every message delivered');
  for (const inbox of consumers) await inbox.expectNone(100);

  const order = Array.from({ length: total }, (_, n) => owner.get(`job-${n}`));
  const counts = [0, 1, 2].map(i => order.filter(x => x === i).length);
  assert.deepEqual(counts, [3, 3, 3], `each consumer gets a third (assignment ${order})`);
  assert.equal(new Set(order.slice(0, 3)).size, 3, `first three go to three consumers (${order})`);
  for (let n = 3; n < total; n++) {
    assert.equal(order[n], order[n % 3], `round robin: job-${n} (assignment ${order})`);
  }
});

brokerTest('queue: client-individual ACK and NACK; NACK redelivers with redelivered:true', async ctx => {
  const server = await ctx.server();
  const consumer = await ctx.client(server, { name: 'consumer' });
  const producer = await ctx.client(server, { name: 'producer' });
  const inbox = await consumer.subscribe('/queue/work', { ack: 'client-individual' });

  await producer.send('/queue/work', 'm1', { 'x-n': '1' });
  await producer.send('/queue/work', 'm2', { 'x-n': '2' });
  const [first, second] = await inbox.take(2);
  assert.deepEqual([first.body, second.body], ['m1', 'm2'], 'FIFO to a single consumer');
  for (const m of [first, second]) {
    assert.ok(m.headers.ack, `MESSAGE in client-individual mode carries an ack header (${m.body})`);
    assert.equal(m.headers.subscription, inbox.subscription.id);
    assert.ok(!isRedelivered(m), `first delivery is not marked redelivered (${m.body})`);
  }
  assert.notEqual(first.headers.ack, second.headers.ack, 'ack ids are distinct');

  // ACK the second only: client-individual must not ack the first with it.
  await settle(consumer, second, 'ack', 'ack-m2');
  await settle(consumer, first, 'nack', 'nack-m1');

  const again = await inbox.next();
  assert.equal(again.body, 'm1', 'the NACKed message comes back');
  assert.equal(again.headers.redelivered, 'true', 'redelivered:true on redelivery');
  assert.equal(again.headers['x-n'], '1', 'custom headers survive redelivery');
  assert.ok(again.headers.ack, 'redelivery carries an ack header');
  await settle(consumer, again, 'ack', 'ack-m1');
  await inbox.expectNone();

  // Everything is acknowledged: a new consumer after a disconnect gets nothing.
  await consumer.disconnect();
  const later = await ctx.client(server, { name: 'later' });
  const laterInbox = await later.subscribe('/queue/work', { ack: 'client-individual' });
  await laterInbox.expectNone();
});

brokerTest('queue: unacknowledged messages are redelivered after DISCONNECT', async ctx => {
  const server = await ctx.server();
  const producer = await ctx.client(server, { name: 'producer' });
  const first = await ctx.client(server, { name: 'first' });
  const firstInbox = await first.subscribe('/queue/redeliver', { ack: 'client-individual' });

  await producer.send('/queue/redeliver', 'u1');
  const m = await firstInbox.next();
  assert.equal(m.body, 'u1');
  assert.ok(!isRedelivered(m));
  await first.disconnect(); // no ACK

  const second = await ctx.client(server, { name: 'second' });
  const secondInbox = await second.subscribe('/queue/redeliver', { ack: 'client-individual' });
  const again = await secondInbox.next();
  assert.equal(again.body, 'u1');
  assert.equal(again.headers.redelivered, 'true');
  await settle(second, again, 'ack', 'ack-u1');
});

brokerTest('queue: a dropped connection (no DISCONNECT) also redelivers', async ctx => {
  const server = await ctx.server();
  const producer = await ctx.client(server, { name: 'producer' });
  const first = await ctx.client(server, { name: 'first' });
  const firstInbox = await first.subscribe('/queue/dropped', { ack: 'client' });
  await producer.send('/queue/dropped', 'd1');
  assert.equal((await firstInbox.next()).body, 'd1');
  await first.drop();

  const second = await ctx.client(server, { name: 'second' });
  const secondInbox = await second.subscribe('/queue/dropped', { ack: 'client' });
  const again = await secondInbox.next();
  assert.equal(again.body, 'd1');
  assert.equal(again.headers.redelivered, 'true');
});

brokerTest('queue: client ack mode is cumulative', async ctx => {
  const server = await ctx.server();
  const producer = await ctx.client(server, { name: 'producer' });
  const consumer = await ctx.client(server, { name: 'consumer' });
  const inbox = await consumer.subscribe('/queue/cumulative', { ack: 'client' });
  for (const body of ['c1', 'c2', 'c3']) await producer.send('/queue/cumulative', body);
  const got = await inbox.take(3);
  assert.deepEqual(got.map(m => m.body), ['c1', 'c2', 'c3']);
  // ACK of c2 in client mode acknowledges c1 and c2, not c3.
  await settle(consumer, got[1], 'ack', 'ack-c2');
  await consumer.disconnect();

  const next = await ctx.client(server, { name: 'next' });
  const nextInbox = await next.subscribe('/queue/cumulative', { ack: 'client' });
  const again = await nextInbox.next();
  assert.equal(again.body, 'c3', 'only the unacknowledged c3 comes back');
  assert.equal(again.headers.redelivered, 'true');
  await nextInbox.expectNone();
});

brokerTest('queue: prefetch-count bounds the unacknowledged messages in flight', async ctx => {
  const server = await ctx.server();
  const producer = await ctx.client(server, { name: 'producer' });
  const consumer = await ctx.client(server, { name: 'consumer' });
  const inbox = await consumer.subscribe('/queue/prefetch', {
    ack: 'client-individual',
    'prefetch-count': '1',
  });
  for (const body of ['p1', 'p2', 'p3']) await producer.send('/queue/prefetch', body);

  for (const body of ['p1', 'p2', 'p3']) {
    const m = await inbox.next();
    assert.equal(m.body, body);
    await inbox.expectNone(300); // the next one waits for our ACK
    await settle(consumer, m, 'ack', `ack-${body}`);
  }
  await inbox.expectNone(200);
});

brokerTest('queue: messages sent before anyone subscribes wait for a consumer', async ctx => {
  const server = await ctx.server();
  const producer = await ctx.client(server, { name: 'producer' });
  await producer.send('/queue/backlog', 'early-1');
  await producer.send('/queue/backlog', 'early-2');
  await sleep(100);
  const consumer = await ctx.client(server, { name: 'consumer' });
  const inbox = await consumer.subscribe('/queue/backlog');
  const got = await inbox.take(2);
  assert.deepEqual(got.map(m => m.body), ['early-1', 'early-2']);
});
