#!/usr/bin/env python3
"""Loopback soak test of `iisan serve`: does the server keep answering, and stay bounded in memory,
file descriptors and shutdown time, while idle and slow ("slowloris") connections pile up?

Phases, all on 127.0.0.1:
  1. start `BINARY serve RUN --addr 127.0.0.1:0 SERVER_ARGS`, read the port from its
     `listening on http://...` line, sample its RSS (/proc/PID/status VmRSS) and open fds;
  2. baseline (--baseline s): --clients keep-alive HTTP/1.1 clients POST /v1/recommend, one request
     at a time each, with random --history-item histories from RUN/item_ids.txt;
  3. soak (--seconds s): the clients go on while --idle connections connect and send nothing, and
     --slow connections trickle one byte every --slow-interval s: half a request head that never
     ends (slow_header), half a body of a declared Content-Length of 1,000,000 (slow_body).
     A connection the server closes (EOF or reset), refuses (ECONNREFUSED) or answers (a 503 at the
     connection limit, a 408...) is counted and opened again. RSS/fds are sampled every second;
  4. after: the attack connections are closed, the clients go on for 5 s, RSS/fds are sampled;
     then --idle idle connections are opened and held again, SIGTERM is sent, and the time until
     the server exits is measured (after --term-timeout s it is killed with SIGKILL, and says so).
Output: a human-readable table on stderr, one JSON summary (with the per-second samples) on stdout.
The exit status is non-zero only when the script itself fails (2: bad arguments, or the server
did not start; 130: interrupted), never for what it measured. The script raises its own soft
RLIMIT_NOFILE (after starting the server, which keeps the caller's limits) and holds at most ~1000
sockets: --idle/--slow are scaled down to fit (a warning, and config.idle/slow, say so).

Usage (needs a release build; nothing is written to RUN):
  python3 scripts/bench/serve_soak.py --binary target/release/iisan --run runs/RUN \\
      [--idle 300] [--slow 200] [--seconds 60] [--clients 4] \\
      [--server-args "--max-connections 256 --header-timeout 5"] > soak.json
"""
import argparse, asyncio, json, os, random, re, resource, shlex, signal, sys, time

HOST, KINDS, PHASES = "127.0.0.1", ("idle", "slow_header", "slow_body"), ("baseline", "soak", "after")
FD_CAP = 1000  # sockets this script holds at most (lowered when RLIMIT_NOFILE cannot be raised)


class Fail(Exception):
    """The script itself failed (the server did not start): exit 2."""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))], 2) if s else None


def proc_sample(pid):
    """(RSS MiB, open fds) of pid, or (None, None) once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return round(kb / 1024, 1), len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None, None


def raise_fd_limit(need):
    global FD_CAP
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = hard if hard != resource.RLIM_INFINITY else max(need, 4096)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError) as e:
            log(f"warning: cannot raise RLIMIT_NOFILE from {soft} to {new}: {e}")
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        FD_CAP = min(FD_CAP, soft - 32)


async def read_response(reader):
    """One HTTP/1.1 response: (status, headers, body); Content-Length, chunked or until EOF."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed by server")
    status, headers = int(line.split(None, 2)[1]), {}
    while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        return status, headers, await reader.read()
    body = b""
    while (n := int((await reader.readline()).split(b";")[0], 16)) > 0:
        body += (await reader.readexactly(n + 2))[:-2]
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    return status, headers, body


def close(writer):
    try:
        writer.close()
    except Exception:  # already closed or reset
        pass


def new_stats():
    return {k: {"connects": 0, "held": 0, "closed_by_server": 0, "resets": 0, "answered": {}, "refused": 0,
                "connect_timeouts": 0, "connect_errors": 0, "other_errors": 0, "held_s": []} for k in KINDS}


