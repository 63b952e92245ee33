#!/usr/bin/env node
// Interop check of a running ringcast server with the Node.js `ws` client.
//
// Usage: node interop.js ws://127.0.0.1:PORT [--max-message-size BYTES]
//
// Checks, each printed as it passes:
//   1. fan-out: 100 connections to one room, 50 messages published by one of them,
//      every connection (the sender included) receives all 50, in order;
//   2. /echo: a 1 MiB binary message and a 200-fragment text message come back intact;
//   3. close codes: 1009 for a message over the server's limit, 1007 for invalid UTF-8
//      in a text frame (crafted on a raw `net` socket);
//   4. a clean close handshake: close 1000 "bye", the server's close frame echoes 1000,
//      and the server closes the TCP connection;
//   5. permessage-deflate (RFC 7692): in one room, a client with `perMessageDeflate`
//      (ws's default) gets a 4 KiB JSON-like room message compressed (RSV1 seen on the
//      wire) and intact, and a short one uncompressed; a client with
//      `perMessageDeflate: false` gets both as plain frames (RSV1 clear).
// Exits 0 when everything passed, 1 with a message on the first failure; the whole run
// is bounded by an overall timeout (60 s).
'use strict';

const crypto = require('crypto');
const net = require('net');

let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  console.error(
    `FAIL: the npm package 'ws' is not installed (${err.message}); ` +
      'install it with: npm ci --prefix tests/interop/node'
  );
  process.exit(2);
}
const wsVersion = require('ws/package.json').version;

const OVERALL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
const CONNECTIONS = 100;
const MESSAGES = 50;
const ROOM = `interop-node-${process.pid}`;
const INVALID_UTF8 = Buffer.from([
  0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
]);

class CheckFailed extends Error {}

function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

function ok(message) {
  console.log(`node ws ${wsVersion}: ok: ${message}`);
}

/** Reject after `ms` with a message naming the step. */
function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Open a client; resolves once the handshake is done. Records close code/reason and
 *  whether the server ended (FIN) the TCP connection. */
function open(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.serverFin = false;
    ws.closed = new Promise((resolveClosed) => {
      ws.on('close', (code, reason) => resolveClosed({ code, reason: reason.toString() }));
    });
    ws.on('upgrade', (res) => res.socket.on('end', () => (ws.serverFin = true)));
    ws.once('open', () => resolve(ws));
    ws.once('error', (err) => reject(new CheckFailed(`connect ${url}: ${err.message}`)));
  });
}

/** The next `count` messages on `ws` (as [data, isBinary]). */
function nextMessages(ws, count, what) {
  return new Promise((resolve, reject) => {
    const got = [];
    const onMessage = (data, isBinary) => {
      got.push([data, isBinary]);
      if (got.length === count) {
        ws.off('message', onMessage);
        resolve(got);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', (code) =>
      reject(new CheckFailed(`${what}: closed (${code}) after ${got.length} of ${count} messages`))
    );
  });
}

async function fanOut(base) {
  const url = `${base}/ws/${ROOM}`;
  const conns = [];
  try {
    for (let i = 0; i < CONNECTIONS; i++) {
      conns.push(await withTimeout(open(url), `fan-out: connection ${i}`));
    }
    const received = conns.map((ws, i) => nextMessages(ws, MESSAGES, `fan-out: connection ${i}`));
    for (let seq = 0; seq < MESSAGES; seq++) conns[0].send(`node-${seq}`);
    const all = await withTimeout(Promise.all(received), 'fan-out: receiving');
    const expected = Array.from({ length: MESSAGES }, (_, seq) => `node-${seq}`);
    all.forEach((msgs, i) => {
      const texts = msgs.map(([data, isBinary]) => (isBinary ? '<binary>' : data.toString()));
      check(
        JSON.stringify(texts) === JSON.stringify(expected),
        `fan-out: connection ${i} received ${JSON.stringify(texts.slice(0, 5))}... ` +
          `instead of ${JSON.stringify(expected.slice(0, 5))}... (all ${MESSAGES} in order)`
      );
    });
    ok(
      `fan-out: ${CONNECTIONS} connections in /ws/${ROOM} each received all ` +
        `${MESSAGES} messages in order (sender included)`
    );
  } finally {
    for (const ws of conns) ws.terminate();
  }
}

async function echo(base) {
  const ws = await withTimeout(open(`${base}/echo`), 'echo: connect');
  try {
    const payload = crypto.randomBytes(1 << 20);
    let next = nextMessages(ws, 1, 'echo: 1 MiB binary');
    ws.send(payload);
    let [[data, isBinary]] = await withTimeout(next, 'echo: 1 MiB binary');
    check(isBinary, 'echo: 1 MiB binary came back as text');
    check(Buffer.compare(data, payload) === 0, `echo: 1 MiB binary came back altered (${data.length} bytes)`);
    ok('echo: 1 MiB binary message came back intact');

    const fragments = Array.from({ length: 200 }, (_, i) => `frag${String(i).padStart(3, '0')}-é€😀;`);
    next = nextMessages(ws, 1, 'echo: fragmented text');
    fragments.forEach((chunk, i) => ws.send(chunk, { binary: false, fin: i === fragments.length - 1 }));
    [[data, isBinary]] = await withTimeout(next, 'echo: fragmented text');
    check(!isBinary, 'echo: fragmented text came back as binary');
    check(
      data.toString() === fragments.join(''),
      `echo: 200-fragment text came back altered (${data.length} bytes)`
    );
    ok(`echo: 200-fragment text message (${data.length} bytes) came back intact`);
  } finally {
    ws.terminate();
  }
}

async function tooBig(base, maxMessageSize) {
  const size = maxMessageSize + (1 << 20);
  const ws = await withTimeout(open(`${base}/echo`), 'over-size: connect');
  ws.on('message', () => {
    throw new CheckFailed(`over-size: a ${size}-byte message was echoed instead of closing with 1009`);
  });
  ws.on('error', () => {}); // a write after the server's close may fail: the code is what counts
  ws.send(Buffer.alloc(size));
  const { code, reason } = await withTimeout(ws.closed, 'over-size: waiting for the close');
  check(code === 1009, `over-size: close code ${code} (${JSON.stringify(reason)}), expected 1009`);
  ok(`close 1009 (${JSON.stringify(reason)}) for a ${size}-byte message (limit ${maxMessageSize})`);
}

function maskedFrame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  check(payload.length < 126, 'maskedFrame: short payloads only');
  const header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([header, mask, body]);
}

