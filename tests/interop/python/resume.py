#!/usr/bin/env python3
"""Session resume cycle of a running ringcast server (`--session-grace`) with the Python
`websockets` client.

Usage: resume.py ws://127.0.0.1:PORT

The server's test harness drives it through stdin/stdout: when the script prints a
line `WAIT <what>` it blocks until the harness writes a line back (the harness checks
the server's state first, so no step depends on timing).

Checks, each printed as it passes:
  1. a connection to /ws/ROOM gets a session id and a resume token in the 101
     (`x-ringcast-session`, `x-ringcast-resume-token`) and no `x-ringcast-resume`;
  2. after its TCP connection is reset (SO_LINGER 0, no close frame) and the server has
     detached the session (WAIT detached), a second connection publishes 20 messages to
     the room (WAIT buffered);
  3. a connection to /ws/ROOM?resume=TOKEN gets `x-ringcast-resume: resumed`, the same
     session id, the 20 messages in order, then a live one;
  4. an unknown token gets `x-ringcast-resume: unknown` and a fresh session.
Exits 0 when everything passed, 1 with a message on the first failure; bounded by an
overall timeout (60 s).
"""

import asyncio
import os
import socket
import struct
import sys

try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError as exc:  # websockets < 13 has no websockets.asyncio
    print(f"FAIL: the Python 'websockets' package (>= 13) is required: {exc}; "
          "install it with: python3 -m pip install 'websockets>=13'", file=sys.stderr)
    sys.exit(2)

OVERALL_TIMEOUT = 60.0
STEP_TIMEOUT = 20.0
MESSAGES = 20
ROOM = f"resume-py-{os.getpid()}"


class CheckFailed(Exception):
    pass


def check(cond, message):
    if not cond:
        raise CheckFailed(message)


def ok(message):
    print(f"python websockets {websockets.__version__}: ok: {message}", flush=True)


async def wait_for_harness(what):
    print(f"WAIT {what}", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    check(line.strip() == "go", f"harness said {line!r} at {what}")


async def recv_text(ws):
    msg = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    check(isinstance(msg, str), f"expected text, got {msg!r}")
    return msg


async def main(base):
    url = f"{base}/ws/{ROOM}"
    first = await asyncio.wait_for(connect(url), STEP_TIMEOUT)
    headers = first.response.headers
    session, token = headers.get("x-ringcast-session"), headers.get("x-ringcast-resume-token")
    check(session and token and token.startswith(session + "."), f"session headers {headers}")
    check("x-ringcast-resume" not in headers, "no resume answer without a token")
    ok(f"session {session} and a resume token in the 101")

    sock = first.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    first.transport.abort()
    await wait_for_harness("detached")
    async with connect(url) as publisher:
        for i in range(MESSAGES):
            await publisher.send(f"missed-{i}")
        for i in range(MESSAGES):  # its own copies: the room's order is settled
            check(await recv_text(publisher) == f"missed-{i}", "publisher's own copy")
        await wait_for_harness("buffered")
        ok(f"connection reset; {MESSAGES} messages published while detached")

        async with connect(f"{url}?resume={token}") as resumed:
            h = resumed.response.headers
            check(h.get("x-ringcast-resume") == "resumed", f"resume answer {h}")
            check(h.get("x-ringcast-session") == session, "the same session")
            got = [await recv_text(resumed) for _ in range(MESSAGES)]
            check(got == [f"missed-{i}" for i in range(MESSAGES)], f"buffered: {got}")
            await publisher.send("live")
            check(await recv_text(resumed) == "live", "live after the buffered ones")
            ok(f"resumed with ?resume=: {MESSAGES} buffered messages in order, then live")

    forged = f"{session}.{'0' * 32}"
    async with connect(url, additional_headers={"x-ringcast-resume-token": forged}) as fresh:
        h = fresh.response.headers
        check(h.get("x-ringcast-resume") == "unknown", f"forged token answer {h}")
        check(h.get("x-ringcast-session") not in (None, session), "a fresh session")
        ok("an unknown token gets `unknown` and a fresh session")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1]), OVERALL_TIMEOUT))
    except (CheckFailed, asyncio.TimeoutError, OSError, websockets.WebSocketException) as exc:
        print(f"FAIL: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
