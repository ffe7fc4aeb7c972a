// A small STOMP 1.2 client over WebSocket for the dashboard: frames, receipts, heart-beats,
// and reconnection with back-off that re-subscribes on its own. No dependency, so the page
// works offline from the binary.

const NUL = '\u0000';

function escapeHeader(value) {
  return String(value)
    .replace(/\\/g, '\\\\')
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n')
    .replace(/:/g, '\\c');
}

function unescapeHeader(value) {
  return value.replace(/\\(.)/g, (_, c) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' })[c] ?? c);
}

function encode(command, headers, body = '') {
  let text = command + '\n';
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && value !== null) text += `${escapeHeader(name)}:${escapeHeader(value)}\n`;
  }
  return text + '\n' + body + NUL;
}

/** Splits a buffer into frames; returns [frames, rest]. */
function decode(buffer) {
  const frames = [];
  for (;;) {
    // Heart-beats between frames.
    buffer = buffer.replace(/^[\r\n]+/, '');
    const headEnd = buffer.indexOf('\n\n');
    if (headEnd < 0) break;
    const lines = buffer.slice(0, headEnd).split('\n').map(l => l.replace(/\r$/, ''));
    const command = lines.shift();
    const headers = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = unescapeHeader(line.slice(0, colon));
      if (!(name in headers)) headers[name] = unescapeHeader(line.slice(colon + 1));
    }
    const bodyStart = headEnd + 2;
    let bodyEnd;
    if (headers['content-length'] !== undefined) {
      // Lengths count UTF-8 bytes; the dashboard's bodies are JSON, so measure them as such.
      const want = Number(headers['content-length']);
      let bytes = 0;
      let i = bodyStart;
      const encoder = new TextEncoder();
      while (i < buffer.length && bytes < want) {
        bytes += encoder.encode(buffer[i]).length;
        i += 1;
      }
      if (bytes < want || buffer[i] !== NUL) break;
      bodyEnd = i;
    } else {
      bodyEnd = buffer.indexOf(NUL, bodyStart);
      if (bodyEnd < 0) break;
    }
    frames.push({ command, headers, body: buffer.slice(bodyStart, bodyEnd) });
    buffer = buffer.slice(bodyEnd + 1);
  }
  return [frames, buffer];
}

export class Stomp {
  /**
   * @param {string} url  ws:// URL of the broker
   * @param {{login?: string, passcode?: string}} credentials
   * @param {{onConnect?: Function, onDisconnect?: Function, onError?: Function}} events
   */
  constructor(url, credentials, events = {}) {
    this.url = url;
    this.credentials = credentials;
    this.events = events;
    this.subscriptions = new Map();
    this.receipts = new Map();
    this.nextId = 1;
    this.backoff = 500;
    this.closed = false;
    this.connected = false;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.url, ['v12.stomp']);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    const text = new TextDecoder();
    let buffer = '';
    socket.onopen = () => {
      socket.send(encode('CONNECT', {
        'accept-version': '1.2',
        host: location.hostname,
        login: this.credentials.login,
        passcode: this.credentials.passcode,
        'heart-beat': '10000,0',
      }));
    };
    socket.onmessage = message => {
      buffer += typeof message.data === 'string' ? message.data : text.decode(message.data, { stream: true });
      const [frames, rest] = decode(buffer);
      buffer = rest;
      for (const frame of frames) this.handle(frame);
    };
    socket.onclose = () => {
      const was = this.connected;
      this.connected = false;
      clearInterval(this.beat);
      for (const [, pending] of this.receipts) pending.reject(new Error('connection lost'));
      this.receipts.clear();
      if (was) this.events.onDisconnect?.();
      if (this.closed) return;
      // Back off, with jitter, up to 10 s between attempts.
      const wait = this.backoff * (0.8 + Math.random() * 0.4);
      this.backoff = Math.min(this.backoff * 2, 10_000);
      setTimeout(() => this.connect(), wait);
    };
  }

  handle(frame) {
    switch (frame.command) {
      case 'CONNECTED':
        this.connected = true;
        this.backoff = 500;
        this.beat = setInterval(() => {
          if (this.socket.readyState === WebSocket.OPEN) this.socket.send('\n');
        }, 10_000);
        for (const [id, sub] of this.subscriptions) this.sendSubscribe(id, sub);
        this.events.onConnect?.();
        break;
      case 'MESSAGE': {
        const sub = this.subscriptions.get(frame.headers.subscription);
        sub?.handler(frame);
        break;
      }
      case 'RECEIPT': {
        const pending = this.receipts.get(frame.headers['receipt-id']);
        this.receipts.delete(frame.headers['receipt-id']);
        pending?.resolve(frame);
        break;
      }
      case 'ERROR':
        this.events.onError?.(frame.headers.message || 'error', frame.body);
        break;
      default:
        break;
    }
  }

  sendSubscribe(id, sub) {
    this.socket.send(encode('SUBSCRIBE', { id, destination: sub.destination, ack: 'auto', ...sub.headers() }));
  }

  /**
   * Subscribes to `destination`; `headers` is called at each (re)subscription, so that a
   * resumed subscription can say where it stopped (`since-seq`). Returns the id.
   */
  subscribe(destination, handler, headers = () => ({})) {
    const id = `s${this.nextId++}`;
    const sub = { destination, handler, headers };
    this.subscriptions.set(id, sub);
    if (this.connected) this.sendSubscribe(id, sub);
    return id;
  }

  unsubscribe(id) {
    this.subscriptions.delete(id);
    if (this.connected) this.socket.send(encode('UNSUBSCRIBE', { id }));
  }

  /** SEND with a receipt; resolves with the RECEIPT frame. */
  send(destination, body = '', headers = {}) {
    if (!this.connected) return Promise.reject(new Error('not connected'));
    const receipt = `r${this.nextId++}`;
    const done = new Promise((resolve, reject) => this.receipts.set(receipt, { resolve, reject }));
    this.socket.send(encode('SEND', { destination, receipt, 'content-type': 'application/json', ...headers }, body));
    return done;
  }

  /** Drops the socket as a network failure would (for tests); reconnection follows. */
  drop() {
    this.socket.close();
  }

  close() {
    this.closed = true;
    if (this.connected) this.socket.send(encode('DISCONNECT', {}));
    this.socket.close();
  }
}
