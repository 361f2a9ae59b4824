#!/usr/bin/python3
"""HTTP/JSON front of boxoffice-server, against the real binary.

  http_api_test.py SERVER_BINARY TEST [TEST ...]

Each TEST starts its own server (a fresh data dir, nng on an ipc socket,
HTTP on a free port) and stops it. The clients are real ones: Python's
http.client for HTTP, and nngcat (nng-utils) with python3-msgpack for the
msgpack protocol, so the server is seen exactly as other languages see it.
Debian's /usr/bin/python3 (python3-msgpack) on purpose.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

SERVER = None
FAILURES = []


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    """One boxoffice-server child: nng on ipc, HTTP on a free port."""

    def __init__(self, extra=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="bo-http-test-")
        self.url = "ipc://" + os.path.join(self.dir, "sock")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        args = [SERVER, "--data-dir", os.path.join(self.dir, "data"), "--shards", "2",
                "--listen", self.url, "--http", "127.0.0.1:0", "--no-pg",
                "--status-every", "0", *extra]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None:
            check(self.proc.poll() is None, "server exited at start: " + self.logtext())
            m = re.search(r'msg="listening for HTTP" addr=\S+ port=(\d+)', self.logtext())
            if m:
                self.port = int(m.group(1))
            elif time.monotonic() > deadline:
                fail("server did not start within 60 s: " + self.logtext())
            else:
                time.sleep(0.02)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                fail("server did not stop within 60 s of SIGTERM")
            check(rc == 0, "server exited %d: %s" % (rc, self.logtext()[-2000:]))
        else:
            fail("server died: rc %s: %s" % (self.proc.returncode, self.logtext()[-2000:]))
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- clients ----
    def http(self, method, path, body=None, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        return r.status, dict(r.getheaders()), text

    def post(self, cmd, headers=None):
        code, hdrs, text = self.http("POST", "/v1/command", cmd, headers)
        return code, hdrs, json.loads(text)

    def nng(self, cmd):
        """One request over nng REQ/REP with nngcat; the decoded reply."""
        req = os.path.join(self.dir, "req.msgpack")
        with open(req, "wb") as f:
            f.write(msgpack.packb(cmd))
        out = subprocess.run(["nngcat", "--req", "--dial", self.url, "--file", req, "--raw",
                              "--recv-timeout", "20"], capture_output=True, timeout=60)
        check(out.returncode == 0, "nngcat failed: %r" % out.stderr)
        return msgpack.unpackb(out.stdout, raw=False)


HTTP_OF = {"ok": 200, "taken": 409, "conflict": 409, "expired": 410, "not_found": 404,
           "invalid": 400, "limit": 422, "busy": 503, "throttled": 429}

MAP = {"categories": 2, "rows": [{"section": 1, "seats": 10, "category": 0},
                                 {"section": 1, "seats": 10, "category": 1}], "pools": [50]}


def scenario(event, coff):
    """The commands of one run on `event`, its clients numbered from coff
    (idempotency keys are the server's, not the event's); HOLD1/HOLD2 stand
    for the ids the run's replies gave."""
    e = event
    cmds = [
        {"op": "create_event", "event": e, "client": 1, "request": 1, "map": MAP},
        {"op": "hold_seats", "event": e, "client": 7, "request": 1, "seats": [1, 2], "ttl_ms": 60000},
        {"op": "hold_seats", "event": e, "client": 7, "request": 1, "seats": [1, 2], "ttl_ms": 60000},
        {"op": "hold_seats", "event": e, "client": 7, "request": 1, "seats": [4, 5], "ttl_ms": 60000},
        {"op": "hold_seats", "event": e, "client": 8, "request": 1, "seats": [2, 3], "ttl_ms": 60000},
        {"op": "hold_best", "event": e, "client": 8, "request": 2, "category": 1, "quantity": 2,
         "ttl_ms": 60000},
        {"op": "hold_pool", "event": e, "client": 9, "request": 1, "pool": 0, "quantity": 5,
         "ttl_ms": 60000},
        {"op": "extend", "event": e, "client": 7, "request": 2, "hold": "HOLD1", "ttl_ms": 120000},
        {"op": "query_seats", "event": e, "seats": [1, 2, 3]},
        {"op": "query_avail", "event": e},
        {"op": "release", "event": e, "client": 8, "request": 3, "hold": "HOLD1"},
        {"op": "confirm", "event": e, "client": 7, "request": 3, "hold": "HOLD1", "payref": "pay-1"},
        {"op": "cancel", "event": e, "client": 7, "request": 4, "booking": "HOLD1"},
        {"op": "release", "event": e, "client": 9, "request": 2, "hold": "HOLD2"},
        {"op": "release", "event": e, "client": 9, "request": 3, "hold": "HOLD2"},
        {"op": "hold_seats", "event": e, "client": 7, "request": 5, "seats": [], "ttl_ms": 60000},
        {"op": "hold_seats", "event": e, "client": 7, "request": 6, "seats": [1], "ttl_ms": 10},
        {"op": "release", "event": e, "client": 7, "request": 7, "hold": 1, "colour": 3},
        {"op": "hold_seats", "event": 987654321, "client": 7, "request": 8, "seats": [1],
         "ttl_ms": 60000},
        {"op": "block", "event": e, "client": 1, "request": 2, "seats": [19]},
        {"op": "unblock", "event": e, "client": 1, "request": 3, "seats": [19]},
        {"op": "unblock", "event": e, "client": 1, "request": 4, "seats": [19]},
        {"op": "hold_pool", "event": e, "client": 9, "request": 4, "pool": 0, "quantity": 101,
         "ttl_ms": 60000},
    ]
    for c in cmds:
        if "client" in c:
            c["client"] += coff
    return cmds


