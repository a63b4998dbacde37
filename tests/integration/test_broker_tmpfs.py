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
  read back. This half shows that the first one's check can fail;
- slipstream_storage_writes_total (slipstream-metrics): the ring's broker
  copied no write into a mapping of its files, the recycling broker below
  (storage.io.inline.map.bytes=65536: its buffered writes all that way) did;
- segment recycling (storage.segment.recycle=8, enough spares that the
  active segments are recycled files when the kill comes) with 64 KiB segments and a
  128 KiB retention per partition: retention leaves <base>.spare files, the
  next segments are the same files (inodes) under new names; then kill -9
  while producing (the active segments recycled files with old bytes past
  their data), a restart that cuts those bytes (logged), and every record
  acknowledged at or above each partition's new start offset read back at
  its offset, none twice. Its writes are copies into a mapping of the files
  (storage.io.inline.map.bytes), so the kill tests that path's durability;
- the same recycling on a disk directory (the test's temporary directory, when
  it is not in RAM): O_DIRECT segments, storage.fsync.acks.all=true and the
  first 3,000 records with acks=all, so each durable append waits for its
  fdatasync and, in a recycled file, for the roll's fsync of the directory
  that makes the file's new name durable; the spares reused, the kill -9 and
  the read-back as above.

Usage: test_broker_tmpfs.py PATH_TO_SLIPSTREAM [PATH_TO_SLIPSTREAM_METRICS]
(run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka or when /dev/shm is not tmpfs.
Bounded: every wait has a deadline.
"""
import glob
import os
import re
import sys
import threading
import time
import urllib.request

import slp_broker

SLIPSTREAM = sys.argv[1]
METRICS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(SLIPSTREAM))), "control",
    "slipstream-metrics")
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
metrics.shm.path={shm}
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


def produce(b, acks, start, count, rows=None, stop=None):
    """@count records (values v-<n>) round-robin over the partitions, every delivery
    report checked; returns {partition: [values in offset order]}. With @rows (a
    list): delivered (partition, offset, value) are appended to it, failures are not
    an error, and producing ends early once @stop (an Event) is set."""
    p = Producer({"bootstrap.servers": b.addr, "acks": str(acks), "linger.ms": 5,
                  "batch.size": 16384,
                  "message.timeout.ms": 60000 if rows is None else 4000})
    errors, got = [], {}

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            got.setdefault(msg.partition(), []).append((msg.offset(), msg.value()))
            if rows is not None:
                rows.append((msg.partition(), msg.offset(), msg.value()))

    for n in range(start, start + count):
        if stop is not None and stop.is_set():
            break
        value = ("v-%06d-" % n).encode() + b"x" * (n % 700)
        while True:
            try:
                p.produce(TOPIC, value=value, partition=n % PARTITIONS, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    if rows is not None:
        return None
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


def writes(url, kind):
    """slipstream_storage_writes_total{kind=@kind}, summed over lcores."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r'^slipstream_storage_writes_total\{[^}]*kind="%s"[^}]*\} (\S+)$' % kind, text, re.M))


def wait_writes(url, name, mapped_wanted):
    """The storage counters once published (every 100 ms): (any, mapped) writes."""
    deadline = time.monotonic() + 10
    while True:
        total, mapped = writes(url, "any"), writes(url, "mapped")
        if total > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print("%s: %d segment writes, %d of them copied through a mapping" % (name, total, mapped))
    if total == 0:
        raise AssertionError("%s: no segment writes in /metrics" % name)
    if mapped_wanted and mapped == 0:
        raise AssertionError("%s: no write copied through a mapping" % name)
    if mapped_wanted is False and mapped != 0:
        raise AssertionError("%s: %d writes copied through a mapping" % (name, mapped))


def run(test_run, name, extra, inline):
    logs = test_run.path(name)
    shm = test_run.path(name + ".shm")
    b = test_run.broker(SLIPSTREAM, CONFIG.format(logs=logs, extra=extra, shm=shm))
    mp, url = slp_broker.start_metrics_server(METRICS, shm)
    test_run.process(mp)
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
    # Inline: O_DIRECT on tmpfs (storage.direct.io=auto), whole blocks, so not mapped.
    wait_writes(url, name, None if inline else False)
    check_read(b, want, name)
    b.stop_clean(name)
    if inline:
        b.start_dataplane()
        check_read(b, want, name + " after a restart")
        if io_workers(b) != 0:
            raise AssertionError("%s: io_uring worker threads after the restart" % name)
        b.stop_clean(name + " after a restart")


def inodes(logs, suffix):
    """Inodes of the topic's files named *@suffix now (the broker renames them meanwhile:
    one gone between the listing and the stat is left out)."""
    out = set()
    for f in glob.glob(os.path.join(logs, TOPIC + "-*", "*" + suffix)):
        try:
            out.add(os.stat(f).st_ino)
        except OSError:
            pass
    return out


def spares(logs):
    return inodes(logs, ".spare")


def segment_inodes(logs):
    return inodes(logs, ".log")


def recycle(test_run, name="recycle", disk=False):
    logs = test_run.path(name)
    extra = ("log.segment.bytes=65536\nlog.retention.bytes=131072\n"
             "log.retention.check.interval.ms=100\nstorage.segment.recycle=8\n")
    if disk:
        # O_DIRECT (the disk default) and durable acks=all: the directory's fsync gates them.
        extra += "storage.fsync.acks.all=true"
    else:
        # Buffered, as the bench's RAM log dir (O_DIRECT pads the last block with zeros,
        # where recovery then stops quietly; buffered, the old batches follow the data).
        extra += "storage.direct.io=false\nstorage.io.inline.map.bytes=65536"
    shm = test_run.path(name + ".shm")
    b = test_run.broker(SLIPSTREAM, CONFIG.format(logs=logs, extra=extra, shm=shm))
    mp, url = slp_broker.start_metrics_server(METRICS, shm)
    test_run.process(mp)
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)
    acked = []
    produce(b, "all" if disk else 1, 0, 3000, rows=acked)
    deadline = time.monotonic() + 10
    while not spares(logs) and time.monotonic() < deadline:
        time.sleep(0.1)
    kept = spares(logs)
    if not kept:
        raise AssertionError("%s: no .spare file after retention" % name)
    # The .log inodes seen while producing on: a recycled segment may be deleted (and
    # kept as a spare) again before the round ends (CI, session 17: none left at the end).
    seen_logs, done = set(), threading.Event()

    def sample():
        while not done.is_set():
            seen_logs.update(segment_inodes(logs))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        produce(b, 1, 3000, 3000, rows=acked)
    finally:
        done.set()
        sampler.join(10)
    reused = set(kept) & (seen_logs | segment_inodes(logs))
    print("%s: %d spare files, %d of them segments again" % (name, len(kept), len(reused)))
    if not reused:
        raise AssertionError("%s: no spare file became a segment (inodes %s)" % (
            name, sorted(kept)))
    if len(acked) != 6000:
        raise AssertionError("%s: %d of 6000 records acknowledged" % (name, len(acked)))
    if not disk:
        wait_writes(url, name, True)

    # kill -9 while producing, at a moment when every partition's active segment is a
    # recycled file (its inode seen as a .spare before); what was acknowledged stays.
    # A recycled active segment is a file seen before as a spare, or under another
    # segment's name (a spare lives for milliseconds: on a fast machine the 2 ms look
    # below missed every one, CI session 21, "0 of 4 active segments recycled").
    seen = set(kept)
    first_name = {}

    def recycled_active():
        n = 0
        for p in range(PARTITIONS):
            try:
                files = sorted(glob.glob(os.path.join(logs, "%s-%d" % (TOPIC, p), "*.log")))
                for f in files:
                    first_name.setdefault(os.stat(f).st_ino, f)
                if files:
                    ino = os.stat(files[-1]).st_ino
                    n += ino in seen or first_name.get(ino, files[-1]) != files[-1]
            except OSError:
                pass  # renamed meanwhile
        return n

    stop = threading.Event()
    t = threading.Thread(target=produce, args=(b, 1, 6000, 200000),
                         kwargs={"rows": acked, "stop": stop})
    t.start()
    # The kill follows the look that found them recycled: a second look (CI, session 18:
    # 4 then 0) can come after the partitions, in step, all rolled into fresh files.
    deadline = time.monotonic() + 30
    at_kill = 0
    while time.monotonic() < deadline:
        seen |= spares(logs)
        at_kill = recycled_active()
        if len(acked) >= 7000 and at_kill == PARTITIONS:
            break
        time.sleep(0.002)
    print("%s: kill -9 with %d of %d active segments recycled" % (name, at_kill, PARTITIONS))
    b.kill_dataplane()
    stop.set()
    t.join(90)
    if t.is_alive() or len(acked) < 7000:
        raise AssertionError("%s: the producer did not get to 7000 acks or did not end "
                             "(%d)" % (name, len(acked)))
    before = len(b.text())
    b.start_dataplane()
    rows = slp_broker.assign_read(b, TOPIC, PARTITIONS)
    # The logs open (and recover) once the partitions are assigned to the dataplane.
    cut = b.text()[before:].count("truncating the tail")
    have = {}
    for part, off, _, value in rows:
        if (part, off) in have:
            raise AssertionError("%s: offset %d of partition %d read twice" % (name, off, part))
        have[(part, off)] = value
    values = list(have.values())
    if len(set(values)) != len(values):
        raise AssertionError("%s: a value read back twice" % name)
    start = {}
    for part, off in have:
        start[part] = min(off, start.get(part, off))
    lost = [(p, o) for p, o, v in acked if o >= start.get(p, 1 << 62) and have.get((p, o)) != v]
    kept_acked = sum(1 for p, o, _ in acked if o >= start.get(p, 1 << 62))
    print("%s: %d acknowledged, %d at or above the start offsets, read back %d records; "
          "recovery cut old bytes in %d segment(s)" % (name, len(acked), kept_acked,
                                                       len(rows), cut))
    if lost:
        raise AssertionError("%s: %d acknowledged records lost or changed, first %s" % (
            name, len(lost), lost[:3]))
    # (No cut is possible: round-robin keeps the partitions in step, and a kill just as
    # their new data reached the old data's end leaves nothing old behind it.)
    # Retention keeps about 2,000 records (128 KiB per partition); of them, those still
    # unacknowledged at the kill (in flight, written or not) vary with the disk's speed:
    # 880 acknowledged ones were left on a fresh CI machine (session 21), so 300.
    if kept_acked < 300 or at_kill == 0:
        raise AssertionError("%s: the check proved little (%d acknowledged records kept, "
                             "%d recycled active segments)" % (name, kept_acked, at_kill))
    b.stop_clean(name + " after kill -9", allow="truncating the tail|empty last segment|ends at offset")


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
        recycle(test_run)
    with slp_broker.TestRun("store-disk-") as disk_run:
        if is_tmpfs(disk_run.tmp):
            print("recycle-disk: skipped (the temporary directory is in RAM)")
        else:
            recycle(disk_run, "recycle-disk", disk=True)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
