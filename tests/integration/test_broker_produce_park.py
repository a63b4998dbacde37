# SPDX-License-Identifier: Apache-2.0
"""Produce to more partitions than the tail cache has chunks: held back, never failed.

A partition holds a tail-cache chunk while it has unwritten appends, so
storage.cache.chunks bounds the partitions written at once. The broker here
has 4 chunks and a topic of 24 partitions (8 MiB segments: each written
partition preallocates one). A Produce naming more partitions
than chunks are free is held back in the broker (dp_produce.c) and resumed
as writes free chunks; it must never answer REQUEST_TIMED_OUT (which it did
before, for the partitions past the last free chunk).

Concurrently, on one broker:
- confluent_kafka acks=1 and acks=all producers with retries off
  (message.send.max.retries=0), so any error answer is a failed delivery;
- an idempotent confluent_kafka producer (enable.idempotence, acks=all);
- kcat -P (acks=1, retries off), keyed lines over the partitions.
Each writes to all 24 partitions at once (linger, so a request holds many
partitions). Then every record is read back with an assign() consumer:
present exactly once, in produce order per partition (each producer's own
sequence), and the broker's debug log shows requests were held back ("produce
held back") and none timed out ("answered REQUEST_TIMED_OUT"), with no error
or warning line. Twice: the net worker and the storage writer on one lcore,
then (with two CPUs) apart, where requests hop between lcores.

Usage: test_broker_produce_park.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kcat or confluent_kafka. Bounded: every client call
has a timeout, every loop a count and a deadline.
"""
import os
import re
import shutil
import subprocess
import sys
import threading

import slp_broker

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
try:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

TOPIC = "park"
PARTITIONS = 24
PER_PARTITION = 60  # records per partition and producer
PAD = b"x" * 600

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=512
{lcores}
dataplane.log.level=debug
storage.cache.chunks=4
log.segment.bytes=8388608
log.dir={logs}
"""

PRODUCERS = {
    # name: confluent_kafka settings beyond bootstrap.servers
    "a1": {"acks": "1", "message.send.max.retries": 0},
    "aa": {"acks": "all", "message.send.max.retries": 0},
    "id": {"acks": "all", "enable.idempotence": True},
}


def fail(b, msg):
    raise AssertionError("%s\n--- broker log (tail) ---\n%s" % (msg, b.text()[-6000:]))


def value(name, p, n):
    return b"%s-%d-%d-" % (name.encode(), p, n) + PAD


def py_producer(b, name, settings, errors):
    conf = {"bootstrap.servers": b.addr, "linger.ms": 20, "message.timeout.ms": 60000,
            "request.timeout.ms": 30000}
    conf.update(settings)
    p = Producer(conf)
    delivered = [0]

    def cb(err, msg):
        if err is not None:
            errors.append("%s: delivery failed: %s" % (name, err))
        else:
            delivered[0] += 1

    try:
        for n in range(PER_PARTITION):
            for part in range(PARTITIONS):
                p.produce(TOPIC, value=value(name, part, n), partition=part, callback=cb)
            p.poll(0)
        left = p.flush(90)
        if left != 0:
            errors.append("%s: %d messages not delivered in 90 s" % (name, left))
        elif delivered[0] != PER_PARTITION * PARTITIONS:
            errors.append("%s: %d delivery reports" % (name, delivered[0]))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append("%s: %s" % (name, e))


def kcat_producer(b, errors):
    # Keys k0..k23: the partitioner spreads them; order is checked per key.
    lines = b"".join(b"k%d\tkc-%d-%d-%s\n" % (n % PARTITIONS, n % PARTITIONS, n // PARTITIONS,
                                               PAD) for n in range(PER_PARTITION * PARTITIONS))
    try:
        r = subprocess.run([KCAT, "-b", b.addr, "-P", "-t", TOPIC, "-K", "\t", "-X", "acks=1",
                            "-X", "message.send.max.retries=0", "-X", "linger.ms=20"],
                           input=lines, capture_output=True, timeout=120)
        err = r.stderr.decode(errors="replace")
        if r.returncode != 0 or re.search(r"(?i)fail|error", err):
            errors.append("kcat: rc %d: %s" % (r.returncode, err[-2000:]))
    except Exception as e:  # noqa: BLE001
        errors.append("kcat: %s" % e)


def check(b, rows):
    """Every producer's records once each, in its order within each partition."""
    seqs = {}
    seen = set()
    for part, off, key, val in sorted(rows, key=lambda r: (r[0], r[1])):
        name, p, n = val.split(b"-")[:3]
        name = name.decode()
        if val in seen:
            fail(b, "record %r read twice" % val[:40])
        seen.add(val)
        if name == "kc":
            if key != b"k%d" % int(p):
                fail(b, "kcat record %r has key %r" % (val[:40], key))
            lane = ("kc", key)
        else:
            if int(p) != part:
                fail(b, "%s record for partition %s in partition %d" % (name, p, part))
            lane = (name, part)
        seqs.setdefault(lane, []).append(int(n))
    for lane, s in seqs.items():
        if s != list(range(PER_PARTITION)):
            missing = sorted(set(range(PER_PARTITION)) - set(s))
            fail(b, "%s: %d records, missing %s, order %s" % (
                lane, len(s), missing[:10], "kept" if s == sorted(s) else "broken"))
    lanes = {l[0] for l in seqs}
    if lanes != set(PRODUCERS) | {"kc"}:
        fail(b, "records of %s only" % sorted(lanes))
    if sum(1 for l in seqs if l[0] == "kc") != PARTITIONS:
        fail(b, "kcat keys: %d of %d" % (sum(1 for l in seqs if l[0] == "kc"), PARTITIONS))