def normalise(reply, ids, coff):
    """A reply with what differs between two twin events made comparable:
    the event id, hold ids (by order of appearance), times, sequences."""
    r = dict(reply)
    r.pop("event", None)
    r.pop("seq", None)
    if r.get("client"):
        r["client"] -= coff
    if "expires_at_ms" in r:
        r["expires_at_ms"] = "T"
    for k in ("hold", "booking"):
        if k in r:
            r[k] = ids.setdefault(r[k], "H%d" % len(ids))
    return r


def run_scenario(send, event, coff):
    ids, held, out = {}, [], []
    for cmd in scenario(event, coff):
        cmd = dict(cmd)
        for k in ("hold", "booking"):
            if cmd.get(k) == "HOLD1":
                cmd[k] = held[0]
            elif cmd.get(k) == "HOLD2":
                cmd[k] = held[1]
        reply = send(cmd)
        if cmd["op"] in ("hold_seats", "hold_pool") and reply.get("status") == "ok" \
                and not reply.get("replayed"):
            held.append(reply["hold"])
        out.append((cmd["op"], normalise(reply, ids, coff)))
    return out


def test_same_as_msgpack():
    """Every scenario's replies over HTTP equal those over msgpack, and the
    HTTP status follows the reply's status."""
    s = Server()
    try:
        codes = []

        def via_http(cmd):
            code, hdrs, reply = s.post(cmd)
            codes.append((code, reply, hdrs))
            return reply

        over_nng = run_scenario(s.nng, 1001, 0)
        over_http = run_scenario(via_http, 1002, 1000)
        check(len(over_nng) == len(over_http), "different lengths")
        for i, ((op, a), (_, b)) in enumerate(zip(over_nng, over_http)):
            check(a == b, "command %d (%s): msgpack %r, HTTP %r" % (i, op, a, b))
        statuses = [r["status"] for _, r in over_http]
        for want in ("ok", "taken", "conflict", "not_found", "invalid"):
            check(want in statuses, "the scenario never produced %s: %r" % (want, statuses))
        check(any(r.get("replayed") for _, r in over_http), "no replayed reply")
        for code, reply, hdrs in codes:
            check(code == HTTP_OF[reply["status"]],
                  "HTTP %d for status %s" % (code, reply["status"]))
            check(hdrs.get("Content-Type") == "application/json", "content type %r" % hdrs)
        # Reads by GET equal the query commands' replies.
        code, _, text = s.http("GET", "/v1/events/1002/availability")
        check(code == 200, "availability %d" % code)
        avail = json.loads(text)
        q = s.post({"op": "query_avail", "event": 1002})[2]
        check(avail == q, "GET availability %r != query_avail %r" % (avail, q))
        code, _, text = s.http("GET", "/v1/events/1002/seats?seats=1,2,3")
        q = s.post({"op": "query_seats", "event": 1002, "seats": [1, 2, 3]})[2]
        check(code == 200 and json.loads(text) == q, "GET seats %d %r != %r" % (code, text, q))
        code, _, text = s.http("GET", "/v1/events/424242/availability")
        check(code == 404 and json.loads(text)["detail"] == "no_event", "unknown event %d %r" % (code, text))
        code, _, text = s.http("GET", "/v1/events/1002/state")
        check(code == 200, "state %d %r" % (code, text))
        im = json.loads(text)
        check(im["event"] == 1002 and len(im["seats"]) == 20, "image %r" % im)
        # A batch answers each command in order, HTTP 200.
        batch = [{"op": "hold_seats", "event": 1002, "client": 30, "request": 1, "seats": [9],
                  "ttl_ms": 60000},
                 {"op": "hold_seats", "event": 1002, "client": 31, "request": 1, "seats": [9],
                  "ttl_ms": 60000},
                 {"op": "query_avail", "event": 1001}]
        code, _, text = s.http("POST", "/v1/batch", batch)
        replies = json.loads(text)
        check(code == 200 and [r["status"] for r in replies] == ["ok", "taken", "ok"],
              "batch %d %r" % (code, replies))
    finally:
        s.stop()


