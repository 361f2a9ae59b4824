"""bocluster — a local boxoffice cluster on one machine: etcd members and
boxoffice-server nodes as child processes, each node on its own loopback
address (node N on 127.0.0.(10+N)), etcd's data in tmpfs.

Used by scripts/cluster (a new user's cluster), tests/cluster/faults.py
(the fault scenarios of issue 13) and scripts/bench cluster. Only the
Python standard library: the shard map is read straight from etcd's
HTTP/JSON gateway, so nothing here depends on the code under test to tell
who is primary.

Every wait here waits for an event (a map change, a port answering, a
process exiting) with an upper bound, never for a fixed time.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

NODE_IP = "127.0.0.{}"  # node N listens on 127.0.0.(10 + N)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """A 1- or 3-member etcd cluster with data under /dev/shm."""

    def __init__(self, members=3, tag=None, log_dir=None):
        self.tag = tag or "bo-%d" % os.getpid()
        self.dir = "/dev/shm/%s-etcd" % self.tag
        self.log_dir = log_dir or self.dir
        self.members = []
        for i in range(members):
            self.members.append({"name": "e%d" % (i + 1), "client": free_port(),
                                 "peer": free_port(), "proc": None})

    def endpoints(self):
        return ",".join("http://127.0.0.1:%d" % m["client"] for m in self.members)

    def _cmd(self, m, state):
        initial = ",".join("%s=http://127.0.0.1:%d" % (x["name"], x["peer"]) for x in self.members)
        return ["etcd", "--name", m["name"], "--data-dir", os.path.join(self.dir, m["name"]),
                "--listen-client-urls", "http://127.0.0.1:%d" % m["client"],
                "--advertise-client-urls", "http://127.0.0.1:%d" % m["client"],
                "--listen-peer-urls", "http://127.0.0.1:%d" % m["peer"],
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m["peer"],
                "--initial-cluster", initial, "--initial-cluster-state", state,
                "--initial-cluster-token", self.tag,
                # Quick elections on loopback: a lost quorum is noticed fast.
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--log-level", "warn"]

    def start(self, timeout=30):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        for m in self.members:
            self.start_member(m, "new")
        self.wait_healthy(timeout)

    def start_member(self, m, state="existing"):
        log = open(os.path.join(self.log_dir, "%s.log" % m["name"]), "ab")
        m["proc"] = subprocess.Popen(self._cmd(m, state), stdout=log, stderr=log,
                                     start_new_session=True)

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.range("/boxoffice/health-probe")
                return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError("etcd did not answer within %ds (logs in %s)" % (timeout, self.log_dir))

    def kill(self, i, sig=signal.SIGKILL):
        m = self.members[i]
        if m["proc"] and m["proc"].poll() is None:
            m["proc"].send_signal(sig)
            if sig == signal.SIGKILL:
                m["proc"].wait()

    def stop(self):
        for m in self.members:
            p = m["proc"]
            if p and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _post(self, path, body, timeout=2.0):
        last = None
        for m in self.members:
            if m["proc"] is None or m["proc"].poll() is not None:
                continue
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (m["client"], path),
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return json.loads(r.read())
            except (OSError, urllib.error.URLError) as e:
                last = e
        raise OSError("no etcd member answered %s: %s" % (path, last))

    def range(self, prefix):
        """Returns {key: (value, mod_revision)} of keys under prefix."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        out = self._post("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        kvs = {}
        for kv in out.get("kvs", []):
            kvs[base64.b64decode(kv["key"]).decode()] = (
                base64.b64decode(kv.get("value", "")).decode(), int(kv.get("mod_revision", 0)))
        return kvs

    def shard_maps(self):
        """{shard: map dict with mod_revision} from /boxoffice/shards/."""
        maps = {}
        for k, (v, rev) in self.range("/boxoffice/shards/").items():
            m = json.loads(v)
            m["mod_revision"] = rev
            maps[int(k.rsplit("/", 1)[1])] = m
        return maps

    def live_nodes(self):
        return sorted(int(k.rsplit("/", 1)[1]) for k in self.range("/boxoffice/nodes/"))