/** Parse unmasked server frames: [{opcode, payload}]. */
function parseFrames(bytes) {
  const frames = [];
  let at = 0;
  while (bytes.length - at >= 2) {
    const opcode = bytes[at] & 0x0f;
    let len = bytes[at + 1] & 0x7f;
    let hdr = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      hdr = 4;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at + 2));
      hdr = 10;
    }
    if (at + hdr + len > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(at + hdr, at + hdr + len) });
    at += hdr + len;
  }
  return frames;
}

async function invalidUtf8(base) {
  const { hostname, port, host } = new URL(base.replace(/^ws:/, 'http:'));
  const bytes = await withTimeout(
    new Promise((resolve, reject) => {
      const sock = net.connect({ host: hostname, port: Number(port) });
      let buf = Buffer.alloc(0);
      let upgraded = false;
      sock.on('connect', () => {
        const key = crypto.randomBytes(16).toString('base64');
        sock.write(
          `GET /echo HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`
        );
      });
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          if (!head.startsWith('HTTP/1.1 101')) {
            sock.destroy();
            reject(new CheckFailed(`invalid utf-8: upgrade refused: ${head.split('\r\n')[0]}`));
            return;
          }
          upgraded = true;
          buf = buf.subarray(end + 4);
          sock.write(maskedFrame(0x1, INVALID_UTF8));
        }
      });
      sock.on('error', (err) => (err.code === 'ECONNRESET' ? null : reject(err)));
      sock.on('close', () => resolve(buf));
    }),
    'invalid utf-8: waiting for the server to close'
  );
  const close = parseFrames(bytes).find((f) => f.opcode === 0x8);
  check(close, `invalid utf-8: no close frame before the TCP close (${bytes.length} bytes came)`);
  check(close.payload.length >= 2, 'invalid utf-8: close frame without a code');
  const code = close.payload.readUInt16BE(0);
  check(code === 1007, `invalid utf-8: close code ${code}, expected 1007`);
  ok(`close 1007 (${JSON.stringify(close.payload.subarray(2).toString())}) for invalid UTF-8 in a text frame`);
}

/** Record the first header byte of every server frame read on `socket` (RSV1 is 0x40),
 *  by scanning the raw bytes next to ws's own reader. */
function frameHeaders(socket) {
  const firstBytes = [];
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        hdr = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        hdr = 10;
      }
      if (buf.length < hdr + len) return;
      firstBytes.push(buf[0]);
      buf = buf.subarray(hdr + len);
    }
  });
  return firstBytes;
}

/** Open a client that records its server frames' first bytes as `ws.firstBytes`. */
async function openRecorded(url, options) {
  let firstBytes = null;
  const ws = new WebSocket(url, options);
  ws.on('upgrade', (res) => (firstBytes = frameHeaders(res.socket)));
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', (err) => reject(new CheckFailed(`connect ${url}: ${err.message}`)));
    }),
    `deflate: connect ${url}`
  );
  ws.firstBytes = firstBytes;
  return ws;
}

