#!/usr/bin/env python3
"""The DataStax Python driver (cassandra-driver) running the same prepared
INSERT and SELECT as bench/cql_bench.cc, at the same concurrency, so the two
clients are compared against the same server in the same run. Usually
started by cql_bench --python; prints and writes a JSON summary.

Driver: cassandra-driver from PyPI (pip install cassandra-driver), else
Debian's python3-cassandra.
"""
import argparse
import json
import random
import threading
import time

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy


def run_phase(session, stmt, args_for, ops, concurrency):
    """ops requests with at most `concurrency` in flight; per-request latency."""
    lat = [0.0] * ops
    errors = [0]
    sem = threading.Semaphore(concurrency)
    done = threading.Event()
    remaining = [ops]
    lock = threading.Lock()

    def finish(i, sent, ok):
        lat[i] = (time.perf_counter() - sent) * 1e6
        with lock:
            if not ok:
                errors[0] += 1
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        sem.release()

    start = time.perf_counter()
    for i in range(ops):
        sem.acquire()
        sent = time.perf_counter()
        fut = session.execute_async(stmt, args_for(i))
        fut.add_callbacks(lambda _r, i=i, s=sent: finish(i, s, True),
                          lambda _e, i=i, s=sent: finish(i, s, False))
    done.wait()
    return time.perf_counter() - start, lat, errors[0]


def summary(seconds, lat, errors):
    lat.sort()
    pct = lambda q: lat[int(q * (len(lat) - 1))]
    return {"ops": len(lat), "errors": errors, "seconds": seconds, "ops_per_sec": len(lat) / seconds,
            "p50_us": pct(0.50), "p99_us": pct(0.99), "max_us": lat[-1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", default="127.0.0.1:9042")
    ap.add_argument("--user", default="cassandra")
    ap.add_argument("--password", default="cassandra")
    ap.add_argument("--ops", type=int, default=50000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--out", default="cql_python.json")
    a = ap.parse_args()
    host, port = a.nodes.rsplit(":", 1)
    profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                               consistency_level=ConsistencyLevel.LOCAL_QUORUM, request_timeout=12)
    cluster = Cluster([host], port=int(port), protocol_version=4,
                      auth_provider=PlainTextAuthProvider(a.user, a.password),
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = cluster.connect()
    insert = session.prepare("INSERT INTO cql_bench.kv (k, v) VALUES (?, ?)")
    select = session.prepare("SELECT v FROM cql_bench.kv WHERE k = ?")
    value = "x" * a.value_size
    rng = random.Random(43)
    keys = [rng.randrange(a.ops) for _ in range(a.ops)]
    warm = min(a.ops, 5000)
    run_phase(session, insert, lambda i: (i, value), warm, a.concurrency)
    run_phase(session, select, lambda i: (keys[i],), warm, a.concurrency)
    ins = run_phase(session, insert, lambda i: (i, value), a.ops, a.concurrency)
    sel = run_phase(session, select, lambda i: (keys[i],), a.ops, a.concurrency)
    import cassandra
    result = {"driver": "cassandra-driver " + cassandra.__version__,
              "insert": summary(*ins), "select": summary(*sel)}
    print("python cassandra-driver:", json.dumps(result))
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    cluster.shutdown()


if __name__ == "__main__":
    main()
