#!/usr/bin/env python3
"""Server memory under a burst of maximum-size request bodies (docs/SECURITY.md, "Bounds").

Starts `iisan serve RUN` on loopback, sends N concurrent POST /v1/recommend bodies of
--body-mib MiB each (valid JSON with an unknown field, so each is read whole and answered 400
unless the server refuses it first), and samples the server's RSS: before, the peak during the
burst, right after, and --after seconds later. Prints one JSON line (stdout) and a table
(stderr). Standard library only; bounded in count and time.

  python3 scripts/bench/serve_bodies.py --binary target/release/iisan --run runs/RUN \
      [--clients 160] [--body-mib 16] [--after 60] [--server-args "..."]
"""

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def post(port, body, statuses, lock):
    head = (
        f"POST /v1/recommend HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    status = "error"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(head)
            try:
                s.sendall(body)
            except OSError:
                pass  # the server answered early and closed: read its answer
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 "):
                status = data[9:12].decode()
    except OSError as e:
        status = type(e).__name__
    with lock:
        statuses[status] = statuses.get(status, 0) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--clients", type=int, default=160)
    ap.add_argument("--body-mib", type=int, default=16)
    ap.add_argument("--after", type=float, default=60.0)
    ap.add_argument("--server-args", default="")
    a = ap.parse_args()
    if a.clients < 1 or a.clients > 1000 or a.body_mib < 1 or a.body_mib > 64:
        sys.exit("--clients 1..1000, --body-mib 1..64")
    cmd = [a.binary, "serve", a.run, "--addr", "127.0.0.1:0"] + shlex.split(a.server_args)
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        time.sleep(0.5)
        before = rss_mib(srv.pid)
        # one byte short of the default limit: allowed by --max-body, read whole
        size = a.body_mib * 2**20 - 1
        pad = size - len('{"history": ["x"], "pad": ""}')
        body = ('{"history": ["x"], "pad": "' + "x" * pad + '"}').encode()
        statuses, lock = {}, threading.Lock()
        threads = [threading.Thread(target=post, args=(port, body, statuses, lock)) for _ in range(a.clients)]
        peak, t0 = before, time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mib(srv.pid))
            time.sleep(0.05)
        burst_s = time.time() - t0
        right_after = rss_mib(srv.pid)
        time.sleep(a.after)
        later = rss_mib(srv.pid)
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
    out = {
        "clients": a.clients,
        "body_mib": a.body_mib,
        "statuses": statuses,
        "burst_seconds": round(burst_s, 2),
        "rss_mib": {"before": round(before, 1), "peak": round(peak, 1),
                    "right_after": round(right_after, 1), f"after_{a.after:g}s": round(later, 1)},
    }
    print(json.dumps(out))
    r = out["rss_mib"]
    print(f"{a.clients} x {a.body_mib} MiB bodies in {burst_s:.1f} s: answers {statuses}", file=sys.stderr)
    print(f"server RSS MiB: before {r['before']}, peak {r['peak']}, right after {r['right_after']}, "
          f"{a.after:g} s after {later:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
