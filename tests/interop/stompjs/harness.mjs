// Shared plumbing for the @stomp/stompjs interop tests: start a real `stompede serve` process on
// port 0, connect real stompjs clients to it over WebSocket, and wait for things with bounded
// timeouts so that a broken broker makes a test fail instead of hang.
//
// Not a test file itself (node --test only picks up `*.test.mjs`).

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';

import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

/** Debian's chromium (scripts/test.sh installs it), never a downloaded browser. */
export function chromiumPath() {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch {
      // try the next name
    }
  }
  throw new Error('chromium is not installed: scripts/test.sh installs it (apt-get install chromium)');
}

/** How long any single wait may take before the test fails. */
export const WAIT_MS = 10_000;

/** How long we watch for a message that must NOT arrive. */
export const QUIET_MS = 500;

/** The three STOMP-over-WebSocket subprotocols, most preferred first. */
export const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

/**
 * Race `promise` against a timer; rejects with a message naming `what` when the timer wins.
 */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Poll `predicate` until it is truthy, failing after `ms`. */
export async function until(predicate, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await sleep(10);
  }
}

function stompedeBin() {
  const bin = process.env.STOMPEDE_BIN;
  if (!bin) {
    throw new Error(
      'STOMPEDE_BIN is not set: it must point at the stompede binary ' +
        '(scripts/test.sh and `cargo test --test interop` set it)',
    );
  }
  return bin;
}

/**
 * The server's environment: ours minus `STOMPEDE_*` settings (the binary reads them as defaults
 * for its flags), except `STOMPEDE_LOG`, which is handy when debugging a failure.
 */
function serverEnv() {
  const env = { RUST_BACKTRACE: '1', NO_COLOR: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('STOMPEDE_') || key === 'STOMPEDE_LOG') env[key] = value;
  }
  return env;
}

/** One running `stompede serve` process. */
export class Server {
  constructor(child, listening, dataDir, ownsDataDir, stderrLines) {
    this.child = child;
    /** The parsed `{"event":"listening",...}` line. */
    this.listening = listening;
    this.dataDir = dataDir;
    this.ownsDataDir = ownsDataDir;
    this.stderrLines = stderrLines;
    this.exit = new Promise(resolve => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve({ code: child.exitCode, signal: child.signalCode });
      } else {
        child.once('exit', (code, signal) => resolve({ code, signal }));
      }
    });
  }

  /** `ws://127.0.0.1:PORT/ws` */
  get wsUrl() {
    return this.listening.ws;
  }

  get stompAddr() {
    return this.listening.stomp;
  }

  get httpAddr() {
    return this.listening.http;
  }

  /** The last lines the server wrote to stderr, for failure reports. */
  stderrTail(lines = 80) {
    return this.stderrLines.slice(-lines).join('\n');
  }

  /**
   * SIGTERM, then wait up to `ms` for the process to exit; SIGKILL if it does not.
   * Resolves to `{code, signal, killed}`.
   */
  async stop(ms = 5_000) {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
    }
    let killed = false;
    let timer;
    const status = await Promise.race([
      this.exit,
      new Promise(resolve => {
        timer = setTimeout(() => resolve(null), ms);
      }),
    ]);
    clearTimeout(timer);
    if (status === null) {
      killed = true;
      this.child.kill('SIGKILL');
      return { ...(await this.exit), killed };
    }
    return { ...status, killed };
  }

  /** Remove the temp data dir (if this server created it) and the temp config file. */
  async removeDataDir() {
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
    if (this.configDir) await rm(this.configDir, { recursive: true, force: true });
  }
}

/**
 * Start `stompede serve` on port 0 (or the given addresses) with a fresh temp data dir, and wait
 * for its listening line.
 *
 * @param {object} opts
 * @param {string[]} [opts.users]     `name:password` entries, each passed as `--user`
 * @param {string}   [opts.heartbeat] `SX,SY` for `--heartbeat`
 * @param {string}   [opts.stomp]     address for `--stomp` (default `127.0.0.1:0`)
 * @param {string}   [opts.http]      address for `--http` (default `127.0.0.1:0`)
 * @param {string}   [opts.dataDir]   reuse this data dir (a restart) instead of a fresh one
 * @param {string}   [opts.config]    TOML text, written to a temp file and passed as `--config`
 */
