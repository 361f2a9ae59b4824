#!/usr/bin/python3
"""harness.py — the benchmark harness of issue 11: boxoffice side by side
with Redis+Lua, PostgreSQL row locks and a bare nng echo, and the SLO run.

  harness.py compare [--quick] [--workload W] [--out DIR] [--build DIR]
  harness.py slo [--quick] [--out DIR] [--build DIR]
  harness.py test compare|slo [--build DIR]   (the test suite's quick runs)
  harness.py selftest                         (the checks refuse bad JSON)

Every system runs privately on loopback, its data in a work directory of
its own (/tmp/bo-harness-*, on the real disk: the journal and the AOF are
fsynced for real), started by the harness and always stopped by it:
try/finally for exceptions and Ctrl-C, SIGTERM/SIGHUP turned into an
exception, and a guard process in a session of its own (see Guard) for the
case where the harness itself is killed outright.

The load comes from boxoffice-bench (perf/loadgen, its contract lg.h), one
process per run; its last stdout line is that run's JSON, kept whole in
OUT/runs/. The harness prints one JSON line (its last stdout line) and
writes it, the plots' data and the PNGs (gnuplot) into OUT. Everything
else it says goes to stderr.

Standard library only (Debian's /usr/bin/python3), plus gnuplot for the
plots, redis-server and PostgreSQL 15 (scripts/pg) for the baselines.
"""
import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_PG = ROOT / "scripts" / "pg"
PG_BIN = Path(os.environ.get("BO_PG_BIN") or "/usr/lib/postgresql/15/bin")
PROG = "harness"

# Shards of every boxoffice-server the harness starts: one per core of the
# 2-core machine the targets are set for.
SHARDS = 2

# The L3 figures of the blueprint (DESIGN.md) and the aim.
SLO_TARGETS = {
    "p95_ms": 250.0,
    "p99_ms": 380.0,
    "error_rate": 0.015,
    "commit_lag_ms_p95": 5000.0,
    "shard_balance_max_over_avg": 1.3,
}
SLO_P99_AIM_MS = 5.0


class HarnessError(Exception):
    """A run that cannot go on: said on stderr, exit status 1."""


class Missing(HarnessError):
    """A program the run needs is not installed (the tests skip on it)."""


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def on_signal(signum, _frame):
    """SIGTERM/SIGHUP end the run like Ctrl-C does: the finally blocks stop
    every system. Later signals are ignored so the cleanup itself is not
    cut short."""
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


# ---- Processes ---------------------------------------------------------------


def proc_start_time(pid):
    """The start time of process pid (clock ticks since boot, /proc/PID/stat
    field 22), which tells a process from a later one with the same pid;
    None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def guard_main():
    """harness.py _guard: reads what the harness started from stdin, one
    line each ("pid PID START", "gone PID", "pg DIR", "rm DIR"), and at end
    of input — the harness exited, however it exited — kills those
    processes still alive, destroys those PostgreSQL clusters and removes
    those directories. It runs in a session of its own, ignoring the
    signals that reach the harness's process group, so that a group kill
    (kill -KILL -PGID) also gets cleaned up: PostgreSQL's postmaster lives
    in a session of its own (pg_ctl detaches it) and would outlive the
    group."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    pids, pgs, dirs = {}, [], []
    for line in sys.stdin:
        word, _, rest = line.strip().partition(" ")
        if word == "pid":
            pid, start = rest.split(" ", 1)
            pids[int(pid)] = start
        elif word == "gone":
            pids.pop(int(rest), None)
        elif word == "pg":
            pgs.append(rest)
        elif word == "rm":
            dirs.append(rest)
    for pid, start in pids.items():
        if proc_start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for d in pgs:
        if os.path.isdir(d):
            subprocess.run([str(SCRIPTS_PG), "destroy", d], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, check=False)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return 0


class Guard:
    """The harness's side of guard_main: tells it what to clean up."""

    def __init__(self):
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_guard"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  start_new_session=True, text=True)

    def tell(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def close(self):
        self.p.stdin.close()
        self.p.wait()


class Proc:
    """One child process (a server), its output in a log file; stop()
    ends it with SIGTERM (SIGKILL after `grace` seconds) and waits."""

    def __init__(self, run, name, argv, logname, env=None):
        self.run, self.name, self.argv = run, name, argv
        self.log_path = run.work / logname
        self.log = open(self.log_path, "ab")
        try:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                      stderr=subprocess.STDOUT, env=env)
        except OSError as e:
            self.log.close()
            raise HarnessError(f"cannot start {name} ({argv[0]}): {e}") from e
        run.guard.tell(f"pid {self.p.pid} {proc_start_time(self.p.pid)}")
        run.procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def log_tail(self, lines=15):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self):
        if not self.alive():
            raise HarnessError(f"{self.name} exited (status {self.p.returncode}); "
                               f"its log ({self.log_path}) ends:\n{self.log_tail()}")

    def stop(self, grace=30.0):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {grace:.0f} s of SIGTERM: SIGKILL")
                self.p.kill()
                self.p.wait()
        self.log.close()
        self.run.guard.tell(f"gone {self.p.pid}")
        if self in self.run.procs:
            self.run.procs.remove(self)
        return self.p.returncode


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, proc, ready, timeout=120.0):
    """Polls ready() until it is true; fails as soon as proc exits, or after
    timeout seconds (a server that never comes up)."""
    deadline = time.monotonic() + timeout
    while True:
        proc.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} not ready within {timeout:.0f} s; its log "
                               f"({proc.log_path}) ends:\n{proc.log_tail()}")
        time.sleep(0.05)


def tcp_answers(port, send=None, expect=None):
    """True when 127.0.0.1:port accepts a connection (and answers `send`
    with something starting with `expect`)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if send is None:
                return True
            s.sendall(send)
            return s.recv(64).startswith(expect)
    except OSError:
        return False


def http_get(port, path, timeout=5.0):
    """(status, body) of GET http://127.0.0.1:port/path; (None, "") when it
    cannot be asked."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException):
        return None, ""


# ---- A run: its work directory, its children, its bench runs ----------------


