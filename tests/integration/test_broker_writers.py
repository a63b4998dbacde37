# SPDX-License-Identifier: Apache-2.0
"""Several storage writers (dataplane.storage.writers=2), each owning a share of the partitions.

Two layouts on the CPUs this process may use:
- "two": lcores a,b; net workers on a and b; writer 0 (the metadata owner, the request
  handlers) on b, writer 1 on a: Produce and Fetch of writer 1's partitions are split off
  to lcore a by message, and lcore b's own worker hops to itself (hop_all);
- "one": a single lcore hosting the net worker and both writers (direct calls): an admin
  request that closes logs runs inside the transport's end-of-iteration walk and
  completes other connections' appends there (the lost wake-up net_kernel had).

For each: a topic of 12 partitions (spread over both owners); six kcat producers (codecs,
acks=all), a confluent_kafka producer (acks=all) and an idempotent confluent_kafka producer
write at once while an admin thread creates, alters (retention.ms), grows and deletes side
topics; every record is read back with kcat and an assign() consumer, once and in order per
key. Then SIGTERM (exit 0, every log closed cleanly), a restart with the same writers that
logs both writers opening their share and finds every record once; then kill -9 while an
acks=all producer runs, a restart, and every acknowledged record of that producer is there
exactly once.

Usage: test_broker_writers.py PATH_TO_SLIPSTREAM [two|one]... (run with /usr/bin/python3).
Exit 77 (skipped) without kcat or confluent_kafka. Bounded: timeouts and counts everywhere.
"""
import os
import re
import sys
import threading
import time

import slp_broker
import test_broker_lcores as L

