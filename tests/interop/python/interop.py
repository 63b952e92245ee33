#!/usr/bin/env python3
"""Interop check of a running ringcast server with the Python `websockets` client.

Usage: interop.py ws://127.0.0.1:PORT [--max-message-size BYTES]
       interop.py wss://127.0.0.1:PORT --ca-file CERT.pem [--max-message-size BYTES]

Over wss:// every connection (the raw sockets too) is TLS, trusting CERT.pem only.

Checks, each printed as it passes:
  1. fan-out: 100 connections to one room, 50 messages published by one of them,
     every connection (the sender included) receives all 50, in order;
  2. /echo: a 1 MiB binary message and a 200-fragment text message come back intact;
  3. close codes: 1009 for a message over the server's limit, 1007 for invalid UTF-8
     in a text frame (crafted on a raw socket);
  4. a clean close handshake: close 1000 "bye", the server's close frame echoes 1000,
     and the server closes the TCP connection;
  5. permessage-deflate (RFC 7692): in one room, a client with compression (the
     default) gets a 4 KiB JSON-like room message compressed (RSV1 seen by its
     extension) and intact, and a short one uncompressed; a client with
     `compression=None` gets both intact as plain frames (without the extension it
     would fail the connection on an RSV1 frame).
Exits 0 when everything passed, 1 with a message on the first failure; the whole run is
bounded by an overall timeout (60 s).
"""

import asyncio
import base64
import os
import ssl
import struct
import sys
import time
import urllib.parse

try:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError as exc:  # websockets < 13 has no websockets.asyncio
    print(f"FAIL: the Python 'websockets' package (>= 13) is required: {exc}; "
          "install it with: python3 -m pip install 'websockets>=13'", file=sys.stderr)
    sys.exit(2)

OVERALL_TIMEOUT = 60.0
STEP_TIMEOUT = 20.0
CONNECTIONS = 100
MESSAGES = 50
ROOM = f"interop-py-{os.getpid()}"
# The TLS context for wss:// (set from --ca-file), None for ws://.
SSL_CONTEXT = None
INVALID_UTF8 = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"


class CheckFailed(Exception):
    pass


def check(cond, message):
    if not cond:
        raise CheckFailed(message)


def ok(message):
    print(f"python websockets {websockets.__version__}: ok: {message}", flush=True)


async def fan_out(base):
    url = f"{base}/ws/{ROOM}"
    conns = []
    try:
        for i in range(CONNECTIONS):
            conns.append(await asyncio.wait_for(
                connect(url, max_size=None, ssl=SSL_CONTEXT), STEP_TIMEOUT))
        sender = conns[0]
        for seq in range(MESSAGES):
            await sender.send(f"py-{seq}")

        async def receive_all(i, ws):
            got = []
            for _ in range(MESSAGES):
                try:
                    got.append(await ws.recv())
                except ConnectionClosed as exc:
                    raise CheckFailed(f"fan-out: connection {i} closed after "
                                      f"{len(got)} of {MESSAGES} messages: {exc}")
            expected = [f"py-{seq}" for seq in range(MESSAGES)]
            check(got == expected,
                  f"fan-out: connection {i} received {got[:5]}... instead of "
                  f"{expected[:5]}... (all 50 in order)")

        await asyncio.wait_for(
            asyncio.gather(*(receive_all(i, ws) for i, ws in enumerate(conns))),
            STEP_TIMEOUT)
        ok(f"fan-out: {CONNECTIONS} connections in /ws/{ROOM} each received all "
           f"{MESSAGES} messages in order (sender included)")
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def echo(base):
    async with connect(f"{base}/echo", max_size=None, ssl=SSL_CONTEXT) as ws:
        payload = os.urandom(1 << 20)
        await ws.send(payload)
        back = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        check(isinstance(back, bytes), f"echo: 1 MiB binary came back as {type(back).__name__}")
        check(back == payload, f"echo: 1 MiB binary came back altered ({len(back)} bytes)")
        ok("echo: 1 MiB binary message came back intact")

        fragments = [f"frag{i:03d}-é€😀;" for i in range(200)]
        await ws.send(iter(fragments))  # an iterable of str: one fragmented text message
        back = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
        check(isinstance(back, str), f"echo: fragmented text came back as {type(back).__name__}")
        check(back == "".join(fragments),
              f"echo: 200-fragment text came back altered ({len(back)} chars)")
        ok(f"echo: 200-fragment text message ({len(back.encode())} bytes) came back intact")