class Run:
    """One harness invocation: the work directory, the guard, the children
    started so far, the bench runs done so far."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = Path(args.build).resolve()
        self.out = Path(args.out).resolve()
        self.server_exe = self.build / "gateway" / "boxoffice-server"
        self.bench_exe = self.build / "perf" / "loadgen" / "boxoffice-bench"
        for exe in (self.server_exe, self.bench_exe):
            if not os.access(exe, os.X_OK):
                raise HarnessError(f"{exe} not found: build first (scripts/bench builds "
                                   f"build/; or --build DIR)")
        self.guard = Guard()
        # Reachable by the user PostgreSQL runs as (root runs it as
        # 'postgres'): scripts/pg keeps the cluster inside it then.
        self.work = Path(tempfile.mkdtemp(prefix="bo-harness-"))
        self.work.chmod(0o755)
        if not args.keep:
            self.guard.tell(f"rm {self.work}")
        self.procs = []
        self.pgs = []
        self.errors = []
        self.seq = 0
        (self.out / "runs").mkdir(parents=True, exist_ok=True)
        # An earlier invocation's runs would pass for this one's.
        for old in (self.out / "runs").glob("*.json"):
            old.unlink()
        log(f"work directory {self.work}, results into {self.out}")

    def close(self):
        """Stops every child still running, destroys the clusters, removes
        the work directory (all of it also done by the guard should this
        not run)."""
        for p in list(reversed(self.procs)):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {p.name}: {e}")
        for pg in list(self.pgs):
            pg.destroy()
        if self.args.keep:
            log(f"kept {self.work} (--keep)")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        self.guard.close()

    def subdir(self, name):
        self.seq += 1
        d = self.work / f"{self.seq:02d}-{name}"
        d.mkdir()
        return d

    def bench(self, label, argv, timeout):
        """Runs boxoffice-bench with argv; returns its JSON (also written to
        OUT/runs/LABEL.json), or None when the run failed (then recorded in
        self.errors). Its stderr goes to the work directory's log."""
        logp = self.work / f"bench-{label}.log"
        cmd = [str(self.bench_exe), *argv]
        log(f"{label}: {' '.join(cmd[1:])}")
        with open(logp, "wb") as lf:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=lf)
            self.guard.tell(f"pid {p.pid} {proc_start_time(p.pid)}")
            try:
                out, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                self.fail(label, f"boxoffice-bench ran over {timeout:.0f} s: killed", logp)
                return None
            finally:
                if p.poll() is None:  # KeyboardInterrupt in communicate
                    p.kill()
                    p.wait()
                self.guard.tell(f"gone {p.pid}")
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            res = json.loads(lines[-1]) if lines else None
        except ValueError:
            res = None
        if p.returncode != 0 or not isinstance(res, dict):
            self.fail(label, f"boxoffice-bench exited {p.returncode}"
                      f"{'' if isinstance(res, dict) else ' without a JSON line'}", logp)
            return None
        (self.out / "runs" / f"{label}.json").write_text(json.dumps(res, indent=1) + "\n")
        if "per_sec" in res:
            log(f"{label}: {fmt_rate(res.get('per_sec'))}/s, p99 {res.get('p99_ms')} ms, "
                f"oversell {res.get('oversell')}, error_rate {res.get('error_rate')}")
        else:
            log(f"{label}: audit {json.dumps(res.get('audit'))}")
        return res

    def fail(self, label, why, logp):
        tail = ""
        try:
            tail = "\n".join(logp.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            pass
        log(f"{label}: {why}; its stderr ({logp}) ends:\n{tail}")
        self.errors.append(f"{label}: {why}")


def fmt_rate(v):
    return f"{v:,.0f}" if isinstance(v, (int, float)) else "?"


# ---- The systems ---------------------------------------------------------------


class Boxoffice:
    """boxoffice-server on loopback: nng at tcp://127.0.0.1:PORT, /metrics
    on --http, the framed TCP front when the server has --frame. The data
    directory outlives a stop, so a restart recovers from the journal."""

    def __init__(self, run, data=None, extra=(), frame=True):
        self.run = run
        self.data = data or (run.subdir("boxoffice") / "data")
        self.port, self.http = free_port(), free_port()
        self.frame = free_port() if frame and server_has(run, "--frame") else None
        argv = [str(run.server_exe), "--data-dir", str(self.data), "--shards", str(SHARDS),
                "--listen", self.url(), "--http", f"127.0.0.1:{self.http}",
                "--status-every", "0", *extra]
        if self.frame:
            argv += ["--frame", f"127.0.0.1:{self.frame}"]
        if not any(a.startswith("--pg-dsn") for a in extra):
            argv.append("--no-pg")
        self.argv = argv
        self.proc = Proc(run, "boxoffice-server", argv, "boxoffice-server.log")
        wait_until("boxoffice-server", self.proc,
                   lambda: http_get(self.http, "/readyz", 2)[0] == 200)
        if self.frame:
            wait_until("boxoffice-server's framed front", self.proc,
                       lambda: tcp_answers(self.frame))

    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self):
        rc = self.proc.stop()
        if rc != 0:
            self.run.errors.append(f"boxoffice-server exited {rc} at stop (log "
                                   f"{self.proc.log_path})")


_server_help = {}
_bench_systems = []