SLIPSTREAM = sys.argv[1]
L.PARTITIONS = 12
PARTS = L.PARTITIONS
IDEM_TOPIC = "idem"
IDEM_MESSAGES = 1500

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=768
dataplane.lcores={lcores}
dataplane.net.workers={workers}
dataplane.storage.writers={writers}
dataplane.max.connections=64
dataplane.response.buffers=64
dataplane.frame.large.bytes=2097152
dataplane.log.level=debug
num.partitions=2
log.segment.bytes=8388608
storage.cache.chunks=64
log.dir={logs}
metrics.shm.path={logs}.metrics
"""


def fail(b, msg):
    keep = os.environ.get("WR_KEEP_LOG")
    if keep:
        with open(keep, "w") as f:
            f.write(b.text())
    L.fail(b, msg)


def idem_producer(b, errors, out):
    p = L.Producer({"bootstrap.servers": b.addr, "enable.idempotence": True,
                    "linger.ms": 1, "batch.num.messages": 25, "message.timeout.ms": 60000})

    def cb(err, msg):
        if err is not None:
            errors.append("idempotent delivery: %s" % err)
        else:
            out.append(msg.value().decode())

    for n in range(IDEM_MESSAGES):
        p.produce(IDEM_TOPIC, key=b"i-%d" % (n % 9), value=b"i-%d" % n, callback=cb)
        if n % 100 == 0:
            p.poll(0)
    if p.flush(60) != 0:
        errors.append("idempotent producer: not every message delivered")


def admin_loop(b, stop, errors, counts):
    from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic
    a = L.AdminClient({"bootstrap.servers": b.addr})
    n = 0
    deadline = time.monotonic() + 90
    while not stop.is_set() and n < 6 and time.monotonic() < deadline:
        name = "side-%d-%d" % (n, int(time.time() * 1000) % 100000)
        try:
            for f in a.create_topics([NewTopic(name, 3, 1)], request_timeout=15).values():
                f.result(timeout=15)
            res = ConfigResource(ConfigResource.Type.TOPIC, name,
                                 set_config={"retention.ms": "3600000"})
            for f in a.alter_configs([res], request_timeout=15).values():
                f.result(timeout=15)
            for f in a.create_partitions([NewPartitions(name, 5)],
                                         request_timeout=15).values():
                f.result(timeout=15)
            md = a.list_topics(topic=name, timeout=10)
            if len(md.topics[name].partitions) != 5:
                errors.append("admin: %s has %d partitions, not 5" % (
                    name, len(md.topics[name].partitions)))
            for f in a.delete_topics([name], request_timeout=15).values():
                f.result(timeout=15)
            n += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("admin round %d: %s" % (n, e))
            return
    counts["admin"] = n


def consume_values(b, topic):
    out = L.kcat(b, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n")
    return out.decode().splitlines()


def start(conf, run):
    return run.broker(SLIPSTREAM, conf)


def check_clean_stop(b, name):
    b.stop_clean(name, allow="open files")


def run_layout(name, lcores, workers, run):
    logs = run.path(name, "logs")
    os.makedirs(logs)
    conf = CONFIG.format(lcores=lcores, workers=workers, logs=logs,
                         writers=os.environ.get("WR_WRITERS", "2"))
    b = start(conf, run)
    admin = L.AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([L.NewTopic(L.TOPIC, PARTS, 1),
                                  L.NewTopic(IDEM_TOPIC, 6, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)
    errors = []
    counts = {}
    idem = []
    stop = threading.Event()
    threads = [threading.Thread(target=L.kcat_producer, args=(b, i, errors))
               for i in range(L.KCAT_PRODUCERS)]
    threads.append(threading.Thread(target=L.py_producer, args=(b, errors)))
    threads.append(threading.Thread(target=idem_producer, args=(b, errors, idem)))
    adm = threading.Thread(target=admin_loop, args=(b, stop, errors, counts))
    # The admin rounds run while the producers write, in both layouts.
    L.run_clients(b, name, threads, adm, stop, errors, counts, 180, 90, fail)
    L.check_records(b, L.consume_kcat(b), name + " kcat")
    L.check_records(b, L.consume_assign(b), name + " assign()")
    got = consume_values(b, IDEM_TOPIC)
    if sorted(got) != sorted("i-%d" % n for n in range(IDEM_MESSAGES)) or \
            len(idem) != IDEM_MESSAGES:
        fail(b, "%s: idempotent topic: %d records read, %d delivered, want %d once" % (
            name, len(got), len(idem), IDEM_MESSAGES))
    print("%s: %d records, %d idempotent, admin rounds %d" % (
        name, len(L.expected_values()), len(got), counts["admin"]))
    check_clean_stop(b, name)

    # Restart with the same writers: each opens its share again, every record is there once.
    b = start(conf, run)
    opened = [int(n) for n in re.findall(
        r"storage: writer\(s\) on lcore \d+ opened (\d+) partition log", b.text())]
    if name == "two" and (len(opened) != 1 or not 0 < opened[0] < PARTS + 6):
        fail(b, "%s: writer 1 should own a share of the %d partitions: %s" % (
            name, PARTS + 6, opened))
    L.check_records(b, L.consume_kcat(b), name + " after restart")
    if sorted(consume_values(b, IDEM_TOPIC)) != sorted(
            "i-%d" % n for n in range(IDEM_MESSAGES)):
        fail(b, "%s: idempotent topic changed across the restart" % name)

    # kill -9 while an acks=all producer writes: acknowledged records survive once.
    acked = []
    p = L.Producer({"bootstrap.servers": b.addr, "acks": "all", "linger.ms": 1,
                    "message.timeout.ms": 5000, "retries": 0})

    def cb(err, msg):
        if err is None:
            acked.append(msg.value().decode())

    deadline = time.monotonic() + 30
    n = 0
    while len(acked) < 800 and time.monotonic() < deadline:
        p.produce("crash", key=b"c-%d" % (n % 11), value=b"c-%d" % n, callback=cb)
        n += 1
        p.poll(0.001 if n % 50 == 0 else 0)
    b.kill()
    p.flush(10)
    if len(acked) < 100:
        fail(b, "%s: only %d records acknowledged before the kill" % (name, len(acked)))
    b = start(conf, run)
    got = consume_values(b, "crash")
    dup = len(got) - len(set(got))
    lost = set(acked) - set(got)
    if dup or lost:
        fail(b, "%s: after kill -9: %d duplicates, %d acknowledged records lost" % (
            name, dup, len(lost)))
    L.check_records(b, L.consume_kcat(b), name + " after kill -9")
    print("%s: kill -9 with %d acknowledged records: all there once" % (name, len(acked)))
    check_clean_stop(b, name + " (after kill -9)")


def main():
    if L.KCAT is None or L.Producer is None:
        print("SKIP: needs kcat and confluent_kafka")
        return 77
    cpus = sorted(os.sched_getaffinity(0))
    only = sys.argv[2:]  # layout names to run (default: both)
    with slp_broker.TestRun("wr-writers-") as run:
        if len(cpus) >= 2 and (not only or "two" in only):
            run_layout("two", "%d,%d" % (cpus[0], cpus[1]), 2, run)
        if not only or "one" in only:
            run_layout("one", "%d" % cpus[0], 1, run)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