def test_errors():
    """Routes, methods, bodies: each refusal has its status and a JSON body."""
    s = Server()
    try:
        cases = [
            ("GET", "/nope", None, 404),
            ("GET", "/v1/command", None, 405),
            ("POST", "/metrics", "", 405),
            ("POST", "/v1/command", "{", 400),
            ("POST", "/v1/command", "", 400),
            ("POST", "/v1/command", "[1,2]", 400),
            ("POST", "/v1/batch", "{}", 400),
            ("POST", "/v1/batch", "[]", 400),
            ("POST", "/v1/command", "[" * 100000 + "]" * 100000, 400),
            ("POST", "/v1/command", '{"op": "query_avail", "event": 1} x', 400),
            ("POST", "/v1/command", '{"op": "query_avail", "event": 1.5}', 400),
            ("POST", "/v1/command", '{"op": "query_avail", "event": 1, "event": 2}', 400),
            ("POST", "/v1/command", b'{"op": "\xff\xfe", "event": 1}', 400),
            ("GET", "/v1/events/abc/availability", None, 404),
            ("GET", "/v1/events/9223372036854775808/availability", None, 404),
            ("GET", "/v1/events/-1/state", None, 404),
            ("GET", "/v1/events/1/seats", None, 400),
            ("GET", "/v1/events/1/seats?seats=1,x", None, 400),
        ]
        for method, path, body, want in cases:
            raw = body.encode() if isinstance(body, str) else body
            code, hdrs, text = s.http(method, path, raw=raw)
            check(code == want, "%s %s %r...: %d, want %d (%r)" % (method, path, (body or "")[:20],
                                                                  code, want, text[:200]))
            if want == 405:
                check("Allow" in hdrs, "405 without Allow")
            if want != 413:
                j = json.loads(text)
                check("status" in j, "no status in %r" % j)
        # A declared body over the bound is refused before a byte of it is
        # read (the client may not even send it).
        for path, size in (("/v1/command", (1 << 20) + 1), ("/v1/batch", (2 << 20) + 1)):
            c = raw_conn(s)
            c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (path.encode(), size))
            st = read_status(c)
            c.close()
            check(st == 413, "%s with Content-Length %d: %r" % (path, size, st))
        # Still serving.
        code, _, _ = s.http("GET", "/healthz")
        check(code == 200, "healthz %d after the errors" % code)
    finally:
        s.stop()


def raw_conn(s):
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    return c