def bench_systems(run):
    """The systems boxoffice-bench was built with (its --help lists them):
    each is another branch's file, optional in perf/loadgen/meson.build."""
    if not _bench_systems:
        p = subprocess.run([str(run.bench_exe), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, check=False)
        for line in p.stdout.decode(errors="replace").splitlines():
            if "system under test:" in line:
                _bench_systems.extend(line.split(":", 1)[1].split())
    return _bench_systems


def server_has(run, option):
    """Whether boxoffice-server's --help names `option` (the framed front
    comes with branch h-frame; without it boxoffice-frame is not run)."""
    if "text" not in _server_help:
        p = subprocess.run([str(run.server_exe), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, check=False)
        _server_help["text"] = p.stdout.decode(errors="replace")
    return option in _server_help["text"]


class Redis:
    """redis-server 7 on loopback with AOF on, fsync `always` or `everysec`,
    no RDB snapshots, its data in a fresh directory."""

    def __init__(self, run, fsync):
        exe = shutil.which("redis-server")
        if not exe:
            raise Missing("redis-server not found (Debian: redis-server; scripts/setup "
                          "installs it)")
        d = run.subdir(f"redis-{fsync}")
        self.port = free_port()
        argv = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(d),
                "--appendonly", "yes", "--appendfsync", fsync, "--save", "",
                "--daemonize", "no", "--protected-mode", "yes"]
        self.proc = Proc(run, f"redis-server ({fsync})", argv, f"redis-{fsync}.log")
        wait_until("redis-server", self.proc,
                   lambda: tcp_answers(self.port, b"PING\r\n", b"+PONG"))

    def target(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.stop()


class Postgres:
    """A private PostgreSQL 15 cluster made by scripts/pg (initdb once per
    harness run: it takes ~10 s here). It listens on no TCP port: clients
    reach it over a Unix socket in the work directory (scripts/pg's way,
    which also handles running as root). fsync and synchronous_commit on
    (scripts/pg's settings: a database of record). fresh() gives every
    bench run a new, empty database after a restart of the server."""

    def __init__(self, run):
        for b in ("initdb", "pg_ctl", "postgres", "psql"):
            if not os.access(PG_BIN / b, os.X_OK):
                raise Missing(f"{PG_BIN / b} not found: PostgreSQL 15 is not installed "
                              f"(scripts/setup installs it; BO_PG_BIN names another place)")
        self.run = run
        self.dir = run.work / "pg"
        self.n = 0
        run.guard.tell(f"pg {self.dir}")
        run.pgs.append(self)
        self.pg("start")

    def pg(self, *args, capture=False):
        p = subprocess.run([str(SCRIPTS_PG), *args[:1], str(self.dir), *args[1:]],
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                           check=False)
        if p.returncode != 0:
            raise HarnessError(f"scripts/pg {args[0]} {self.dir} failed (status "
                               f"{p.returncode}; its log: {self.dir}/log)")
        return p.stdout.decode().strip() if capture else None

    def fresh(self, restart=True):
        """A new empty database (on a restarted server when restart); its DSN."""
        if restart:
            self.pg("stop")
            self.pg("start")
        if self.n:  # the last run's rows are of no more use: keep the cluster small
            self.pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    f"DROP DATABASE IF EXISTS bench{self.n} WITH (FORCE)")
        self.n += 1
        db = f"bench{self.n}"
        self.pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {db}")
        return self.pg("dsn", "--dbname", db, capture=True)

    def destroy(self):
        if self in self.run.pgs:
            self.run.pgs.remove(self)
            subprocess.run([str(SCRIPTS_PG), "destroy", str(self.dir)],
                           stdin=subprocess.DEVNULL, check=False)


class Echo:
    """boxoffice-bench --echo-server: the bare nng REQ/REP echo."""

    def __init__(self, run):
        self.port = free_port()
        self.proc = Proc(run, "nng echo", [str(run.bench_exe), "--echo-server", self.url()],
                         "echo.log")
        wait_until("the nng echo server", self.proc, lambda: tcp_answers(self.port))

    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.stop()


# ---- compare -------------------------------------------------------------------

class Setting:
    """One client setting of one system: `key` names it in the JSON
    (<key>_per_sec ...), `system` is boxoffice-bench's --system, `server`
    the kind of system started for it."""

    def __init__(self, key, system, server, conns, depth, opt=None, what=""):
        self.key, self.system, self.server = key, system, server
        self.conns, self.depth, self.opt, self.what = conns, depth, opt, what

    def client_args(self, handle=None):
        """--conns, --depth and --opt for boxoffice-bench; handle is the
        system started for it (the framed front's setup and audit go over
        the same server's nng socket, which --opt nng names)."""
        opts = [self.opt] if self.opt else []
        if self.system == "boxoffice-frame":
            opts.append(f"nng={handle.url()}")
        a = ["--conns", str(self.conns), "--depth", str(self.depth)]
        return a + (["--opt", ",".join(opts)] if opts else [])


# One command per request, then each system's best client setting: Redis
# pipelined 16 deep on the same 32 connections, PostgreSQL in libpq's
# pipeline mode 16 deep, boxoffice 64 commands in flight on each of 32
# connections, which the client library coalesces into messages. (Measured
# on a quiet machine, closed loop, on-sale: 4 x 256 gave 270-282k/s at p99
# 10-12 ms, 8 x 256 436k/s at 11.7 ms, 16 x 256 491k/s at 20 ms, 32 x 64
# 445k/s at 10.6 ms: more connections of fewer commands keep every round
# short, since a round waits for the slowest command in it.)
SETTINGS = [
    Setting("boxoffice", "boxoffice", "boxoffice", 32, 64, None,
            "client library, 32 connections of 64 in flight, coalesced into messages"),
    Setting("boxoffice_single_nng", "boxoffice", "boxoffice", 32, 1, "single=1",
            "client library, one command a message (nng REQ/REP)"),
    Setting("boxoffice_single_frame", "boxoffice-frame", "boxoffice", 32, 1, None,
            "framed TCP front, one command a frame"),
    Setting("redis_always", "redis", "redis-always", 32, 1, None,
            "Lua scripts, unpipelined, appendfsync always"),
    Setting("redis_always_pipelined", "redis", "redis-always", 32, 16, None,
            "Lua scripts, pipelined 16 deep, appendfsync always"),
    Setting("redis_everysec", "redis", "redis-everysec", 32, 1, None,
            "Lua scripts, unpipelined, appendfsync everysec"),
    Setting("redis_everysec_pipelined", "redis", "redis-everysec", 32, 16, None,
            "Lua scripts, pipelined 16 deep, appendfsync everysec"),
    Setting("postgres_single", "postgres", "postgres", 16, 1, None,
            "row-lock transactions, 16 clients"),
    Setting("postgres_pipelined", "postgres", "postgres", 16, 16, None,
            "row-lock transactions, libpq pipeline 16 deep"),
    Setting("nng_echo", "nng-echo", "echo", 32, 1, None,
            "bare nng REQ/REP echo of boxoffice's message sizes"),
]


class Systems:
    """Starts the system a Setting needs, fresh, and gives boxoffice-bench's
    --target for it."""

    def __init__(self, run, bo_extra=()):
        self.run = run
        self.bo_extra = list(bo_extra)
        self.pg = None

    def start(self, s):
        """(handle with .stop(), target) for setting s; raises Missing or
        HarnessError."""
        if s.system not in bench_systems(self.run):
            raise Missing(f"boxoffice-bench has no system '{s.system}'")
        if s.server == "boxoffice":
            if s.system == "boxoffice-frame" and not server_has(self.run, "--frame"):
                raise Missing("boxoffice-server has no --frame (framed TCP front)")
            bo = Boxoffice(self.run, extra=self.bo_extra)
            if s.system == "boxoffice-frame":
                return bo, f"127.0.0.1:{bo.frame}"
            return bo, bo.url()
        if s.server.startswith("redis-"):
            r = Redis(self.run, s.server.split("-", 1)[1])
            return r, r.target()
        if s.server == "postgres":
            if self.pg is None:
                self.pg = Postgres(self.run)
                dsn = self.pg.fresh(restart=False)
            else:
                dsn = self.pg.fresh(restart=not self.run.quick)
            return None, dsn
        if s.server == "echo":
            e = Echo(self.run)
            return e, e.url()
        raise AssertionError(s.server)


def workload_args(run, seed=1):
    """What every run of one harness invocation shares: the workload, its
    size (boxoffice-bench's defaults, --quick's in quick mode) and the
    seed, so every system sees the same request stream."""
    a = ["--workload", run.args.workload, "--seed", str(seed)]
    return a + (["--quick"] if run.quick else [])


def bench_timeout(duration):
    # Setup (creating the events, PostgreSQL's rows) and the audit come on
    # top of the load's duration.
    return duration * 3 + 300


def warmup_args(run):
    """compare's runs (closed loop and the sweep) start with one second of
    the same load that is not measured, for every system alike: the first
    second of a fresh system (connections, the server's first touches of
    its memory, the bench's own) has a p99 several times that of the
    seconds after it, and a 5 s sweep point would report that second. The
    SLO run measures everything from its first request (no warm-up)."""
    return [] if run.quick else ["--warmup", str(WARMUP_S)]


WARMUP_S = 1


def closed_run(run, systems, s, duration):
    """One closed-loop run of setting s on a fresh system; its JSON or None.
    For boxoffice's batched setting also the recovered engine's audit."""
    try:
        handle, target = systems.start(s)
    except Missing as e:
        log(f"{s.key}: not run: {e}")
        return None, str(e)
    audit = None
    try:
        res = run.bench(s.key, ["--system", s.system, "--target", target, *workload_args(run),
                                "--mode", "closed", "--duration", str(duration),
                                *warmup_args(run), *s.client_args(handle)],
                        bench_timeout(duration + WARMUP_S))
        if handle is not None:
            handle.stop()
        if res is not None and s.key == "boxoffice":
            audit = recovered_audit(run, handle)
    finally:
        if handle is not None and handle.proc.alive():
            handle.stop()
    if res is not None and audit is not None:
        res["recovered_audit"] = audit
    return res, None


def recovered_audit(run, bo):
    """Restarts boxoffice-server on the data directory of the run just done
    (the engine recovers from the journal) and asks boxoffice-bench for the
    engine's own figures (--audit-only --opt as=engine)."""
    bo2 = Boxoffice(run, data=bo.data, extra=run.systems.bo_extra, frame=False)
    try:
        return run.bench("boxoffice_recovered_audit",
                         ["--audit-only", "--system", "boxoffice", "--target", bo2.url(),
                          *workload_args(run), "--opt", "as=engine"], bench_timeout(0))
    finally:
        bo2.stop()


def audit_figs(audit):
    """The system's figures {name: value} of a run's "audit" object (lg.h's
    lg_audit: NAME_booked, NAME_held beside boxoffice-bench's own
    bench_booked and bench_booked_max, which are not a store's)."""
    if not isinstance(audit, dict):
        return {}
    return {k: v for k, v in audit.items()
            if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("bench_")
            and (k.endswith("_booked") or k.endswith("_held"))}


def audit_agreement(live, recovered):
    """Booked seats as the live run's stores saw them (engine, read model)
    against the engine recovered from the journal after a restart. Held
    seats are left out: holds expire while the server restarts."""
    lf = audit_figs((live or {}).get("audit"))
    rf = audit_figs((recovered or {}).get("audit"))
    live_booked = {k: v for k, v in lf.items() if k.endswith("_booked")}
    rec = rf.get("engine_booked")
    if rec is None or not live_booked:
        return {"agree": None, "live": lf, "recovered": rf,
                "why": "no booked figures to compare (audit missing)"}
    agree = all(v == rec for v in live_booked.values())
    return {"agree": agree, "live": lf, "recovered": rf,
            "compared": sorted(live_booked) + ["recovered engine_booked"]}


def cmd_compare(run):
    duration = run.args.duration or (2 if run.quick else 10)
    run.systems = Systems(run, ["--throttle-rate", "0"])
    runs, skipped = {}, {}
    for s in SETTINGS:
        if run.args.only and not any(s.key.startswith(o) for o in run.args.only.split(",")):
            skipped[s.key] = "not asked for (--only)"
            continue
        res, why = closed_run(run, run.systems, s, duration)
        runs[s.key] = res
        if why:
            skipped[s.key] = why
    out = summarize_compare(run, runs, skipped, duration)
    latency_sweep(run, runs)
    plot_latency(run)
    out["files"] = {"runs": str(run.out / "runs"), "latency": "latency_vs_load.json",
                    "plot": "latency_vs_load.png"}
    out["errors"] = run.errors
    return out


def num(res, field):
    v = res.get(field) if isinstance(res, dict) else None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def best_of(runs, keys):
    """The key among keys whose run reached the most requests/s, or None."""
    done = [k for k in keys if num(runs.get(k), "per_sec") is not None]
    return max(done, key=lambda k: runs[k]["per_sec"]) if done else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def put_figures(out, name, res):
    out[f"{name}_per_sec"] = num(res, "per_sec")
    out[f"{name}_p99_ms"] = num(res, "p99_ms")
    out[f"{name}_oversell"] = num(res, "oversell")
    # The run's own audit: its stores' booked seats equal what the bench
    # saw confirmed (null: the system has no audit, or the run failed).
    out[f"{name}_audit_agree"] = ((res or {}).get("audit") or {}).get("agree")


def summarize_compare(run, runs, skipped, duration):
    """The compare JSON line from the runs (None for a run that failed or
    was not possible, and then its figures are null)."""
    out = {"bench": "compare", "workload": run.args.workload, "quick": run.quick,
           "duration_s": duration, "shards": SHARDS, "cores": os.cpu_count()}
    for s in SETTINGS:
        put_figures(out, s.key, runs.get(s.key))
    # The fastest single-command path (nng through the client library, or
    # the framed TCP front when the server has it).
    single = best_of(runs, ["boxoffice_single_nng", "boxoffice_single_frame"])
    put_figures(out, "boxoffice_single", runs.get(single))
    out["boxoffice_single_path"] = {"boxoffice_single_nng": "nng",
                                    "boxoffice_single_frame": "frame"}.get(single)
    pg = best_of(runs, ["postgres_single", "postgres_pipelined"])
    put_figures(out, "postgres", runs.get(pg))
    out["postgres_best_setting"] = pg
    ra = best_of(runs, ["redis_always", "redis_always_pipelined"])
    re_ = best_of(runs, ["redis_everysec", "redis_everysec_pipelined"])
    out["redis_always_best_setting"] = ra
    out["redis_everysec_best_setting"] = re_
    bo = out["boxoffice_per_sec"]
    ra_rate = num(runs.get(ra), "per_sec")
    out["ratio_vs_redis_always"] = ratio(bo, ra_rate)
    out["ratio_vs_redis_everysec"] = ratio(bo, num(runs.get(re_), "per_sec"))
    out["ratio_vs_postgres"] = ratio(bo, out["postgres_per_sec"])
    out["single_ratio_vs_redis_always"] = ratio(out["boxoffice_single_per_sec"],
                                                out["redis_always_per_sec"])
    audit = audit_agreement(runs.get("boxoffice"),
                            (runs.get("boxoffice") or {}).get("recovered_audit"))
    out["boxoffice_audit_agree"] = audit["agree"]
    out["boxoffice_audit"] = audit
    out["audits"] = {s.key: (runs[s.key] or {}).get("audit") for s in SETTINGS if runs.get(s.key)}
    out["targets"] = compare_targets(out, runs.get(ra))
    out["settings"] = {s.key: f"{s.system} --conns {s.conns} --depth {s.depth}"
                       + (f" --opt {s.opt}" if s.opt else "") for s in SETTINGS}
    out["skipped"] = skipped
    return out


def target(value, goal, met):
    return {"value": value, "target": goal, "met": bool(met) if value is not None else False}


def compare_targets(out, redis_best):
    """The issue's targets for compare, each {value, target, met}."""
    bo = out["boxoffice_per_sec"]
    rp99 = num(redis_best, "p99_ms")
    bp99 = out["boxoffice_p99_ms"]
    ov = [out[f"{k}_oversell"] for k in ("boxoffice", "boxoffice_single_nng",
                                          "boxoffice_single_frame")]
    ov_known = [v for v in ov if v is not None]
    return {
        "ratio_vs_redis_always": target(out["ratio_vs_redis_always"], 5.0,
                                        (out["ratio_vs_redis_always"] or 0) >= 5.0),
        "p99_below_redis_always": {"value": bp99, "target": rp99,
                                   "met": bp99 is not None and rp99 is not None and bp99 < rp99},
        "ratio_vs_postgres": target(out["ratio_vs_postgres"], 100.0,
                                    (out["ratio_vs_postgres"] or 0) >= 100.0),
        "boxoffice_oversell": {"value": max(ov_known) if ov_known else None, "target": 0,
                               "met": bool(ov_known) and bo is not None
                               and all(v == 0 for v in ov_known)},
        "single_vs_redis_always": target(out["single_ratio_vs_redis_always"], 1.0,
                                         (out["single_ratio_vs_redis_always"] or 0) >= 1.0),
    }


# ---- latency against offered load ---------------------------------------------

# The best setting of each system, plotted as one line each.
SWEEP = [
    ("boxoffice", ["boxoffice"]),
    ("boxoffice_single", ["boxoffice_single_nng", "boxoffice_single_frame"]),
    ("redis_always", ["redis_always", "redis_always_pipelined"]),
    ("redis_everysec", ["redis_everysec", "redis_everysec_pipelined"]),
    ("postgres", ["postgres_single", "postgres_pipelined"]),
    ("nng_echo", ["nng_echo"]),
]


def latency_sweep(run, runs):
    """Open-loop runs of each system's best setting at fractions of the
    rate it reached closed-loop; writes OUT/latency_vs_load.dat (one block
    per system: offered, achieved, p50, p95, p99, p99.9 in ms) and .json.
    Returns the points."""
    # --quick only proves the sweep works (one point a system): the test
    # suite's two quick runs must stay well under three minutes.
    fracs = [0.5] if run.quick else [0.1, 0.25, 0.5, 0.75, 0.9]
    duration = run.args.duration or (1 if run.quick else 5)
    by_key = {s.key: s for s in SETTINGS}
    points = {}
    for name, keys in SWEEP:
        best = best_of(runs, keys)
        if best is None:
            continue
        s, peak = by_key[best], runs[best]["per_sec"]
        rows = []
        for f in fracs:
            rate = max(1, int(peak * f))
            try:
                handle, target = run.systems.start(s)
            except HarnessError as e:
                run.errors.append(f"latency sweep, {name} at {rate}/s: {e}")
                continue
            try:
                res = run.bench(f"sweep-{name}-{int(f * 100)}pct",
                                ["--system", s.system, "--target", target, *workload_args(run),
                                 "--mode", "open", "--rate", str(rate),
                                 "--duration", str(duration), *warmup_args(run),
                                 *s.client_args(handle)],
                                bench_timeout(duration + WARMUP_S))
            finally:
                if handle is not None:
                    handle.stop()
            if res is not None:
                rows.append({"offered_per_sec": rate, "fraction": f,
                             "achieved_per_sec": num(res, "per_sec"),
                             **{k: num(res, k) for k in ("p50_ms", "p95_ms", "p99_ms",
                                                         "p999_ms")}})
        points[name] = {"setting": best, "conns": s.conns, "depth": s.depth,
                        "closed_loop_per_sec": peak, "points": rows}
    write_sweep(run, points)
    return points


def write_sweep(run, points):
    with open(run.out / "latency_vs_load.dat", "w") as f:
        f.write("# latency against offered load (open loop): one block per system\n")
        for name, p in points.items():
            if not p["points"]:
                continue  # no block: gnuplot's index counts blocks with data
            f.write(f"# {name} ({p['setting']}, closed loop {p['closed_loop_per_sec']:.0f}/s)\n")
            f.write("# offered_per_sec achieved_per_sec p50_ms p95_ms p99_ms p999_ms\n")
            for r in p["points"]:
                vals = [r["offered_per_sec"], r["achieved_per_sec"], r["p50_ms"], r["p95_ms"],
                        r["p99_ms"], r["p999_ms"]]
                f.write(" ".join("nan" if v is None else f"{v:g}" for v in vals) + "\n")
            f.write("\n\n")
    (run.out / "latency_vs_load.json").write_text(json.dumps(points, indent=1) + "\n")


def gnuplot(run, script, png):
    """Runs gnuplot on script (in OUT); a missing gnuplot or a failed plot
    is an error of the run (reported), not the end of it."""
    exe = shutil.which("gnuplot")
    if not exe:
        run.errors.append(f"{png}: gnuplot not found (Debian: gnuplot-nox)")
        return
    path = run.out / (Path(png).stem + ".gp")
    path.write_text(script)
    p = subprocess.run([exe, path.name], cwd=run.out, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if p.returncode != 0:
        run.errors.append(f"{png}: gnuplot failed: {p.stdout.decode(errors='replace')[-400:]}")
    else:
        log(f"wrote {run.out / png}")


def plot_latency(run):
    """latency_vs_load.png: p99 (solid) and p50 (dotted) against offered
    load, one colour per system, both axes logarithmic (the systems lie
    two orders of magnitude apart)."""
    try:
        points = json.loads((run.out / "latency_vs_load.json").read_text())
    except (OSError, ValueError):
        return
    lines = []
    plotted = [(name, p) for name, p in points.items() if p["points"]]
    for i, (name, p) in enumerate(plotted):
        # One legend entry a system (its p50 shares the colour).
        lines.append(f"'latency_vs_load.dat' index {i} using 1:5 with linespoints lw 2 pt 7 "
                     f"lc {i + 1} dt 1 title '{p['setting']} ({p['conns']} conns x "
                     f"{p['depth']})'")
        lines.append(f"'latency_vs_load.dat' index {i} using 1:3 with linespoints lw 1 pt 6 "
                     f"lc {i + 1} dt 3 notitle")
    if not lines:
        run.errors.append("latency_vs_load.png: no points to plot")
        return
    script = f"""# Written by perf/harness/harness.py
set terminal pngcairo size 1100,760 noenhanced font ',10'
set output 'latency_vs_load.png'
set title "Latency against offered load, open loop, {run.args.workload}\\np99 solid, p50 dotted in the same colour"
set logscale xy
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set xlabel 'offered load (requests/s)'
set ylabel 'latency (ms)'
set format x '%.0s%c'
set key below maxrows 3
set datafile missing 'nan'
plot {", ".join(lines)}
"""
    gnuplot(run, script, "latency_vs_load.png")


# ---- slo -------------------------------------------------------------------------


def parse_metrics(text):
    """A Prometheus text page as {name: [(labels dict, value)]}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        lab = {}
        for part in labels.rstrip("}").split(","):
            k, eq, v = part.partition("=")
            if eq:
                lab[k.strip()] = v.strip().strip('"')
        try:
            out.setdefault(name, []).append((lab, float(value)))
        except ValueError:
            continue
    return out


def one(m, name):
    v = m.get(name)
    return v[0][1] if v else None


def per_shard(m, name):
    """{shard: value} of a per-shard family."""
    return {int(lab["shard"]): v for lab, v in m.get(name, []) if "shard" in lab}


def metrics_sample(m, t):
    """What the SLO takes from one /metrics page at time t."""
    states = m.get("boxoffice_committer_state", [])
    running = {int(lab["shard"]) for lab, v in states
               if lab.get("state") == "running" and v == 1}
    shards = per_shard(m, "boxoffice_shard_commands_total")
    lags = per_shard(m, "boxoffice_committer_lag_seconds")
    all_running = bool(shards) and running == set(shards)
    age = one(m, "boxoffice_projection_queue_age_seconds")
    rml = per_shard(m, "boxoffice_read_model_lag_records")
    return {
        "t": t,
        # Only while every shard's committer runs: a lag of 0 from an
        # absent committer is no figure.
        "commit_lag_ms": max(lags.values()) * 1000 if all_running and lags else None,
        "projection_age_ms": age * 1000 if age is not None else None,
        "read_model_lag_records": max(rml.values()) if rml else None,
        "balance": one(m, "boxoffice_shard_balance"),
        "answered": one(m, "boxoffice_commands_total"),
        "commands": [shards[k] for k in sorted(shards)],
        "queue_wait": [(lab["le"], v) for lab, v in
                       m.get("boxoffice_projection_queue_wait_seconds_bucket", [])],
    }


class Scraper(threading.Thread):
    """GET /metrics once a second until stopped; keeps every sample."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.samples, self.failures = port, [], 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.monotonic()
            status, body = http_get(self.port, "/metrics")
            if status == 200:
                self.samples.append(metrics_sample(parse_metrics(body), t))
            else:
                self.failures += 1
            self.halt.wait(max(0.0, 1.0 - (time.monotonic() - t)))

    def stop(self):
        self.halt.set()
        self.join()


def p95(values):
    """Nearest-rank 95th percentile; None for no values."""
    v = sorted(x for x in values if x is not None)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)] if v else None


