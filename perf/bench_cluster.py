#!/usr/bin/env python3
"""bench_cluster — scripts/bench cluster: what the synchronous standby costs,
how long a failover takes, and what a second server adds (issue 13).

All on this machine, in one run, with build/perf/cluster_load as the client
(holds of distinct seats through the client library, every acknowledged
hold verified at the end):

  commands_per_sec_without_standby  one node (in_sync = itself), offered
                                    far more than it can take (--rate)
  commands_per_sec_with_standby     two nodes, every shard with a standby
  with_over_without                 the ratio (target >= 0.70)
  ack_latency_us_p50/p99            two nodes, 100,000 holds/s offered
                                    (first submission to the ok; target p99
                                    <= 3,000)
  ack_latency_us_p99_without_standby
                                    the same offer to the one node: what
                                    the standby adds, measured in one run
  ack_latency_us_p99_by_rate        two nodes, p99 at 10k, 30k and 100k
                                    holds/s offered: where the tail comes
                                    from (load, not the standby's fsync)
  failover_seconds_p50/max          kill -9 of the primary, --cycles times
                                    (map changed to the standby; target:
                                    lease + 1 s)
  scale_out_ratio                   two nodes, each primary for half the
                                    shards (and standby of the other half),
                                    over one node, both saturated
  lost_acknowledged                 over every run (must be 0)

The last stdout line is one JSON object. --quick: short runs, 2 cycles.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import bocluster  # noqa: E402
import faults  # noqa: E402


def log(msg):
    print("bench_cluster: %s %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run_load(c, rate, seconds, events, first_event):
    exe = os.path.join(c.build, "perf", "cluster_load")
    p = subprocess.run([exe, "--server", c.clients(), "--rate", str(rate), "--seconds", str(seconds),
                        "--events", str(events), "--first-event", str(first_event),
                        "--report-ms", "0",
                        # Offered beyond capacity, commands queue: a long
                        # timeout lets the backlog drain instead of turning
                        # into resends (holds_per_sec counts the drain).
                        "--timeout-ms", "30000"],
                       capture_output=True, text=True, timeout=seconds + 600)
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if p.returncode != 0 and lines and json.loads(lines[-1]).get("refused"):
        raise RuntimeError("cluster_load: holds refused: %s" % p.stderr[-2000:])
    if not lines:
        raise RuntimeError("cluster_load printed no result: %s" % p.stderr[-2000:])
    r = json.loads(lines[-1])
    log("load rate=%d: %s" % (rate, lines[-1]))
    return r


def cluster(args, name, nodes, extra=()):
    work = os.path.join(args.work, name)
    # Room for every run's holds in one cluster: the saturated runs alone
    # make millions (the default 1,048,576 claims per shard ran out).
    extra = ("--claims-max", "8388608") + tuple(extra)
    c = bocluster.Cluster(args.build, work, nodes=nodes, members=3, shards=args.shards,
                          lease_ms=args.lease_ms, server_args=extra)
    try:
        c.start()
        c.wait_in_sync(timeout=60)
    except BaseException:
        c.stop()
        raise
    return c


def switchover(c, shard, to):
    cli = os.path.join(c.build, "client", "boxoffice-cli")
    primary = c.maps()[shard]["primary"]
    p = subprocess.run([cli, "--server", c.nodes[primary].client, "switchover", str(shard), str(to)],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("switchover %d -> %d: %s%s" % (shard, to, p.stdout, p.stderr))
    c.wait("shard %d primary on node %d with both in sync" % (shard, to),
           lambda: (lambda m: m[shard]["primary"] == to and len(m[shard]["in_sync"]) == 2)(c.maps()),
           60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=int, default=10, help="each throughput run (default 10)")
    ap.add_argument("--rate", type=int, default=300000, help="offered rate of the saturated runs")
    ap.add_argument("--cycles", type=int, default=10, help="failover cycles (default 10)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--lease-ms", type=int, default=2000)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.cycles = 3, 2
    if shutil.which("etcd") is None:
        print("bench_cluster: no etcd binary (scripts/setup installs etcd-server)", file=sys.stderr)
        return 77
    args.work = tempfile.mkdtemp(prefix="bo-bench-cluster-")
    out = {"bench": "cluster", "quick": args.quick, "shards": args.shards,
           "lease_ms": args.lease_ms, "seconds": args.seconds}
    lost = 0
    ev = 1000
    # One node: no standby.
    c = cluster(args, "one", 1)
    try:
        r = run_load(c, args.rate, args.seconds, 64, ev)
        ev += 100
        out["commands_per_sec_without_standby"] = r["holds_per_sec"]
        lost += r["lost_acknowledged"]
        r = run_load(c, 100000, args.seconds, 64, ev)
        ev += 100
        out["ack_latency_us_p50_without_standby"] = r["latency_us_p50"]
        out["ack_latency_us_p99_without_standby"] = r["latency_us_p99"]
        lost += r["lost_acknowledged"]
    finally:
        c.stop()
    # Two nodes: node 1 primary of everything, node 2 its standby.
    c = cluster(args, "two", 2)
    try:
        r = run_load(c, args.rate, args.seconds, 64, ev)
        ev += 100
        out["commands_per_sec_with_standby"] = r["holds_per_sec"]
        lost += r["lost_acknowledged"]
        r = run_load(c, 100000, args.seconds, 64, ev)
        ev += 100
        out["ack_latency_us_p50"] = r["latency_us_p50"]
        out["ack_latency_us_p99"] = r["latency_us_p99"]
        out["ack_holds_per_sec_at_100k"] = r["holds_per_sec"]
        lost += r["lost_acknowledged"]
        by_rate = {}
        for rate in (10000, 30000):
            r = run_load(c, rate, args.seconds, 64, ev)
            ev += 100
            by_rate[str(rate)] = r["latency_us_p99"]
            lost += r["lost_acknowledged"]
        by_rate["100000"] = out["ack_latency_us_p99"]
        out["ack_latency_us_p99_by_rate"] = by_rate
        # Scale out: half the shards' primaries to node 2.
        for k in range(args.shards):
            if k % 2 == 1:
                switchover(c, k, 2)
        r = run_load(c, args.rate, args.seconds, 64, ev)
        ev += 100
        out["commands_per_sec_two_primaries"] = r["holds_per_sec"]
        lost += r["lost_acknowledged"]
    finally:
        c.stop()
    out["with_over_without"] = round(out["commands_per_sec_with_standby"] /
                                     max(out["commands_per_sec_without_standby"], 1), 3)
    out["scale_out_ratio"] = round(out["commands_per_sec_two_primaries"] /
                                   max(out["commands_per_sec_without_standby"], 1), 3)
    # Failover: the fault test's kill -9 cycles, timed.
    fa = argparse.Namespace(build=args.build, cycles=args.cycles, work=args.work)
    faults.LEASE_MS = args.lease_ms
    f = faults.sc_kill_primary(fa)
    out["failover_seconds_p50"] = round(f["failover_seconds_p50"], 3)
    out["failover_seconds_max"] = round(f["failover_seconds_max"], 3)
    out["failover_cycles"] = f["cycles"]
    lost += f["lost_acknowledged"]
    out["lost_acknowledged"] = lost
    shutil.rmtree(args.work, ignore_errors=True)
    print(json.dumps(out, separators=(",", ":")))
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