def run(name, lcores, tr):
    logs = tr.path(name, "logs")
    os.makedirs(logs)
    b = tr.broker(SLIPSTREAM, CONFIG.format(lcores=lcores, logs=logs))
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)
    del admin  # its connection would log a disconnect at the stop
    errors = []
    threads = [threading.Thread(target=py_producer, args=(b, n, s, errors))
               for n, s in PRODUCERS.items()]
    threads.append(threading.Thread(target=kcat_producer, args=(b, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    if any(t.is_alive() for t in threads):
        fail(b, "%s: a producer did not finish in 150 s" % name)
    if errors:
        fail(b, "%s: %s" % (name, "\n".join(errors[:10])))
    total = PER_PARTITION * PARTITIONS * (len(PRODUCERS) + 1)
    rows = slp_broker.assign_read(b, TOPIC, PARTITIONS, want=total, timeout=120,
                                  group="park-assign")
    if len(rows) != total:
        fail(b, "%s: %d records read, %d produced" % (name, len(rows), total))
    check(b, rows)
    text = b.text()
    if name == "apart" and "requests hop from" not in text:
        fail(b, "apart: no request hop set up")
    held = text.count("produce held back")
    # Over net_tap (tens of thousands of packets/s) the writes can keep up
    # with arrivals so that no chunk runs out (seen once in CI): there the
    # count is reported; on kernel sockets it must happen (the hold-back
    # itself is checked deterministically by test_dp_produce).
    if held == 0 and not slp_broker.DPDK:
        fail(b, "%s: no Produce was held back (4 chunks, 24 partitions)" % name)
    if "answered REQUEST_TIMED_OUT" in text:
        fail(b, "%s: a held-back Produce timed out" % name)
    print("%s: %d records, %d Produce request(s) held back" % (name, total, held))
    b.stop_clean(name, 60)


def main():
    if KCAT is None or Producer is None:
        print("SKIP: needs kcat and confluent_kafka")
        return 77
    cpus = sorted(os.sched_getaffinity(0))
    with slp_broker.TestRun("produce-park-") as tr:
        run("one-lcore", "dataplane.lcores=%d" % cpus[0], tr)
        if len(cpus) >= 2 and not slp_broker.DPDK:
            run("apart", "dataplane.lcores=%d,%d\ndataplane.net.lcores=%d\n"
                "dataplane.storage.lcores=%d" % (cpus[0], cpus[1], cpus[0], cpus[1]), tr)
        else:
            print("apart: skipped (one CPU, or over DPDK)")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