def hist_p95_ms(first, last):
    """The 95th percentile (its bucket's upper bound, ms) of the
    observations a cumulative histogram gained between two samples."""
    a = dict(first)
    gained = [(le, v - a.get(le, 0.0)) for le, v in last]
    total = dict(gained).get("+Inf")
    if not total:
        return None
    for le, cum in gained:
        if le != "+Inf" and cum >= 0.95 * total:
            return float(le) * 1000
    return None


def load_window(samples, rate):
    """(i, j): samples[i] is the last one before the load, samples[j] the
    last one during it, found from the server's own count of commands
    answered: an interval in which it answered at least a tenth of the
    offered rate is load (the bench's setup before it and its audit after
    it are far slower). None when no interval was."""
    active = [k for k in range(1, len(samples))
              if None not in (samples[k]["answered"], samples[k - 1]["answered"])
              and (samples[k]["answered"] - samples[k - 1]["answered"])
              >= 0.1 * rate * (samples[k]["t"] - samples[k - 1]["t"])]
    return (active[0] - 1, active[-1]) if active else None


def slo_from_samples(samples, rate):
    """The /metrics figures of the load: the counters from the sample
    before it to its last one, the gauges of the samples during it."""
    w = load_window(samples, rate)
    if w is None:
        return {"samples": 0}
    samples = samples[w[0]:w[1] + 1]
    during = samples[1:]
    out = {"samples": len(during), "load_began_s": round(samples[0]["t"], 3)}
    lag = [s["commit_lag_ms"] for s in during]
    out["commit_lag_ms_p95"] = p95(lag) if all(v is not None for v in lag) else None
    out["projection_lag_ms_p95"] = p95(s["projection_age_ms"] for s in during)
    out["read_model_lag_records_p95"] = p95(s["read_model_lag_records"] for s in during)
    first, last = samples[0], samples[-1]
    c = [b - a for a, b in zip(first["commands"], last["commands"])]
    out["shard_commands"] = c
    out["shard_balance"] = (max(c) / (sum(c) / len(c))) if c and sum(c) > 0 else None
    gauges = [s["balance"] for s in samples if s["balance"] is not None]
    out["shard_balance_gauge_max"] = max(gauges) if gauges else None
    out["projection_queue_wait_ms_p95"] = hist_p95_ms(first["queue_wait"], last["queue_wait"])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def slo_figure(value, goal, met, **more):
    if isinstance(value, float):
        value = round(value, 4)  # the samples' float noise says nothing
    return {"value": value, "target": goal, "met": bool(met) if value is not None else False,
            **more}


