# SPDX-License-Identifier: Apache-2.0
"""Many connections and many partitions on one broker, memory held to the
issue 7 targets (the moderate-size version of scripts/bench-scale).

Starts `slipstream` on 127.0.0.1 (a port of its own) with a small tail-cache
pool (16 chunks for 2,000 partitions: idle logs must give theirs back) and shared
receive buffers (dataplane.conn.rx.buffers, 1024 by default for 2,200
connections), dpdk.hugepages=off so the pool is one mapping of
dpdk.memory.mb, then:
  1. opens 2,000 connections, each answering ApiVersions, and leaves them
     idle: the broker's resident memory beyond the configured pools grows
     by at most 16 KiB per connection;
  2. creates 20 topics x 100 partitions: at most 64 KiB per idle partition
     beyond the pools;
  3. every idle connection answers ApiVersions again;
  4. produces one record to every partition (confluent_kafka), consumes
     them all back (assign, from the beginning), then a second record to
     every partition (each append takes a chunk back from another
     partition, its partial last block kept) and consumes both: values and
     offsets exact;
  5. SIGTERM with the idle connections open: exit status 0;
  6. a restart on the same logs (closed cleanly): every log reopened, no
     warning or error line (no scan, no repair: scripts/bench-scale's
     "restart after clean shutdown" row counts such lines), both records of
     every partition of the first topic read back, then a clean stop again.

Usage: test_broker_scale.py PATH_TO_SLIPSTREAM. About a minute here.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slp_broker  # noqa: E402
import slp_scale  # noqa: E402

SLIPSTREAM = sys.argv[1]
# Over DPDK (test_broker_dpdk.py) a reduced size: 500 connections through the
# TAP, 5 x 100 partitions, and the port's buffers in a larger pool.
CONNS = int(os.environ.get("SCALE_TEST_CONNS", "500" if slp_broker.DPDK else "2000"))
TOPICS = 5 if slp_broker.DPDK else 20
PARTS = 100
POOL_MB = 1024 if slp_broker.DPDK else 512
PER_CONN_MAX = 16 * 1024
PER_PART_MAX = 64 * 1024

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=%d
dataplane.max.connections=%d
storage.cache.chunks=16
log.preallocate=false
log.segment.bytes=1048576
control.metadata=local
log.dir=%s
"""


def consume_all(addr, names, want_per_part):
    """Every partition's records from offset 0; returns {(topic, p): [values]}.
    One consumer per topic (100 partitions), so each Fetch stays small (a
    Fetch naming thousands of partitions is served since session 4, tested by
    test_broker_fetch_wide.py)."""
    from confluent_kafka import Consumer, TopicPartition
    got = {}
    for t in names:
        c = Consumer({"bootstrap.servers": addr, "group.id": "scale-test",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        c.assign([TopicPartition(t, p, 0) for p in range(PARTS)])
        total = 0
        want = PARTS * want_per_part
        deadline = time.monotonic() + 60
        while total < want and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                got.setdefault((m.topic(), m.partition()), []).append((m.offset(), m.value()))
                total += 1
        c.close()
        assert total == want, "%s: consumed %d of %d records" % (t, total, want)
    return got


def produce_round(addr, names, rnd):
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": addr, "linger.ms": 5, "acks": 1})
    for t in names:
        for part in range(PARTS):
            p.produce(t, value=b"%s-%d-round%d" % (t.encode(), part, rnd) + b"x" * (100 + part),
                      partition=part,
                      on_delivery=lambda err, msg: errors.append(err) if err else None)
        p.poll(0)
    left = p.flush(60)
    assert left == 0 and not errors, "produce round %d: %d left, errors %s" % (
        rnd, left, errors[:3])


def check(got, names, rounds):
    for t in names:
        for part in range(PARTS):
            recs = sorted(got[(t, part)])
            assert [o for o, _ in recs] == list(range(rounds)), (t, part, recs)
            for o, v in recs:
                assert v == b"%s-%d-round%d" % (t.encode(), part, o) + b"x" * (100 + part)


def main():
    slp_scale.raise_nofile(CONNS + 1024)
    with slp_broker.TestRun("scale-it-", dir="/tmp") as run:
        logdir = run.path("logs")
        b = run.broker(SLIPSTREAM, CONFIG % (POOL_MB, CONNS + 200, logdir))
        socks = []
        try:
            pid = b.proc.pid
            # Warm up what the first requests of each kind allocate once.
            slp_scale.create_topics(b.addr, ["warm"], 1)
            slp_scale.ping_all(slp_scale.open_idle_connections(b.host, b.port, 10))
            m0, pool0 = slp_scale.smaps_split(pid, POOL_MB)

            socks = slp_scale.open_idle_connections(b.host, b.port, CONNS)
            m1, pool1 = slp_scale.smaps_split(pid, POOL_MB)
            per_conn = (m1 - m0) * 1024 / CONNS
            print("idle connections: %d, beyond the pools %.0f B each (target <= %d), "
                  "pool pages touched %.0f B each" % (CONNS, per_conn, PER_CONN_MAX,
                                                       (pool1 - pool0) * 1024 / CONNS))
            assert per_conn <= PER_CONN_MAX, "%.0f B per idle connection" % per_conn

            names = ["scale-%02d" % i for i in range(TOPICS)]
            slp_scale.create_topics(b.addr, names, PARTS)
            m2, pool2 = slp_scale.smaps_split(pid, POOL_MB)
            nparts = TOPICS * PARTS
            per_part = (m2 - m1) * 1024 / nparts
            print("idle partitions: %d, beyond the pools %.0f B each (target <= %d), "
                  "pool pages touched %.0f B each" % (nparts, per_part, PER_PART_MAX,
                                                       (pool2 - pool1) * 1024 / nparts))
            assert per_part <= PER_PART_MAX, "%.0f B per idle partition" % per_part

            slp_scale.ping_all(socks)
            t0 = time.monotonic()
            produce_round(b.addr, names, 0)
            check(consume_all(b.addr, names, 1), names, 1)
            produce_round(b.addr, names, 1)
            check(consume_all(b.addr, names, 2), names, 2)
            slp_scale.ping_all(socks)
            print("produce/consume: 2 records in each of %d partitions read back (%.1f s)"
                  % (nparts, time.monotonic() - t0))

            # Every log is synced, trimmed and marked clean: slow on a busy disk.
            t0 = time.monotonic()
            rc = b.stop(timeout=240)
            assert rc == 0, "SIGTERM exit status %s\n%s" % (rc, b.text()[-3000:])
            print("SIGTERM with %d idle connections open: exit 0 after %.1f s"
                  % (CONNS, time.monotonic() - t0))
            for s in socks:
                s.close()
            socks = []

            # A restart on the cleanly closed logs: nothing to scan or repair.
            before = len(b.text())
            t0 = time.monotonic()
            b.start_dataplane(timeout=240)
            restart = b.text()[before:]
            bad = [l for l in restart.splitlines() if slp_broker.BAD_LINE.search(l) or
                   l.startswith("storage: ")]
            assert not bad, "warnings at a clean restart:\n" + "\n".join(bad[:10])
            check(consume_all(b.addr, names[:1], 2), names[:1], 2)  # a topic: a second
            print("restart on %d cleanly closed logs: %.1f s to started, no warning, "
                  "%s's records there" % (nparts + 1, time.monotonic() - t0, names[0]))
            b.stop_clean("after the restart", timeout=240)
        finally:
            for s in socks:
                s.close()
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