class Soak:
    def __init__(self, a, ids):
        self.a, self.ids, self.phase, self.samples = a, ids, "baseline", []
        self.lat, self.err = {p: [] for p in PHASES}, {p: {} for p in PHASES}
        self.connect_sem = asyncio.Semaphore(64)  # connects in flight, so SYN bursts stay small

    def head(self, extra=""):
        return f"POST /v1/recommend HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{extra}"

    async def client(self, stop, rng):
        """A normal keep-alive client: latencies of its 200s, and its errors, by phase."""
        reader = writer = None
        while not stop.is_set():
            phase, err = self.phase, None
            body = json.dumps({"histories": [rng.sample(self.ids, self.a.history)], "k": 10}).encode()
            req = self.head(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 5)
                writer.write(req + body)
                status, headers, resp = await asyncio.wait_for(read_response(reader), self.a.client_timeout)
                if status != 200:
                    err = f"status_{status}"
                else:
                    json.loads(resp)
                if headers.get("connection", "").lower() == "close":
                    close(writer); writer = None
            except Exception as e:  # a timeout, refusal, reset, or malformed answer: counted, never fatal
                err = {"TimeoutError": "timeout", "ConnectionRefusedError": "refused"}.get(type(e).__name__,
                                                                                          type(e).__name__)
            if err:
                self.err[phase][err] = self.err[phase].get(err, 0) + 1
                if writer is not None:
                    close(writer); writer = None
                await asyncio.sleep(0.2)  # no hot loop against a dead or refusing server
            else:
                self.lat[phase].append((time.perf_counter() - t0) * 1000)
        if writer is not None:
            close(writer)

    async def idle_conn(self, reader, writer):
        return await reader.read(4096)

    async def slow_conn(self, reader, writer, header):
        """Trickle a never-ending request; return what the server sent (b"" at EOF)."""
        if header:
            data = self.head("X-Slow: ").encode()
        else:
            writer.write(self.head("Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n").encode())
            data = b""
        read = asyncio.ensure_future(reader.read(4096))
        try:
            for n in range(10 ** 9):
                if (await asyncio.wait({read}, timeout=self.a.slow_interval if n else 0))[0]:
                    return read.result()
                writer.write(data[n:n + 1] if n < len(data) else b"a" if header else b" ")
                await asyncio.wait_for(writer.drain(), 30)
        finally:
            read.cancel()

    async def attack(self, kind, stats, body, stop, reconnect):
        st = stats[kind]
        while not stop.is_set():
            try:
                try:
                    async with self.connect_sem:
                        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 5)
                except ConnectionRefusedError:
                    st["refused"] += 1; await asyncio.sleep(1); continue
                except asyncio.TimeoutError:
                    st["connect_timeouts"] += 1; continue
                except OSError:
                    st["connect_errors"] += 1; await asyncio.sleep(1); continue
                st["connects"] += 1; st["held"] += 1; t0 = time.monotonic()
                try:
                    data = await body(reader, writer)
                except (OSError, ConnectionError, asyncio.TimeoutError):
                    data = b""; st["resets"] += 1  # reset (also a 503 lost to the reset), or unread for 30 s
                finally:
                    st["held"] -= 1; close(writer)
                if m := re.match(rb"HTTP/1\.[01] (\d{3})", data):
                    code = m.group(1).decode(); st["answered"][code] = st["answered"].get(code, 0) + 1
                else:
                    st["closed_by_server"] += 1; st["held_s"].append(time.monotonic() - t0)
                if not reconnect:
                    return
                await asyncio.sleep(1.0 if m else 0.1)  # a 503 says retry-after: 1
            except asyncio.CancelledError:
                raise
            except Exception:
                st["other_errors"] += 1; await asyncio.sleep(1)

    def start_attack(self, stats, stop, idle, slow, reconnect=True):
        tasks = [self.attack("idle", stats, self.idle_conn, stop, reconnect) for _ in range(idle)]
        tasks += [self.attack("slow_body" if i % 2 else "slow_header", stats,
                              lambda r, w, h=not i % 2: self.slow_conn(r, w, h), stop, reconnect) for i in range(slow)]
        return [asyncio.ensure_future(t) for t in tasks]

    async def stop_tasks(self, event, tasks):
        event.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sampler(self, stop, t_start):
        while not stop.is_set():
            self.samples.append([round(time.monotonic() - t_start, 1), self.phase, *proc_sample(self.pid),
                                 *(self.st[k]["held"] for k in KINDS)])
            await asyncio.sleep(1)

    async def run(self):
        a = self.a  # SIGTERM (like SIGINT) to this script cancels, so the finally below stops the server
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        cmd = [a.binary, "serve", a.run, "--addr", f"{HOST}:0", *shlex.split(a.server_args)]
        log("starting:", " ".join(cmd))
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=pipe, stderr=pipe, stdin=asyncio.subprocess.DEVNULL)
        self.pid, self.out, self.errlines, self.stopped_seen = proc.pid, [], [], False
        raise_fd_limit(a.clients + a.idle + a.slow + 64)  # after the fork: the server keeps the caller's limits
        try:
            return await self.phases(proc)
        finally:
            if proc.returncode is None:
                proc.kill(); await proc.wait()

    async def drain(self, stream, keep):
        while line := await stream.readline():
            keep.append(line.decode(errors="replace").rstrip()); del keep[:-200]
            self.stopped_seen |= keep is self.errlines and keep[-1].strip() == "stopped"

    async def phases(self, proc):
        a, deadline = self.a, time.monotonic() + self.a.start_timeout
        err_task = asyncio.ensure_future(self.drain(proc.stderr, self.errlines))
        while not (m := self.out and re.search(r"listening on http://[\d.]+:(\d+)", self.out[-1])):
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                line = b""
            if not line:
                await asyncio.sleep(0.5)
                raise Fail(f"server did not print 'listening on' (exit {proc.returncode}); stderr:\n"
                           + "\n".join(self.errlines[-20:]))
            self.out.append(line.decode(errors="replace").rstrip())
        self.port, out_task = int(m.group(1)), asyncio.ensure_future(self.drain(proc.stdout, self.out))
        log(self.out[-1])
        before, t_start = proc_sample(self.pid), time.monotonic()
        budget, idle, slow = max(0, FD_CAP - a.clients - 32), a.idle, a.slow
        if idle + slow > budget:
            idle, slow = idle * budget // (idle + slow), slow * budget // (idle + slow)
            log(f"warning: --idle/--slow scaled down to {idle}/{slow} to stay under {FD_CAP} fds")
        self.st, sample_stop, client_stop, attack_stop = new_stats(), asyncio.Event(), asyncio.Event(), asyncio.Event()
        sampler = [asyncio.ensure_future(self.sampler(sample_stop, t_start))]
        rng = random.Random(a.seed)
        clients = [asyncio.ensure_future(self.client(client_stop, random.Random(rng.random()))) for _ in range(a.clients)]
        log(f"baseline {a.baseline:g} s, {a.clients} clients"); await asyncio.sleep(a.baseline)
        self.phase = "soak"; log(f"soak {a.seconds:g} s: {idle} idle, {slow} slow connections")
        attack = self.start_attack(self.st, attack_stop, idle, slow)
        await asyncio.sleep(a.seconds)
        await self.stop_tasks(attack_stop, attack)
        self.phase = "after"; log("after: attack connections closed, waiting 5 s")
        await asyncio.sleep(5)
        after = proc_sample(self.pid)
        await self.stop_tasks(client_stop, clients); await self.stop_tasks(sample_stop, sampler)
        term = {"idle_held": 0, "exit_s": None, "exit_code": proc.returncode, "killed": False,
                "exited_before_sigterm": proc.returncode is not None}
        if proc.returncode is None:
            tst, tstop = new_stats(), asyncio.Event()
            held, t_open = self.start_attack(tst, tstop, idle, 0, reconnect=False), time.monotonic()
            while tst["idle"]["held"] < idle and time.monotonic() - t_open < 10:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            term["idle_held"] = tst["idle"]["held"]
            log(f"SIGTERM with {term['idle_held']} idle connections held")
            t0 = time.monotonic(); proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), a.term_timeout)
            except asyncio.TimeoutError:
                term["killed"] = True; proc.kill(); await proc.wait()
            term.update(exit_s=round(time.monotonic() - t0, 2), exit_code=proc.returncode,
                        idle_closed_by_server=tst["idle"]["closed_by_server"])
            await self.stop_tasks(tstop, held)
        else:
            log(f"server already exited with {proc.returncode}: no SIGTERM test")
        await asyncio.wait([err_task, out_task], timeout=3)
        term["stopped_printed"] = self.stopped_seen
        return self.summary(before, after, idle, slow, term)

    def summary(self, before, after, idle, slow, term):
        a, soak = self.a, [s for s in self.samples if s[1] == "soak"]
        lat, attack, dur = {}, {}, {"baseline": a.baseline, "soak": a.seconds, "after": 5}
        for p, xs in self.lat.items():
            lat[p] = {"ok": len(xs), "errors": sum(self.err[p].values()), "error_kinds": self.err[p],
                      "rps": round(len(xs) / dur[p], 1), **{f"p{q}_ms": pct(xs, q) for q in (50, 95, 99, 100)}}
            lat[p]["max_ms"] = lat[p].pop("p100_ms")
        for i, k in enumerate(KINDS):
            s = dict(self.st[k]); hs = s.pop("held_s"); s.pop("held")
            attack[k] = {**s, "held_peak": max((x[4 + i] for x in soak), default=0),
                         "closed_after_s_p50": pct(hs, 50), "closed_after_s_max": pct(hs, 100)}
        peak = lambda j: max((x[j] for x in soak if x[j] is not None), default=None)
        return {"config": {"binary": a.binary, "run": a.run, "server_args": a.server_args, "port": self.port,
                           "clients": a.clients, "idle": idle, "slow": slow, "idle_requested": a.idle,
                           "slow_requested": a.slow, "baseline_s": a.baseline, "soak_s": a.seconds,
                           "slow_interval_s": a.slow_interval, "server_line": self.out[0] if self.out else None},
                "latency": lat, "attack": attack,
                "server": {"rss_mib": {"before": before[0], "peak_soak": peak(2), "after": after[0]},
                           "fds": {"before": before[1], "peak_soak": peak(3), "after": after[1]},
                           "samples_columns": ["t_s", "phase", "rss_mib", "fds", *KINDS], "samples": self.samples},
                "sigterm": term, "server_stderr_tail": self.errlines[-20:]}