def slo_figures(res, m):
    """The L3 figures, each {value, target, met}; a figure not measured is
    null and not met."""
    p95_ms, p99_ms = num(res, "p95_ms"), num(res, "p99_ms")
    err, ov = num(res, "error_rate"), num(res, "oversell")
    lag, bal, proj = m.get("commit_lag_ms_p95"), m.get("shard_balance"), m.get(
        "projection_lag_ms_p95")
    T = SLO_TARGETS
    return {
        "p95_ms": slo_figure(p95_ms, T["p95_ms"], p95_ms is not None and p95_ms < T["p95_ms"]),
        "p99_ms": slo_figure(p99_ms, T["p99_ms"], p99_ms is not None and p99_ms < T["p99_ms"],
                             aim=SLO_P99_AIM_MS,
                             aim_met=p99_ms is not None and p99_ms < SLO_P99_AIM_MS),
        "error_rate": slo_figure(err, T["error_rate"], err is not None and err < T["error_rate"]),
        "oversell": slo_figure(ov, 0, ov == 0),
        "commit_lag_ms_p95": slo_figure(lag, T["commit_lag_ms_p95"],
                                        lag is not None and lag < T["commit_lag_ms_p95"]),
        # The blueprint gives no target for the projection's staleness;
        # the issue asks for it to be reported: met when measured.
        "projection_lag_ms_p95": slo_figure(
            proj, None, proj is not None,
            note="age of the oldest projection message not yet published "
                 "(boxoffice_projection_queue_age_seconds), sampled once a second; "
                 "no target in the blueprint: met when measured"),
        "shard_balance_max_over_avg": slo_figure(
            bal, T["shard_balance_max_over_avg"],
            bal is not None and bal <= T["shard_balance_max_over_avg"],
            note="max/avg of the commands each shard accepted over the whole load "
                 "(boxoffice_shard_commands_total)"),
    }


