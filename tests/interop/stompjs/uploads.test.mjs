// Resumable uploads with a real tus client (tus-js-client from npm) over a network that breaks:
// a proxy between the client and stompede cuts the connection once, mid-upload, and the client
// must go on from the offset the server kept, not from zero.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

import * as tus from 'tus-js-client';

import { brokerTest, within } from './harness.mjs';

/**
 * A TCP proxy to `target` that destroys the connection carrying client bytes past `cutAfter`,
 * once. Counts every byte it forwards from clients.
 */
async function flakyProxy(target, cutAfter) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const state = { forwarded: 0, cut: false };
  const server = net.createServer(client => {
    const upstream = net.connect(port, host);
    client.on('data', chunk => {
      state.forwarded += chunk.length;
      if (!state.cut && state.forwarded > cutAfter) {
        state.cut = true;
        // Deliver what fits below the cut, then break both sides as a dropped network would.
        upstream.write(chunk.subarray(0, chunk.length - (state.forwarded - cutAfter)), () => {
          upstream.destroy();
          client.destroy();
        });
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', chunk => client.write(chunk));
    for (const socket of [client, upstream]) {
      socket.on('error', () => {});
      socket.on('close', () => (socket === client ? upstream : client).destroy());
    }
  });
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${server.address().port}`;
  state.close = () => new Promise(resolve => server.close(resolve));
  return state;
}

function upload(file, options) {
  return new Promise((resolve, reject) => {
    const offsets = [];
    const u = new tus.Upload(file, {
      ...options,
      metadata: { filename: 'scan.tif', filetype: 'image/tiff' },
      headers: { Authorization: 'Basic ' + Buffer.from('ann:pw').toString('base64') },
      onChunkComplete: (_size, accepted) => offsets.push(accepted),
      onSuccess: () => resolve({ url: u.url, offsets }),
      onError: reject,
    });
    u.start();
  });
}

brokerTest('tus-js-client resumes an upload cut off mid-way, from the offset the server kept', async ctx => {
  const server = await ctx.server({ users: ['ann:pw', 'bob:pw'] });
  const size = 6 * 1024 * 1024;
  const file = randomBytes(size);
  const proxy = await flakyProxy(server.httpAddr, 2.5 * 1024 * 1024);
  try {
    const done = await within(
      upload(file, {
        endpoint: `${proxy.url}/api/uploads/tus`,
        retryDelays: [0, 200, 500],
        chunkSize: 2 * 1024 * 1024,
      }),
      'the upload',
      30_000,
    );
    assert.ok(proxy.cut, 'the proxy cut the connection once');
    // Not restarted from zero: the bytes sent again are at most the one chunk that broke.
    assert.ok(
      proxy.forwarded < size + 2.5 * 1024 * 1024,
      `forwarded ${proxy.forwarded} bytes for a ${size}-byte file`,
    );
    assert.equal(done.offsets.at(-1), size);

    // It is an ordinary upload now, whole, under the id in its URL.
    const id = done.url.split('/').pop();
    const auth = { Authorization: 'Basic ' + Buffer.from('ann:pw').toString('base64') };
    const info = await (await fetch(`http://${server.httpAddr}/api/uploads/${id}`, { headers: auth })).json();
    assert.equal(info.size, size);
    assert.equal(info.name, 'scan.tif');
    assert.equal(info.sha256, createHash('sha256').update(file).digest('hex'));

    // Another user cannot resume or read it.
    const other = { Authorization: 'Basic ' + Buffer.from('bob:pw').toString('base64') };
    const head = await fetch(`http://${server.httpAddr}/api/uploads/tus/${id}`, {
      method: 'HEAD',
      headers: { ...other, 'Tus-Resumable': '1.0.0' },
    });
    assert.equal(head.status, 404);
  } finally {
    await proxy.close();
  }
});
