#!/usr/bin/env python3
"""Interop check of ringcast's Server-Sent Events with httpx + httpx-sse.

Usage: sse.py 127.0.0.1:PORT

The server must keep exactly 50 messages of history per room (`--history 50`). Checks, each printed as it passes:
  1. fan-out: 200 SSE subscribers (httpx streaming, parsed by httpx-sse) to one room,
     100 messages published by a WebSocket client (`websockets`); every subscriber gets
     all 100 in order, with ids 1..100, a multi-line message as one event whose data
     has its lines joined by "\\n";
  2. resume: a subscriber sending `Last-Event-ID: 70` gets 71..100 and nothing before;
  3. gap: `Last-Event-ID: 10` (11..50 evicted) gets an `event: gap` with
     {"type":"gap","from":11,"to":50} first, then 51..100.
Exits 0 when everything passed, 1 with a message on the first failure; the whole run is
bounded by an overall timeout (60 s).
"""

import asyncio
import json
import os
import sys

try:
    import httpx
    from httpx_sse import aconnect_sse
    from websockets.asyncio.client import connect
except ImportError as exc:
    print(f"FAIL: httpx, httpx-sse and websockets (>= 13) are required: {exc}; install "
          "them with: python3 -m pip install httpx httpx-sse 'websockets>=13'",
          file=sys.stderr)
    sys.exit(2)

OVERALL_TIMEOUT = 60.0
SUBSCRIBERS = 200
MESSAGES = 100
HISTORY = 50
ROOM = f"sse-py-{os.getpid()}"


class CheckFailed(Exception):
    pass


def check(cond, message):
    if not cond:
        raise CheckFailed(message)


def message(i):
    # Every tenth one spans lines (CRLF, LF): an SSE client sees "\n" for each.
    return f"m{i}\r\nline two\nline three" if i % 10 == 0 else f"m{i}"


def expected_data(i):
    return message(i).replace("\r\n", "\n")


async def events(client, url, headers, count, opened):
    """The first `count` events (skipping the data-less retry) of one SSE stream."""
    out = []
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        check(source.response.status_code == 200, f"status {source.response.status_code}")
        ctype = source.response.headers.get("content-type", "")
        check(ctype.startswith("text/event-stream"), f"content-type {ctype!r}")
        if opened is not None:
            opened.set()
        async for sse in source.aiter_sse():
            if sse.data == "" and sse.event == "message" and not sse.id:
                continue  # the retry: chunk alone dispatches nothing
            out.append(sse)
            if len(out) == count:
                return out
    raise CheckFailed(f"stream ended after {len(out)} of {count} events")


async def run(host):
    base = f"http://{host}/sse/{ROOM}"
    limits = httpx.Limits(max_connections=SUBSCRIBERS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        # 1. fan-out
        opened = [asyncio.Event() for _ in range(SUBSCRIBERS)]
        tasks = [asyncio.create_task(events(client, base, {}, MESSAGES, opened[i]))
                 for i in range(SUBSCRIBERS)]
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 30)
        async with connect(f"ws://{host}/ws/{ROOM}") as ws:
            for i in range(1, MESSAGES + 1):
                await ws.send(message(i))
            # The publisher is a member too: read its copies, so its close is prompt.
            for _ in range(MESSAGES):
                await ws.recv()
            results = await asyncio.gather(*tasks)
        for n, got in enumerate(results):
            for i, sse in enumerate(got, start=1):
                check(sse.id == str(i), f"subscriber {n}: id {sse.id!r}, want {i}")
                check(sse.event == "message", f"subscriber {n}: event {sse.event!r}")
                check(sse.data == expected_data(i),
                      f"subscriber {n}: data {sse.data!r}, want {expected_data(i)!r}")
        print(f"ok fan-out: {SUBSCRIBERS} SSE subscribers got {MESSAGES} messages in order")

        # 2. resume after an id still retained
        got = await events(client, base, {"Last-Event-ID": "70"}, MESSAGES - 70, None)
        check([s.id for s in got] == [str(i) for i in range(71, MESSAGES + 1)],
              f"resume ids {[s.id for s in got]}")
        check([s.data for s in got] == [expected_data(i) for i in range(71, MESSAGES + 1)],
              "resume data")
        print("ok resume: Last-Event-ID 70 -> 71..100, nothing missing or repeated")

        # 3. resume across an evicted range
        got = await events(client, base, {"Last-Event-ID": "10"}, 1 + HISTORY, None)
        check(got[0].event == "gap", f"first event {got[0].event!r}")
        gap = json.loads(got[0].data)
        check(gap == {"type": "gap", "from": 11, "to": MESSAGES - HISTORY},
              f"gap {gap}")
        check([s.id for s in got[1:]] == [str(i) for i in range(MESSAGES - HISTORY + 1,
                                                                 MESSAGES + 1)],
              "ids after the gap")
        print(f"ok gap: Last-Event-ID 10 -> gap {gap}, then 51..100")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(run(sys.argv[1]), OVERALL_TIMEOUT))
    except (CheckFailed, asyncio.TimeoutError, httpx.HTTPError) as exc:
        print(f"FAIL: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    print("all SSE checks passed")


if __name__ == "__main__":
    main()