def cmd_slo(run):
    """boxoffice-server with the PostgreSQL committer on a private cluster
    and a projection publisher, the on-sale profile open loop at the L3
    rate, /metrics scraped once a second meanwhile."""
    rate = run.args.rate or (20000 if run.quick else 100000)
    duration = run.args.duration or (5 if run.quick else 60)
    pg = Postgres(run)
    dsn = pg.fresh(restart=False)
    extra = ["--pg-dsn", dsn, "--publish", f"ipc://{run.work}/pub.ipc"]
    bo = Boxoffice(run, extra=extra, frame=False)
    scraper = Scraper(bo.http)
    scraper.start()
    try:
        t0 = time.monotonic()
        # --opt pg: the audit also counts the committer's tables (it waits
        # for them to settle), so oversell covers PostgreSQL too.
        res = run.bench("slo", ["--system", "boxoffice", "--target", bo.url(),
                                *workload_args(run), "--mode", "open", "--rate", str(rate),
                                "--duration", str(duration), "--timeline", "--conns", "16",
                                "--depth", "64", "--opt", f"pg={dsn}"],
                        bench_timeout(duration))
        t1 = time.monotonic()
    finally:
        scraper.stop()
        bo.stop()
        pg.destroy()
    # The samples of the load itself (the bench's setup came before it, its
    # audit after it: both inside the bench's lifetime).
    m = slo_from_samples(scraper.samples, rate)
    if m["samples"] < 1:
        run.errors.append(f"/metrics: no sample during the load ({len(scraper.samples)} "
                          f"samples, {scraper.failures} scrapes failed)")
    figs = slo_figures(res, m)
    out = {"bench": "slo", "workload": run.args.workload, "quick": run.quick, **figs,
           "offered_per_sec": rate, "achieved_per_sec": num(res, "per_sec"),
           "duration_s": duration, "all_met": all(f["met"] for f in figs.values()),
           "bench_wall_s": round(t1 - t0, 1), "metrics": m,
           "server_args": bo.argv[1:], "audit": (res or {}).get("audit"),
           "outcomes": (res or {}).get("outcomes")}
    write_timeline(run, res)
    write_samples(run, scraper.samples, m.pop("load_began_s", t0))
    out["errors"] = run.errors
    return out