async def too_big(base, max_message_size):
    size = max_message_size + (1 << 20)
    async with connect(f"{base}/echo", max_size=None, close_timeout=5,
                       ssl=SSL_CONTEXT) as ws:
        try:
            await asyncio.wait_for(ws.send(b"\x00" * size), STEP_TIMEOUT)
            await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
            raise CheckFailed(f"over-size: a {size}-byte message was echoed instead of "
                              "closing with 1009")
        except ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), STEP_TIMEOUT)
        rcvd = ws.protocol.close_rcvd
        check(rcvd is not None,
              f"over-size: no close frame received from the server (close code {ws.close_code})")
        check(rcvd.code == 1009, f"over-size: close code {rcvd.code} {rcvd.reason!r}, expected 1009")
        ok(f"close 1009 ({rcvd.reason!r}) for a {size}-byte message "
           f"(limit {max_message_size})")


async def raw_upgrade(base, path):
    parsed = urllib.parse.urlsplit(base)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parsed.hostname, parsed.port, ssl=SSL_CONTEXT), STEP_TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)
    check(head.startswith(b"HTTP/1.1 101"), f"raw upgrade: {head[:40]!r}")
    return reader, writer


def masked_frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_server_frames(reader):
    """Read server frames until the TCP connection closes: [(opcode, payload)]."""
    frames = []
    try:
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
            check(not b1 & 0x80, "server sent a masked frame")
            frames.append((b0 & 0x0F, await reader.readexactly(n)))
    except (asyncio.IncompleteReadError, ConnectionResetError, ssl.SSLError):
        return frames


async def invalid_utf8(base):
    reader, writer = await raw_upgrade(base, "/echo")
    try:
        writer.write(masked_frame(0x1, INVALID_UTF8))
        await writer.drain()
        frames = await asyncio.wait_for(read_server_frames(reader), STEP_TIMEOUT)
    finally:
        writer.close()
    closes = [p for op, p in frames if op == 0x8]
    check(closes, f"invalid utf-8: no close frame before the TCP close (frames: {frames})")
    check(len(closes[0]) >= 2, f"invalid utf-8: close frame without a code: {closes[0]!r}")
    code = struct.unpack("!H", closes[0][:2])[0]
    check(code == 1007, f"invalid utf-8: close code {code}, expected 1007")
    ok(f"close 1007 ({closes[0][2:].decode(errors='replace')!r}) for invalid UTF-8 in a text frame")


async def clean_close(base):
    ws = await asyncio.wait_for(connect(f"{base}/echo", close_timeout=5, ssl=SSL_CONTEXT),
                                STEP_TIMEOUT)
    await ws.send("last words")
    check(await asyncio.wait_for(ws.recv(), STEP_TIMEOUT) == "last words", "clean close: echo")
    started = time.monotonic()
    await asyncio.wait_for(ws.close(1000, "bye"), STEP_TIMEOUT)
    await asyncio.wait_for(ws.wait_closed(), STEP_TIMEOUT)
    elapsed = time.monotonic() - started
    sent, rcvd = ws.protocol.close_sent, ws.protocol.close_rcvd
    check(sent is not None and sent.code == 1000 and sent.reason == "bye",
          f"clean close: we sent {sent}")
    check(rcvd is not None, "clean close: the server sent no close frame")
    check(rcvd.code == 1000, f"clean close: server's close code {rcvd.code}, expected 1000")
    check(ws.protocol.close_rcvd_then_sent is False,
          "clean close: the server closed first instead of answering our close")
    check(ws.state is websockets.protocol.State.CLOSED, f"clean close: state {ws.state}")
    # websockets waits for the server to close TCP, and aborts after close_timeout (5 s).
    check(elapsed < 4.0, f"clean close: took {elapsed:.1f}s: the server did not close TCP")
    ok(f"clean close: sent 1000 'bye', server answered {rcvd.code} {rcvd.reason!r}, "
       f"TCP closed by the server in {elapsed * 1000:.0f} ms")