def table(s):
    f = lambda v: "-" if v is None else f"{v:g}"
    rows = [f"normal clients: {s['config']['clients']}",
            f"{'phase':9}{'ok':>8}{'rps':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"]
    for p, l in s["latency"].items():
        rows.append(f"{p:9}{l['ok']:>8}{f(l['rps']):>8}{f(l['p50_ms']):>9}{f(l['p95_ms']):>9}{f(l['p99_ms']):>9}"
                    f"{f(l['max_ms']):>9}{l['errors']:>8}  {l['error_kinds'] or ''}")
    rows.append(f"{'attack':12}{'peak held':>10}{'connects':>9}{'closed':>8}{'close p50 s':>12}{'refused':>8}  answered")
    for k, v in s["attack"].items():
        rows.append(f"{k:12}{v['held_peak']:>10}{v['connects']:>9}{v['closed_by_server']:>8}"
                    f"{f(v['closed_after_s_p50']):>12}{v['refused'] + v['connect_timeouts']:>8}  {v['answered'] or ''}")
    for k, v in s["server"].items():
        if k in ("rss_mib", "fds"):
            rows.append(f"server {k:8} before {f(v['before'])}  peak(soak) {f(v['peak_soak'])}  after {f(v['after'])}")
    t = s["sigterm"]
    rows.append(f"server exited (code {t['exit_code']}) before SIGTERM: no shutdown test" if t["exited_before_sigterm"]
                else f"SIGTERM with {t['idle_held']} idle held: exit after {f(t['exit_s'])} s, code {t['exit_code']}"
                f"{' (KILLED -9)' if t['killed'] else ''}, 'stopped' printed: {t['stopped_printed']}")
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="the iisan executable (target/release/iisan)")
    p.add_argument("--run", required=True, help="the run directory to serve (read only)")
    for name, typ, default in [("idle", int, 300), ("slow", int, 200), ("seconds", float, 60), ("baseline", float, 10),
                               ("clients", int, 4), ("history", int, 5), ("slow-interval", float, 2.0),
                               ("client-timeout", float, 30), ("term-timeout", float, 60),
                               ("start-timeout", float, 60), ("seed", int, 1), ("server-args", str, "")]:
        p.add_argument(f"--{name}", type=typ, default=default, help=f"default {default!r}")
    argv = sys.argv[1:]  # `--server-args "--flag"` (no space in it) would look like an option to argparse
    for i in range(len(argv) - 1):
        if argv[i] == "--server-args":
            argv[i:i + 2] = [f"--server-args={argv[i + 1]}"]; break
    a = p.parse_args(argv)
    if min(a.idle, a.slow, a.clients) < 0 or a.clients > 200 or min(a.seconds, a.baseline, a.slow_interval) <= 0:
        p.error("need --idle/--slow >= 0, 0 <= --clients <= 200, --seconds/--baseline/--slow-interval > 0")
    try:
        with open(os.path.join(a.run, "item_ids.txt")) as f:
            ids = [l.strip() for l in f if l.strip()]
    except OSError as e:
        p.error(f"cannot read the run's item ids: {e}")
    if len(ids) < a.history:
        p.error(f"{len(ids)} item ids, fewer than --history {a.history}")
    if not os.access(a.binary, os.X_OK):
        p.error(f"{a.binary} is not an executable file")
    try:
        s = asyncio.run(Soak(a, ids).run())
    except Fail as e:
        log("error:", e); sys.exit(2)
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; the server was stopped"); sys.exit(130)
    log(table(s))
    print(json.dumps(s))


if __name__ == "__main__":
    main()
