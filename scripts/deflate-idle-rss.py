#!/usr/bin/env python3
"""Server memory per idle connection with permessage-deflate (RFC 7692), per mode.

Usage: scripts/deflate-idle-rss.py [N=5000] [--bin target/release/ringcast] [--backend uring]

For each mode a fresh server is started (one shard, --metrics-addr off), N connections
to /echo are opened and left idle, and the server's VmRSS growth divided by N is printed:
  plain         no offer (no extension);
  plain-sent    no offer, each client sent one (plain) message and got its echo;
  offered       permessage-deflate agreed, no message sent (no inflate state yet);
  takeover      agreed, each client sent one compressed message keeping its context
                (the server now holds that connection's inflate state);
  no-takeover   agreed with client_no_context_takeover, one compressed message sent
                (inflated with the thread's shared state: nothing per connection).
The server is stopped by its PID at the end of each mode.
"""

import base64
import os
import resource
import socket
import subprocess
import sys
import time
import zlib

N = int(next((a for a in sys.argv[1:] if a.isdigit()), 5000))
BIN = sys.argv[sys.argv.index("--bin") + 1] if "--bin" in sys.argv else "target/release/ringcast"
BACKEND = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else "uring"
PORT = int(os.environ.get("PORT", "9431"))
OFFERS = {
    "plain": None,
    "plain-sent": None,
    "offered": "permessage-deflate; client_max_window_bits",
    "takeover": "permessage-deflate; client_max_window_bits",
    "no-takeover": "permessage-deflate; client_no_context_takeover",
}
MESSAGE = (b'{"id":1,"type":"hello","text":"a first message, compressed"}' * 4)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def masked(first_byte, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([first_byte, 0x80 | n]) if n < 126 else bytes([first_byte, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(s):
    def exact(k):
        buf = b""
        while len(buf) < k:
            chunk = s.recv(k - len(buf))
            if not chunk:
                raise RuntimeError("closed")
            buf += chunk
        return buf
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return b0, exact(n)


def open_conn(offer, send):
    s = socket.create_connection(("127.0.0.1", PORT))
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    s.sendall((f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert (b"permessage-deflate" in head) == bool(offer), head
    if send and not offer:
        s.sendall(masked(0x80 | 0x1, MESSAGE))
        b0, payload = read_frame(s)
        assert b0 & 0x0F == 1, b0
    elif send:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        z = c.compress(MESSAGE) + c.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(masked(0x80 | 0x40 | 0x1, z[:-4]))
        b0, payload = read_frame(s)
        assert b0 & 0x0F == 1, b0
    return s


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"{N} idle connections to /echo, backend {BACKEND}, one shard")
    for mode, offer in OFFERS.items():
        server = subprocess.Popen([BIN, "serve", "--addr", f"127.0.0.1:{PORT}", "--backend", BACKEND,
                                   "--threads", "1", "--log-level", "warn", "--metrics-addr", "off",
                                   "--ping-interval", "0"], stdout=subprocess.DEVNULL)
        conns = []
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", PORT)).close()
                    break
                except OSError:
                    time.sleep(0.05)
            # Warm-up: slab, buffers and allocator arenas reach their working size.
            warm = [open_conn(offer, mode in ("plain-sent", "takeover", "no-takeover")) for _ in range(200)]
            for s in warm:
                s.close()
            time.sleep(0.5)
            base = rss_kib(server.pid)
            conns = [open_conn(offer, mode in ("plain-sent", "takeover", "no-takeover")) for _ in range(N)]
            time.sleep(0.5)
            grown = rss_kib(server.pid) - base
            print(f"  {mode:12} {grown * 1024 / N:8.0f} B per connection "
                  f"(VmRSS +{grown / 1024:.1f} MiB over {N})", flush=True)
        finally:
            for s in conns:
                s.close()
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