def write_samples(run, samples, t0):
    """slo_metrics.dat: what each /metrics sample said, in seconds since
    the sample before the load (so within a second of the timeline's
    clock); negative: before the load."""
    with open(run.out / "slo_metrics.dat", "w") as f:
        f.write("# t_s commit_lag_ms projection_age_ms read_model_lag_records "
                "shard_balance (/metrics once a second during the SLO run)\n")
        for s in samples:
            vals = [s["t"] - t0, s["commit_lag_ms"], s["projection_age_ms"],
                    s["read_model_lag_records"], s["balance"]]
            f.write(" ".join("nan" if v is None else f"{v:.6g}" for v in vals) + "\n")


def write_timeline(run, res):
    """slo_timeline.dat (t_s, per_sec, p99_ms per second of the load) and
    slo_timeline.png: throughput on the left axis, p99 on the right."""
    tl = (res or {}).get("timeline") or []
    # The last second is cut short by the end of the run: a rate over a few
    # milliseconds says nothing, so a last bucket under half a second goes.
    dur = num(res, "duration_s")
    if tl and dur is not None and dur - tl[-1].get("t_s", 0) < 0.5:
        tl = tl[:-1]
    with open(run.out / "slo_timeline.dat", "w") as f:
        f.write("# t_s per_sec p99_ms (boxoffice-bench --timeline of the SLO run)\n")
        for p in tl:
            vals = [p.get("t_s"), p.get("per_sec"), p.get("p99_ms")]
            f.write(" ".join("nan" if v is None else f"{v:g}" for v in vals) + "\n")
    if not tl:
        run.errors.append("slo_timeline.png: the run has no timeline")
        return
    script = f"""# Written by perf/harness/harness.py
set terminal pngcairo size 1100,600 noenhanced font ',10'
set output 'slo_timeline.png'
set title 'SLO run: {run.args.workload}, open loop at {fmt_rate((res or {}).get("offered_per_sec"))} requests/s'
set grid lc rgb '#dddddd'
set xlabel 'time (s)'
set ylabel 'requests/s'
set y2label 'p99 (ms)'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set format y '%.0s%c'
set key outside right top
set datafile missing 'nan'
plot 'slo_timeline.dat' using 1:2 axes x1y1 with lines lw 2 lc 1 title 'throughput', \\
     'slo_timeline.dat' using 1:3 axes x1y2 with lines lw 2 lc 7 title 'p99'
"""
    gnuplot(run, script, "slo_timeline.png")


# ---- checks (the test suite) ------------------------------------------------------

COMPARE_KEYS = [
    "boxoffice_per_sec", "boxoffice_single_per_sec", "boxoffice_single_path",
    "redis_always_per_sec", "redis_always_pipelined_per_sec", "redis_everysec_per_sec",
    "redis_everysec_pipelined_per_sec", "postgres_per_sec", "postgres_single_per_sec",
    "nng_echo_per_sec", "ratio_vs_redis_always", "ratio_vs_postgres", "boxoffice_oversell",
    "boxoffice_audit_agree",
]
# Measured in every run (the framed front, PostgreSQL's pipelined setting
# are extras of their branches).
COMPARE_MEASURED = [k for k in COMPARE_KEYS if k.endswith("_per_sec")] + [
    f"{k}_p99_ms" for k in ("boxoffice", "boxoffice_single", "redis_always",
                            "redis_always_pipelined", "redis_everysec",
                            "redis_everysec_pipelined", "postgres", "postgres_single",
                            "nng_echo")]
SLO_KEYS = ["p95_ms", "p99_ms", "error_rate", "oversell", "commit_lag_ms_p95",
            "projection_lag_ms_p95", "shard_balance_max_over_avg"]


def check_compare(o):
    """What is wrong with a compare JSON line (empty: nothing)."""
    bad = [f"missing key {k}" for k in COMPARE_KEYS + COMPARE_MEASURED if k not in o]
    bad += [f"{k} not measured (null)" for k in COMPARE_MEASURED if k in o and o[k] is None]
    for k in ("boxoffice", "boxoffice_single"):
        if o.get(f"{k}_oversell") != 0:
            bad.append(f"{k}_oversell is {o.get(f'{k}_oversell')!r}, not 0")
    for k in ("boxoffice", "boxoffice_single_nng", "boxoffice_single_frame"):
        if o.get(f"{k}_audit_agree") is False:
            bad.append(f"{k}_audit_agree is false: the server's stores disagree with the bench")
    if o.get("boxoffice_audit_agree") is not True:
        bad.append(f"boxoffice_audit_agree is {o.get('boxoffice_audit_agree')!r}: the "
                   f"recovered engine and the live run's stores disagree (or no audit)")
    bad += [f"run error: {e}" for e in o.get("errors", ["errors missing"])]
    return bad