async function deflate(base) {
  const url = `${base}/ws/${ROOM}-deflate`;
  const compressed = await openRecorded(url, { perMessageDeflate: true });
  const plain = await openRecorded(url, { perMessageDeflate: false });
  try {
    check(
      /^permessage-deflate/.test(compressed.extensions),
      `deflate: extension not agreed (${JSON.stringify(compressed.extensions)})`
    );
    check(plain.extensions === '', `deflate: a client offering nothing got ${plain.extensions}`);
    let big = '';
    for (let i = 0; big.length < 4096; i++) {
      big += JSON.stringify({ id: i, type: 'trade', symbol: `SYM${i % 13}`, price: 100 + (i % 50) }) + ',';
    }
    big = big.slice(0, 4096);
    const got = [compressed, plain].map((ws, i) => nextMessages(ws, 2, `deflate: client ${i}`));
    plain.send(big);
    plain.send('short');
    const [z, p] = await withTimeout(Promise.all(got), 'deflate: receiving');
    for (const [name, msgs] of [['compressing', z], ['plain', p]]) {
      check(msgs[0][0].toString() === big && !msgs[0][1], `deflate: ${name} client got the 4 KiB text altered`);
      check(msgs[1][0].toString() === 'short', `deflate: ${name} client got the short text altered`);
    }
    const rsv1 = (b) => (b & 0x40) !== 0;
    check(
      compressed.firstBytes.length === 2 && rsv1(compressed.firstBytes[0]) && !rsv1(compressed.firstBytes[1]),
      `deflate: compressing client saw first bytes ${compressed.firstBytes.map((b) => b.toString(16))}, ` +
        'expected RSV1 on the 4 KiB message only'
    );
    check(
      plain.firstBytes.length === 2 && !plain.firstBytes.some(rsv1),
      `deflate: plain client saw first bytes ${plain.firstBytes.map((b) => b.toString(16))}`
    );
    ok(
      `permessage-deflate: ${JSON.stringify(compressed.extensions)} agreed; the 4 KiB room message ` +
        'came compressed (RSV1) and intact, the short one plain; a client offering nothing got ' +
        'both plain in the same room'
    );
  } finally {
    compressed.terminate();
    plain.terminate();
  }
}

async function cleanClose(base) {
  const ws = await withTimeout(open(`${base}/echo`, { closeTimeout: 5000 }), 'clean close: connect');
  const next = nextMessages(ws, 1, 'clean close: echo');
  ws.send('last words');
  const [[data]] = await withTimeout(next, 'clean close: echo');
  check(data.toString() === 'last words', 'clean close: echo');
  const started = Date.now();
  ws.close(1000, 'bye');
  const { code, reason } = await withTimeout(ws.closed, 'clean close: waiting for the close');
  const elapsed = Date.now() - started;
  check(code === 1000, `clean close: server's close code ${code} (${JSON.stringify(reason)}), expected 1000`);
  check(ws.serverFin, 'clean close: the server did not close the TCP connection (no FIN)');
  // ws ends its side after the handshake and waits closeTimeout (5 s) for the server's FIN.
  check(elapsed < 4000, `clean close: took ${elapsed} ms: the server did not close TCP`);
  ok(
    `clean close: sent 1000 'bye', server answered ${code} ${JSON.stringify(reason)}, ` +
      `TCP closed by the server in ${elapsed} ms`
  );
}

async function main() {
  const args = process.argv.slice(2);
  if (!args[0] || !args[0].startsWith('ws://')) {
    console.error('usage: node interop.js ws://HOST:PORT [--max-message-size BYTES]');
    process.exit(2);
  }
  const base = args[0].replace(/\/+$/, '');
  const at = args.indexOf('--max-message-size');
  const maxMessageSize = at >= 0 ? Number(args[at + 1]) : 2 << 20;

  const overall = setTimeout(() => {
    console.error(`FAIL (node ws): timed out (overall limit ${OVERALL_TIMEOUT_MS / 1000} s)`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);

  await fanOut(base);
  await echo(base);
  await tooBig(base, maxMessageSize);
  await invalidUtf8(base);
  await cleanClose(base);
  await deflate(base);
  clearTimeout(overall);
  console.log('node ws: all checks passed');
}

process.on('uncaughtException', (err) => {
  console.error(`FAIL (node ws): ${err instanceof CheckFailed ? '' : err.name + ': '}${err.message}`);
  process.exit(1);
});

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`FAIL (node ws): ${err instanceof CheckFailed ? '' : err.name + ': '}${err.message}`);
    process.exit(1);
  }
);