class Node:
    def __init__(self, cluster, node_id):
        self.id = node_id
        self.ip = NODE_IP.format(10 + node_id)
        if cluster.fixed_ports:
            # scripts/cluster: addresses a user can type (and read in --help).
            self.port = 7400 + 10 * node_id
            self.repl_port = self.port + 1
        else:
            # Tests: fresh ports per cluster, so one scenario's sockets in
            # TIME_WAIT (or a test elsewhere on the machine) never collide.
            self.port = free_port(self.ip)
            self.repl_port = free_port(self.ip)
        self.client = "tcp://%s:%d" % (self.ip, self.port)
        self.repl = "tcp://%s:%d" % (self.ip, self.repl_port)
        self.data = os.path.join(cluster.work, "node-%d" % node_id)
        self.log = os.path.join(cluster.work, "node-%d.log" % node_id)
        self.cluster = cluster
        self.proc = None

    def args(self):
        c = self.cluster
        # The database explicitly, never from the caller's environment
        # (BOXOFFICE_PG_DSN): every node the same one, or none.
        db = ["--pg-dsn", c.pg_dsn] if c.pg_dsn else ["--no-pg"]
        return [c.server, "--node-id", str(self.id), "--etcd", c.etcd.endpoints(),
                "--data-dir", self.data, "--shards", str(c.shards),
                "--listen", self.client, "--repl", self.repl,
                "--lease-ms", str(c.lease_ms)] + db + list(c.server_args)

    def start(self):
        os.makedirs(self.data, exist_ok=True)
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, start_new_session=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                self.proc.wait()

    def stop(self, timeout=30):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """etcd (members) + boxoffice-server nodes 1..nodes, work files under work.
    pg_dsn: the PostgreSQL database every node's committer writes to (the
    shard's primary carries it); None: --no-pg."""

    def __init__(self, build, work, nodes=2, members=3, shards=2, lease_ms=3000, server_args=(),
                 fixed_ports=False, pg_dsn=None):
        self.build = build
        self.pg_dsn = pg_dsn
        self.fixed_ports = fixed_ports
        self.server = os.path.join(build, "gateway", "boxoffice-server")
        self.work = work
        self.shards = shards
        self.lease_ms = lease_ms
        self.server_args = server_args
        os.makedirs(work, exist_ok=True)
        self.etcd = Etcd(members, tag="bo-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000),
                         log_dir=work)
        self.nodes = {i: Node(self, i) for i in range(1, nodes + 1)}

    def start(self):
        self.etcd.start()
        for n in self.nodes.values():
            n.start()

    def stop(self):
        for n in self.nodes.values():
            n.signal(signal.SIGCONT)
            n.stop()
        self.etcd.stop()

    def clients(self):
        return ",".join(n.client for n in self.nodes.values())

    def wait(self, what, cond, timeout):
        """Polls cond() (truthy result returned) until timeout seconds."""
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            try:
                r = cond()
                if r:
                    return r
            except (OSError, ValueError, KeyError) as e:
                last_err = e
            time.sleep(0.02)
        raise TimeoutError("timed out after %.1fs waiting for %s%s" %
                           (timeout, what, " (last error: %s)" % last_err if last_err else ""))

    def maps(self):
        return self.etcd.shard_maps()

    def wait_in_sync(self, timeout=60):
        """Every shard has a map whose in_sync lists every live node."""
        def ok():
            maps = self.maps()
            live = [n.id for n in self.nodes.values() if n.alive()]
            return len(maps) == self.shards and all(
                sorted(m["in_sync"]) == sorted(live) for m in maps.values()) and maps
        return self.wait("every shard in sync on nodes %s" %
                         [n.id for n in self.nodes.values() if n.alive()], ok, timeout)

    def primaries(self):
        return {k: m["primary"] for k, m in self.maps().items()}