def check_slo(o):
    """What is wrong with an slo JSON line (empty: nothing). The quick run
    is too short for the rate targets to mean much, so only the shape, a
    measured value for every figure and oversell 0 are required."""
    bad = []
    for k in SLO_KEYS:
        f = o.get(k)
        if not isinstance(f, dict) or not {"value", "target", "met"} <= f.keys():
            bad.append(f"{k} missing or not {{value, target, met}}")
        elif f["value"] is None:
            bad.append(f"{k} not measured (null)")
    for k in ("offered_per_sec", "achieved_per_sec", "all_met"):
        if k not in o:
            bad.append(f"missing key {k}")
    if (o.get("oversell") or {}).get("value") != 0:
        bad.append(f"oversell is {(o.get('oversell') or {}).get('value')!r}, not 0")
    bad += [f"run error: {e}" for e in o.get("errors", ["errors missing"])]
    return bad


def selftest():
    """The checks must fail: a good line passes, each broken copy fails."""
    good_c = {k: 1.0 for k in COMPARE_KEYS + COMPARE_MEASURED}
    good_c.update(boxoffice_single_path="nng", boxoffice_oversell=0,
                  boxoffice_single_oversell=0, boxoffice_audit_agree=True, errors=[])
    good_s = {k: {"value": 1.0, "target": 2.0, "met": True} for k in SLO_KEYS}
    good_s["oversell"]["value"] = 0
    good_s.update(offered_per_sec=1, achieved_per_sec=1, all_met=True, errors=[])
    cases = [("compare ok", check_compare, good_c, True),
             ("slo ok", check_slo, good_s, True)]
    for k in ("boxoffice_per_sec", "redis_always_p99_ms", "ratio_vs_postgres"):
        cases.append((f"compare without {k}", check_compare,
                      {a: b for a, b in good_c.items() if a != k}, False))
    cases += [("compare oversell 1", check_compare, {**good_c, "boxoffice_oversell": 1}, False),
              ("compare single oversell", check_compare,
               {**good_c, "boxoffice_single_oversell": 2}, False),
              ("compare null rate", check_compare, {**good_c, "postgres_per_sec": None}, False),
              ("compare audit disagrees", check_compare,
               {**good_c, "boxoffice_audit_agree": False}, False),
              ("compare run audit disagrees", check_compare,
               {**good_c, "boxoffice_single_frame_audit_agree": False}, False),
              ("compare run error", check_compare, {**good_c, "errors": ["x"]}, False),
              ("slo without p99", check_slo,
               {a: b for a, b in good_s.items() if a != "p99_ms"}, False),
              ("slo oversell", check_slo,
               {**good_s, "oversell": {"value": 3, "target": 0, "met": False}}, False),
              ("slo lag null", check_slo,
               {**good_s, "commit_lag_ms_p95": {"value": None, "target": 5000, "met": False}},
               False),
              ("slo flat figure", check_slo, {**good_s, "error_rate": 0.0}, False)]
    wrong = [name for name, fn, obj, ok in cases if (not fn(obj)) != ok]
    # p95 and the histogram's percentile on known input.
    if p95(range(1, 101)) != 95 or p95([]) is not None:
        wrong.append("p95")
    if hist_p95_ms([("0.001", 0), ("0.002", 0), ("+Inf", 0)],
                   [("0.001", 90), ("0.002", 100), ("+Inf", 100)]) != 2.0:
        wrong.append("hist_p95_ms")
    for w in wrong:
        log(f"selftest: {w}: wrong verdict")
    log(f"selftest: {len(cases) + 2 - len(wrong)}/{len(cases) + 2} right")
    return 1 if wrong else 0


# ---- main ----------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="harness.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, what):
        p.add_argument("--quick", action="store_true",
                       help="short runs (what the test suite does)")
        p.add_argument("--build", default=str(ROOT / "build"),
                       help="the Meson build dir with the binaries (default: build/)")
        p.add_argument("--out", help="results directory (default: perf/results, "
                       "perf/results/quick with --quick)")
        p.add_argument("--duration", type=int,
                       help="seconds of each run (compare: 10, quick 2; slo: 60, quick 5)")
        p.add_argument("--keep", action="store_true",
                       help="keep the work directory (data, logs) for a post-mortem")
        p.add_argument("--workload", default="on-sale",
                       help="boxoffice-bench's --workload (default on-sale)")
        if what == "compare":
            p.add_argument("--only", help="only the settings whose key starts with one of "
                           "these (comma-separated), e.g. boxoffice,redis_always")
        else:
            p.add_argument("--rate", type=int,
                           help="offered requests/s (default 100000, quick 20000)")

    common(sub.add_parser("compare", help="every system on one workload"), "compare")
    common(sub.add_parser("slo", help="the L3 figures at 100k requests/s"), "slo")
    t = sub.add_parser("test", help="a quick run, checked (exit 77: a baseline is absent)")
    t.add_argument("what", choices=["compare", "slo"])
    t.add_argument("--build", default=str(ROOT / "build"))
    t.add_argument("--out")
    t.add_argument("--keep", action="store_true")
    sub.add_parser("selftest", help="prove the checks refuse bad JSON lines")
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        return args
    if args.cmd == "test":
        args.quick, args.duration, args.workload = True, None, "on-sale"
        args.only, args.rate = None, None
        args.out = args.out or str(Path(args.build) / "perf" / "harness-quick" / args.what)
    elif not args.out:
        args.out = str(ROOT / "perf" / "results" / ("quick" if args.quick else ""))
    return args


def needs(what):
    """Raises Missing when a program the run needs is absent."""
    if what == "compare" and not shutil.which("redis-server"):
        raise Missing("redis-server not found (Debian: redis-server; scripts/setup installs it)")
    for b in ("initdb", "pg_ctl"):
        if not os.access(PG_BIN / b, os.X_OK):
            raise Missing(f"{PG_BIN / b} not found: PostgreSQL 15 is not installed")


def execute(args, what):
    run = Run(args)
    try:
        return cmd_compare(run) if what == "compare" else cmd_slo(run)
    finally:
        run.close()


def main(argv):
    if argv[:1] == ["_guard"]:
        return guard_main()
    args = parse_args(argv)
    if args.cmd == "selftest":
        return selftest()
    what = args.what if args.cmd == "test" else args.cmd
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    started = time.monotonic()
    try:
        if args.cmd == "test":
            needs(what)
        out = execute(args, what)
    except Missing as e:
        log(f"{'SKIP: ' if args.cmd == 'test' else 'error: '}{e}")
        return 77 if args.cmd == "test" else 1
    except HarnessError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}): every system stopped")
        return 130
    out["wall_s"] = round(time.monotonic() - started, 1)
    line = json.dumps(out, separators=(",", ":"))
    Path(args.out, f"{what}.json").write_text(line + "\n")
    print(line, flush=True)
    if args.cmd == "test":
        bad = check_compare(out) if what == "compare" else check_slo(out)
        for b in bad:
            log(f"FAIL: {b}")
        log(f"{what} --quick: {'FAILED' if bad else 'ok'} in {out['wall_s']} s "
            f"(results in {args.out})")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