async def deflate(base):
    url = f"{base}/ws/{ROOM}-deflate"
    async with connect(url, ssl=SSL_CONTEXT) as z, \
            connect(url, compression=None, ssl=SSL_CONTEXT) as plain:
        agreed = z.response.headers.get("Sec-WebSocket-Extensions", "")
        check(agreed.startswith("permessage-deflate"), f"deflate: not agreed ({agreed!r})")
        check(plain.response.headers.get("Sec-WebSocket-Extensions") is None,
              "deflate: a client offering nothing got the extension")
        check(len(z.protocol.extensions) == 1, f"deflate: extensions {z.protocol.extensions}")
        ext = z.protocol.extensions[0]
        rsv1 = []
        decode = ext.decode

        def recording_decode(frame, *, max_size=None):
            if frame.opcode in (websockets.frames.Opcode.TEXT, websockets.frames.Opcode.BINARY):
                rsv1.append(frame.rsv1)
            return decode(frame, max_size=max_size)

        ext.decode = recording_decode
        big = ",".join(f'{{"id":{i},"type":"trade","symbol":"SYM{i % 13}","price":{100 + i % 50}}}'
                       for i in range(200))[:4096]
        await plain.send(big)
        await plain.send("short")
        for name, ws in (("compressing", z), ("plain", plain)):
            got = [await asyncio.wait_for(ws.recv(), STEP_TIMEOUT) for _ in range(2)]
            check(got == [big, "short"], f"deflate: {name} client got {[g[:40] for g in got]}")
        check(rsv1 == [True, False], f"deflate: RSV1 per message {rsv1}, expected [True, False]")
        ok(f"permessage-deflate: {agreed!r} agreed; the 4 KiB room message came compressed "
           "(RSV1) and intact, the short one plain; a client offering nothing got both plain "
           "in the same room")


async def main(base, max_message_size):
    await fan_out(base)
    await echo(base)
    await too_big(base, max_message_size)
    await invalid_utf8(base)
    await clean_close(base)
    await deflate(base)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or not args[0].startswith(("ws://", "wss://")):
        print("usage: interop.py ws[s]://HOST:PORT [--ca-file PEM] [--max-message-size BYTES]",
              file=sys.stderr)
        sys.exit(2)
    if args[0].startswith("wss://"):
        if "--ca-file" not in args:
            print("wss:// needs --ca-file PEM (the certificate to trust)", file=sys.stderr)
            sys.exit(2)
        SSL_CONTEXT = ssl.create_default_context(cafile=args[args.index("--ca-file") + 1])
    base = args[0].rstrip("/")
    max_message_size = 2 << 20
    if "--max-message-size" in args:
        max_message_size = int(args[args.index("--max-message-size") + 1])
    try:
        asyncio.run(asyncio.wait_for(main(base, max_message_size), OVERALL_TIMEOUT))
    except CheckFailed as exc:
        print(f"FAIL (python websockets): {exc}", file=sys.stderr)
        sys.exit(1)
    except (asyncio.TimeoutError, TimeoutError):
        print(f"FAIL (python websockets): timed out (overall limit {OVERALL_TIMEOUT:.0f} s, "
              f"each step {STEP_TIMEOUT:.0f} s)", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # any other error is a failure too, with its type
        print(f"FAIL (python websockets): {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print("python websockets: all checks passed", flush=True)
