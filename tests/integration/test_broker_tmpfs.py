# SPDX-License-Identifier: Apache-2.0
"""A log directory on tmpfs (/dev/shm): writes served inline (storage.io.inline).

io_uring has no non-blocking write for tmpfs, so through the ring every
write of the storage writer went to an io-wq worker thread ("iou-wrk-<tid>"
in the broker's /proc/PID/task). With storage.io.inline=auto (the default)
files on tmpfs are written with pwrite on the reactor and their fdatasync is
a no-op. Two brokers, each with its log directory on /dev/shm,
log.preallocate=false (no fallocate: nothing at all goes to the ring):
- default: 4 partitions, 2,000 records with acks=1 and 400 with acks=all
  (confluent_kafka, every delivery report checked); no io-wq worker exists in
  the broker afterwards; every record read back with assign(), again after a
  clean restart (recovery reads the tmpfs files), a clean stop each time;
- storage.io.inline=false: the same produce; the ring's path shows (an io-wq
  worker in the broker once the records are acknowledged), the same records
  read back. This half shows that the first one's check can fail.

Usage: test_broker_tmpfs.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka or when /dev/shm is not tmpfs.
Bounded: every wait has a deadline.
"""
import os
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
try:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

TOPIC = "ram"
PARTITIONS = 4
ACKS1 = 2000
ACKSALL = 400

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
log.dir={logs}
log.preallocate=false
log.segment.bytes=1048576
{extra}
"""


def is_tmpfs(path):
    """The file system under @path is tmpfs (/proc/self/mounts, longest mount point)."""
    best, fstype = "", None
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fstype = mnt, parts[2]
    return fstype == "tmpfs"


def io_workers(b):
    """io_uring worker threads of the broker process now."""
    n = 0
    task = "/proc/%d/task" % b.proc.pid
    for t in os.listdir(task):
        try:
            with open(os.path.join(task, t, "comm")) as f:
                if f.read().startswith("iou-wrk"):
                    n += 1
        except OSError:
            pass  # the thread ended meanwhile
    return n


def produce(b, acks, start, count):
    """@count records (values v-<n>) round-robin over the partitions, every delivery
    report checked; returns {partition: [values in offset order]}."""
    p = Producer({"bootstrap.servers": b.addr, "acks": str(acks), "linger.ms": 5,
                  "batch.size": 16384, "message.timeout.ms": 60000})
    errors, got = [], {}

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            got.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))

    for n in range(start, start + count):
        value = ("v-%06d-" % n).encode() + b"x" * (n % 700)
        while True:
            try:
                p.produce(TOPIC, value=value, partition=n % PARTITIONS, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    if left != 0 or errors or sum(len(v) for v in got.values()) != count:
        raise AssertionError("acks=%s: %d not delivered, errors %s" % (acks, left, errors[:3]))
    return {k: [v for _, v in sorted(rows)] for k, rows in got.items()}


def check_read(b, want, what):
    rows = slp_broker.assign_read(b, TOPIC, PARTITIONS, want=sum(map(len, want.values())))
    have = {}
    for part, _, _, value in sorted(rows, key=lambda r: (r[0], r[1])):
        have.setdefault(part, []).append(value)
    for part in range(PARTITIONS):
        if have.get(part, []) != want.get(part, []):
            raise AssertionError("%s: partition %d read back %d records, want %d (or the "
                                 "values differ)" % (what, part, len(have.get(part, [])),
                                                     len(want.get(part, []))))


def merge(a, b):
    return {k: a.get(k, []) + b.get(k, []) for k in set(a) | set(b)}


def run(test_run, name, extra, inline):
    logs = test_run.path(name)
    b = test_run.broker(SLIPSTREAM, CONFIG.format(logs=logs, extra=extra))
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)
    want = merge(produce(b, 1, 0, ACKS1), produce(b, "all", ACKS1, ACKSALL))
    workers = io_workers(b)
    print("%s: %d records acknowledged, io-wq workers in the broker: %d" % (
        name, ACKS1 + ACKSALL, workers))
    if inline and workers != 0:
        raise AssertionError("%s: %d io_uring worker threads: tmpfs writes went through "
                             "the ring" % (name, workers))
    if not inline and workers == 0:
        raise AssertionError("%s: no io_uring worker thread with storage.io.inline=false "
                             "(the check above could not tell the paths apart)" % name)
    check_read(b, want, name)
    b.stop_clean(name)
    if inline:
        b.start_dataplane()
        check_read(b, want, name + " after a restart")
        if io_workers(b) != 0:
            raise AssertionError("%s: io_uring worker threads after the restart" % name)
        b.stop_clean(name + " after a restart")


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka")
        return 77
    if not os.path.isdir("/dev/shm") or not is_tmpfs("/dev/shm"):
        print("SKIP: /dev/shm is not tmpfs")
        return 77
    with slp_broker.TestRun("store-tmpfs-", dir="/dev/shm") as test_run:
        run(test_run, "inline", "", True)
        run(test_run, "ring", "storage.io.inline=false", False)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
