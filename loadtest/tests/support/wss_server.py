#!/usr/bin/env python3
"""A TLS WebSocket server that is not ringcast, for loadtest/tests/wss.rs: Python
`websockets` (>= 13) behind an `ssl` context, on 127.0.0.1 with an ephemeral port.

Usage: wss_server.py CERT_PEM KEY_PEM [LIFETIME_SECONDS]

Prints "port N" on stdout once it listens, then serves until it is killed or the
lifetime (default 120 s) has passed, so it never outlives a test run.
  /echo        every data message is sent back;
  /ws/{room}   every data message goes to every member of the room, the sender
               included, in the order received (one awaited send per member: never
               dropped, unlike websockets' broadcast()).
Anything else is closed with 1008.
"""

import asyncio
import ssl
import sys

try:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed
except ImportError as exc:  # websockets < 13 has no websockets.asyncio
    print(f"the Python 'websockets' package (>= 13) is required: {exc}; "
          "install it with: python3 -m pip install 'websockets>=13'", file=sys.stderr)
    sys.exit(2)

ROOMS = {}


async def handler(ws):
    path = ws.request.path
    if path == "/echo":
        try:
            async for msg in ws:
                await ws.send(msg)
        except ConnectionClosed:
            pass
        return
    if not path.startswith("/ws/"):
        await ws.close(1008, "unknown path")
        return
    room = ROOMS.setdefault(path.split("?")[0], set())
    room.add(ws)
    try:
        async for msg in ws:
            for member in list(room):
                try:
                    await member.send(msg)
                except ConnectionClosed:
                    pass
    except ConnectionClosed:
        pass
    finally:
        room.discard(ws)


async def main(cert, key, lifetime):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with serve(handler, "127.0.0.1", 0, ssl=ctx, compression=None,
                     ping_interval=None, max_size=1 << 20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        await asyncio.sleep(lifetime)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    lifetime = float(sys.argv[3]) if len(sys.argv) == 4 else 120.0
    asyncio.run(main(sys.argv[1], sys.argv[2], lifetime))