export async function startServer(opts = {}) {
  const bin = stompedeBin();
  const ownsDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'stompede-interop-')));
  const args = [
    'serve',
    '--data-dir', dataDir,
    '--stomp', opts.stomp ?? '127.0.0.1:0',
    '--http', opts.http ?? '127.0.0.1:0',
  ];
  for (const user of opts.users ?? []) args.push('--user', user);
  if (opts.heartbeat) args.push('--heartbeat', opts.heartbeat);
  let configDir;
  if (opts.config !== undefined) {
    configDir = await mkdtemp(path.join(tmpdir(), 'stompede-interop-config-'));
    const file = path.join(configDir, 'stompede.toml');
    await writeFile(file, opts.config);
    args.push('--config', file);
  }

  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: serverEnv(),
  });
  const stderrLines = [];
  createInterface({ input: child.stderr }).on('line', line => {
    stderrLines.push(line);
    if (stderrLines.length > 2000) stderrLines.shift();
  });
  const stdoutLines = createInterface({ input: child.stdout });

  const firstLine = new Promise((resolve, reject) => {
    stdoutLines.once('line', resolve);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`stompede exited (code ${code}, signal ${signal}) before printing its listening line`)),
    );
  });

  const fail = async message => {
    child.kill('SIGKILL');
    await sleep(100); // let stderr drain so the report shows why
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    if (configDir) await rm(configDir, { recursive: true, force: true });
    return new Error(
      `${message}\ncommand: ${bin} ${args.join(' ')}\n--- server stderr ---\n${stderrLines.join('\n')}`,
    );
  };

  let line;
  try {
    line = await within(firstLine, 'the listening line on stdout');
  } catch (err) {
    throw await fail(err.message);
  }

  let listening;
  try {
    listening = JSON.parse(line);
  } catch {
    throw await fail(`first stdout line is not JSON: ${JSON.stringify(line)}`);
  }
  if (
    listening.event !== 'listening' ||
    !/^127\.0\.0\.1:\d+$/.test(listening.stomp ?? '') ||
    !/^127\.0\.0\.1:\d+$/.test(listening.http ?? '') ||
    !/^ws:\/\/127\.0\.0\.1:\d+\/ws$/.test(listening.ws ?? '')
  ) {
    throw await fail(`unexpected listening line: ${line}`);
  }
  // Anything else on stdout is a contract violation we want to see, not lose.
  stdoutLines.on('line', extra => stderrLines.push(`[unexpected stdout] ${extra}`));
  const server = new Server(child, listening, dataDir, ownsDataDir, stderrLines);
  server.configDir = configDir;
  return server;
}