def read_status(c):
    """The status code of the response on c, or None when it was closed."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                return None
            data += chunk
    except (ConnectionResetError, socket.timeout):
        return None
    return int(data.split(b" ")[1])


def test_hostile():
    """Chunked floods, header floods, slowloris and 10k idle connections:
    a 4xx or a closed connection, the server stays up, memory bounded."""
    s = Server()
    try:
        rss0 = s.rss_kib()
        # A chunked body past the bound: 413 or closed, never buffered whole.
        c = raw_conn(s)
        c.sendall(b"POST /v1/command HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
        try:
            for _ in range(40):  # 2.5 MiB
                c.sendall(chunk)
            c.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        st = read_status(c)
        check(st in (413, None), "chunked flood: %r" % st)
        c.close()
        # A header flood: past the per-connection memory.
        c = raw_conn(s)
        try:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for i in range(200):
                c.sendall(b"X-Flood-%d: %s\r\n" % (i, b"b" * 1000))
            c.sendall(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        st = read_status(c)
        check(st is None or 400 <= st < 500, "header flood: %r" % st)
        c.close()
        # Slowloris: 200 clients dripping a request line; others are served.
        slow = []
        for _ in range(200):
            c = raw_conn(s)
            c.sendall(b"POST /v1/command HTTP/1.1\r\nHo")
            slow.append(c)
        code, _, _ = s.http("GET", "/healthz")
        check(code == 200, "healthz beside slow clients: %d" % code)
        code, _, reply = s.post({"op": "query_avail", "event": 1})
        check(code == 404, "a command beside slow clients: %d %r" % (code, reply))
        for c in slow:
            c.close()
        # 10,000 idle connections: accepted, cheap, and others still served.
        idle = []
        for _ in range(10000):
            idle.append(raw_conn(s))
        code, _, _ = s.http("GET", "/healthz")
        check(code == 200, "healthz beside 10k idle connections: %d" % code)
        rss1 = s.rss_kib()
        check(rss1 - rss0 < 200 * 1024, "10k idle connections cost %d KiB" % (rss1 - rss0))
        for c in idle:
            c.close()
        code, _, _ = s.http("GET", "/healthz")
        check(code == 200, "healthz after the idle connections: %d" % code)
        print("hostile: RSS %d KiB at start, %d KiB with 10k idle connections" % (rss0, rss1))
    finally:
        s.stop()


def test_metrics():
    """/metrics parses with promtool and counts what was done."""
    s = Server()
    try:
        for i in range(5):
            s.post({"op": "query_avail", "event": 1})
        code, hdrs, text = s.http("GET", "/metrics")
        check(code == 200, "metrics %d" % code)
        check(hdrs.get("Content-Type", "").startswith("text/plain; version=0.0.4"), "type %r" % hdrs)
        promtool = shutil.which("promtool")
        if not promtool:
            fail("promtool not found (Debian package prometheus): cannot check /metrics")
        out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                             timeout=60)
        # 0: parsed, and no lint problem (names, HELP, TYPE, _total).
        check(out.returncode == 0, "promtool check metrics: %d %r %r" % (out.returncode, out.stdout,
                                                                         out.stderr))
        code, _, text = s.http("GET", "/readyz")
        check(code == 200 and text == b"ok\n", "readyz %d %r" % (code, text))
    finally:
        s.stop()


class Skip(Exception):
    pass


def test_php():
    """The PHP example (examples/php) holds, confirms and reads a seat."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "php_example.sh")
    s = Server()
    try:
        out = subprocess.run([script, "http://127.0.0.1:%d" % s.port], capture_output=True,
                             timeout=120)
        sys.stdout.write(out.stderr.decode(errors="replace"))
        if out.returncode == 77:
            raise Skip("php8.2-cli / php8.2-curl missing (scripts/setup installs them)")
        check(out.returncode == 0, "php_example.sh exited %d" % out.returncode)
    finally:
        s.stop()


TESTS = {n[5:]: f for n, f in globals().items() if n.startswith("test_")}


def main():
    global SERVER
    if len(sys.argv) < 3:
        print(__doc__)
        print("tests:", " ".join(TESTS))
        return 2
    SERVER = sys.argv[1]
    if not shutil.which("nngcat"):
        print("FAIL: nngcat (Debian package nng-utils) not found")
        return 1
    failed = skipped = 0
    for name in sys.argv[2:]:
        t0 = time.monotonic()
        try:
            TESTS[name]()
            print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (name, e))
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            print("FAIL %s: %s" % (name, e))
    return 1 if failed else 77 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