/**
 * A subscription's inbox: messages queue up here and tests take them with bounded waits.
 */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.messages = [];
    this.waiters = [];
    this.subscription = undefined;
  }

  push(message) {
    this.messages.push(message);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Take the next message, waiting up to `ms`. */
  async next(ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    while (this.messages.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms}ms waiting for a message on ${this.label}`);
      await new Promise(resolve => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.messages.shift();
  }

  /** Take exactly `n` messages. */
  async take(n, ms = WAIT_MS) {
    const out = [];
    const deadline = Date.now() + ms;
    for (let i = 0; i < n; i++) out.push(await this.next(Math.max(1, deadline - Date.now())));
    return out;
  }

  /** Assert that nothing arrives within `ms`. */
  async expectNone(ms = QUIET_MS) {
    await sleep(ms);
    if (this.messages.length > 0) {
      const m = this.messages[0];
      throw new Error(
        `expected no message on ${this.label}, got ${this.messages.length}; first: ` +
          `${JSON.stringify(m.headers)} body=${JSON.stringify(m.body)}`,
      );
    }
  }
}

let receiptCounter = 0;
function nextReceipt(prefix) {
  receiptCounter += 1;
  return `${prefix}-${process.pid}-${receiptCounter}`;
}

/**
 * A real @stomp/stompjs Client wired for tests: every raw WebSocket message is recorded (kind and
 * first line), debug output is kept for failure reports, and connect/receipt waits are promises.
 */
export class TestClient {
  /**
   * @param {Server|string} server   a Server, or a ws:// url
   * @param {object} opts
   */
  constructor(server, opts = {}) {
    this.url = typeof server === 'string' ? server : server.wsUrl;
    this.name = opts.name ?? opts.login ?? 'client';
    this.protocols = opts.protocols ?? SUBPROTOCOLS;
    /** Every raw WebSocket message received: {binary, heartbeat, firstLine, head, at}. */
    this.raw = [];
    this.heartbeatsSeen = 0;
    this.debugLines = [];
    this.connectedFrames = [];
    this.errors = [];
    this.closes = [];
    /** RECEIPT frames that answered our DISCONNECT. */
    this.disconnectFrames = [];
    /** The WebSocket of the current connection (stompjs opens a new one per (re)connect). */
    this.socket = undefined;
    this.sockets = [];
    this._connectWaiters = [];
    this._receiptWaiters = [];

    const connectHeaders = {};
    if (opts.login !== undefined) connectHeaders.login = opts.login;
    if (opts.passcode !== undefined) connectHeaders.passcode = opts.passcode;
    Object.assign(connectHeaders, opts.connectHeaders ?? {});

    const config = {
      webSocketFactory: () => this._openSocket(),
      connectHeaders,
      reconnectDelay: opts.reconnectDelay ?? 0,
      heartbeatIncoming: opts.heartbeatIncoming ?? 0,
      heartbeatOutgoing: opts.heartbeatOutgoing ?? 0,
      connectionTimeout: opts.connectionTimeout ?? 0,
      debug: line => {
        this.debugLines.push(`${new Date().toISOString()} ${line}`);
        if (this.debugLines.length > 400) this.debugLines.shift();
      },
      onConnect: frame => {
        this.connectedFrames.push(frame);
        if (opts.onConnect) opts.onConnect(frame, this);
        for (const waiter of this._connectWaiters.splice(0)) waiter.resolve(frame);
      },
      onStompError: frame => {
        this.errors.push(frame);
        for (const waiter of [...this._connectWaiters.splice(0), ...this._receiptWaiters.splice(0)]) {
          waiter.reject(
            new Error(`${this.name}: ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`),
          );
        }
      },
      onDisconnect: frame => {
        this.disconnectFrames.push(frame);
      },
      onWebSocketClose: evt => {
        this.closes.push({ code: evt?.code, reason: evt?.reason, at: Date.now() });
      },
    };
    if (opts.versions) config.stompVersions = new Versions(opts.versions);
    this.client = new Client(config);
  }

  _openSocket() {
    const ws = new WebSocket(this.url, this.protocols);
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
      const heartbeat = buf.length > 0 && /^(\r?\n)+$/.test(buf.toString('latin1'));
      if (heartbeat) this.heartbeatsSeen += 1;
      const nl = buf.indexOf(0x0a);
      const headEnd = buf.indexOf('\n\n');
      this.raw.push({
        binary: isBinary,
        heartbeat,
        firstLine: buf.subarray(0, nl < 0 ? buf.length : nl).toString('latin1').replace(/\r$/, ''),
        // command and header lines exactly as they came over the wire (still escaped)
        head: buf.subarray(0, headEnd < 0 ? Math.min(buf.length, 4096) : headEnd).toString('utf8'),
        at: Date.now(),
      });
    });
    this.socket = ws;
    this.sockets.push(ws);
    return ws;
  }

  /** Resolve on the next CONNECTED frame (reject on ERROR or timeout). */
  nextConnect(ms = WAIT_MS) {
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    return within(p, `${this.name} to receive CONNECTED`, ms);
  }

  /** Activate and wait for CONNECTED. */
  async connect(ms = WAIT_MS) {
    const p = this.nextConnect(ms);
    this.client.activate();
    return p;
  }

  /** Resolve with the RECEIPT frame for `id`; reject if an ERROR frame comes instead. */
  receipt(id, ms = WAIT_MS) {
    const p = new Promise((resolve, reject) => {
      const waiter = {
        resolve: frame => {
          this._receiptWaiters = this._receiptWaiters.filter(w => w !== waiter);
          resolve(frame);
        },
        reject,
      };
      this._receiptWaiters.push(waiter);
      this.client.watchForReceipt(id, waiter.resolve);
    });
    return within(p, `${this.name} to receive RECEIPT ${id}`, ms);
  }

  /** Subscribe with a `receipt` header and wait for the receipt, so the subscription is live. */
  async subscribe(destination, headers = {}, onMessage = undefined) {
    const inbox = new Inbox(`${this.name}:${destination}`);
    const receiptId = nextReceipt('sub');
    const got = this.receipt(receiptId);
    inbox.subscription = this.client.subscribe(
      destination,
      message => {
        inbox.push(message);
        if (onMessage) onMessage(message);
      },
      { ...headers, receipt: receiptId },
    );
    const frame = await got;
    if (frame.headers['receipt-id'] !== receiptId) {
      throw new Error(`receipt-id ${frame.headers['receipt-id']} != ${receiptId}`);
    }
    return inbox;
  }

  /** SEND with a `receipt` header and wait for it. */
  async send(destination, body, headers = {}) {
    const receiptId = nextReceipt('send');
    const got = this.receipt(receiptId);
    this.client.publish({ destination, body, headers: { ...headers, receipt: receiptId } });
    return got;
  }

  /** SEND a binary body with a `receipt` header and wait for it. */
  async sendBinary(destination, binaryBody, headers = {}) {
    const receiptId = nextReceipt('send');
    const got = this.receipt(receiptId);
    this.client.publish({ destination, binaryBody, headers: { ...headers, receipt: receiptId } });
    return got;
  }

  /** DISCONNECT (stompjs waits for the DISCONNECT receipt) and wait for the socket to close. */
  async disconnect(ms = WAIT_MS) {
    await within(this.client.deactivate(), `${this.name} to deactivate`, ms);
  }

  /** Drop the connection without DISCONNECT. */
  async drop(ms = WAIT_MS) {
    await within(this.client.deactivate({ force: true }), `${this.name} to drop`, ms);
  }

  debugTail(lines = 40) {
    return this.debugLines.slice(-lines).join('\n');
  }
}

/**
 * Define a test that gets a fresh `ctx` with helpers; every server and client it made is torn
 * down afterwards, and a failure carries the servers' stderr and the clients' debug tails.
 *
 * ctx.server(opts) -> Server          (started, registered for cleanup)
 * ctx.client(server, opts) -> TestClient (connected unless opts.connect === false)
 */
export function brokerTest(name, fn, { timeout = 60_000 } = {}) {
  test(name, { timeout }, async t => {
    const servers = [];
    const clients = [];
    const ctx = {
      t,
      servers,
      clients,
      async server(opts) {
        const s = await startServer(opts);
        servers.push(s);
        return s;
      },
      async client(server, opts = {}) {
        const c = new TestClient(server, opts);
        clients.push(c);
        if (opts.connect !== false) await c.connect();
        return c;
      },
    };
    try {
      await fn(ctx);
    } catch (err) {
      const report = [];
      for (const s of servers) {
        report.push(`--- stompede stderr (${s.listening.ws}) ---\n${s.stderrTail()}`);
      }
      for (const c of clients) {
        report.push(`--- stompjs debug tail (${c.name}) ---\n${c.debugTail()}`);
      }
      if (err instanceof Error) {
        err.message = `${err.message}\n${report.join('\n')}`;
      }
      throw err;
    } finally {
      for (const c of clients) {
        try {
          await within(c.client.deactivate({ force: true }), 'client cleanup', 2_000);
        } catch {
          // cleanup only
        }
      }
      for (const s of servers) {
        await s.stop();
        await s.removeDataDir();
      }
    }
  });
}

export { sleep };
