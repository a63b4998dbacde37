# SPDX-License-Identifier: Apache-2.0
"""A log whose writes fail: Produce answers KAFKA_STORAGE_ERROR, nothing acknowledged is lost.

The broker's log directory is an ext4 file system (errors=continue)
on a loop device whose backing file lies in a small tmpfs. Once that tmpfs is
full, the loop device fails every write to a block not yet backed, so the
broker's O_DIRECT writes complete with EIO: a real I/O error from the block
layer, no fault injected into the broker. A log that takes one fails every
append pending in it and refuses every later one (stor_log_failed).

1. confluent_kafka producers at once (acks=1 and acks=all, retries off, so the
   first answer is what the application sees) write 1 KiB records to a 2-partition
   topic, bounded in count and time, until their partitions' logs failed:
   every delivery is either acknowledged or failed with KAFKA_STORAGE_ERROR
   (Kafka's answer for a partition whose log dir went offline), never a
   transport error, which is what an append failing at completion gave before
   (the broker closed the connection); some of each happened. The broker
   says so in its log ("answered KAFKA_STORAGE_ERROR") and is still running.
2. kafka-python (its own protocol code: requests through its client) gets
   KAFKA_STORAGE_ERROR producing to each failed partition (the log refuses the
   append up front) and fetching from it (a failed log is offline, as Kafka's
   partitions on a failed log dir are), and Metadata describes each failed
   partition as Kafka does one whose only replica's log dir went offline
   (LEADER_NOT_AVAILABLE, leader -1, no ISR, this broker offline), so the
   producers above hold what they still had for it until message.timeout.ms
   (those records count as failed: never stored); /metrics (slipstream-metrics)
   counts the failed logs in slipstream_storage_logs_failed. After the restart
   Metadata has the leader back.
3. The file system is given room again (the tmpfs grown, e2fsck), the broker
   restarted on it: no acknowledged offset holds another record, none is
   stored twice, offsets are in order, nothing but produced records is there.
   How many acknowledged records survived is printed, not asserted: this
   device is not honest near the failure. Without the broker, synchronous
   O_DIRECT pwritev calls on ext4 over a loop device whose tmpfs fills return
   full length, yet their last blocks before the first ENOSPC read back as
   zeros (kernel 6.18, with and without the loop's direct-io; session 21), and
   ext4's extent-tree blocks allocated then never reach the device while the
   inodes pointing at them do, so e2fsck clears those trees: acknowledged,
   even fdatasync'ed, records near the failure point can be lost to the file
   system (seen: 384 of 15,588 acks=all records), never replaced by others.

Usage: test_broker_storage_error.py PATH_TO_SLIPSTREAM [PATH_TO_SLIPSTREAM_METRICS]
(run with /usr/bin/python3).
Needs root, losetup, mkfs.ext4 and e2fsck (exit 77, skipped, otherwise). The
loop device, mounts and files are removed at the end however the test ends.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import slp_broker

SLIPSTREAM = sys.argv[1]
METRICS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(SLIPSTREAM))), "control",
    "slipstream-metrics")
slp_broker.require("confluent_kafka", "kafka")
from confluent_kafka import KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "ioerr"
PARTITIONS = 4
TMPFS_MB = 48      # the backing file's room: the file system (~18 MB), then about 30 MB of records
IMAGE_MB = 512     # the ext4 file system's size (sparse)
MAX_RECORDS = 200000  # per producer; the logs fail long before (bounded anyway)
DEADLINE_S = 120
PAD = b"r" * 1000

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dataplane.transport=kernel
dpdk.hugepages=off
dpdk.memory.mb=512
log.dir={logs}
log.segment.bytes=16777216
storage.preallocate.bytes=1048576
storage.fsync.acks.all=true
"""


def sh(*args, check=True):
    return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120, check=check)


def fail(b, msg):
    raise AssertionError("%s\n--- broker log (tail) ---\n%s" % (msg, b.tail(8000)))


class Disk:
    """tmpfs (small) -> sparse image file -> loop device -> ext4 mounted at @mnt."""

    def __init__(self, root):
        self.backing = os.path.join(root, "backing")
        self.image = os.path.join(self.backing, "disk.img")
        self.mnt = os.path.join(root, "fs")
        self.loop = None
        self.mounted = []
        os.makedirs(self.backing)
        os.makedirs(self.mnt)
        sh("mount", "-t", "tmpfs", "-o", "size=%dm" % TMPFS_MB, "slp-ioerr", self.backing)
        self.mounted.append(self.backing)
        with open(self.image, "wb") as f:
            f.truncate(IMAGE_MB << 20)
        self.loop = sh("losetup", "-f", "--show", self.image).stdout.strip()
        # Inode tables and journal written whole now (backed in the tmpfs), so the
        # writes that fail are those to blocks not written before: data and new
        # metadata blocks. The journal keeps the file system consistent over them
        # (without it, an inode that reached the device pointing at an extent block
        # that did not lost synced data at e2fsck).
        sh("mkfs.ext4", "-q", "-F", "-J", "size=8", "-E",
           "lazy_itable_init=0,lazy_journal_init=0,nodiscard", self.loop)
        self.mount()

    def mount(self):
        sh("mount", "-t", "ext4", "-o", "errors=continue", self.loop, self.mnt)
        self.mounted.append(self.mnt)

    def umount(self):
        # A killed broker's io_uring lets its files go after the process is gone:
        # the mount is busy for a moment.
        for _ in range(100):
            if sh("umount", self.mnt, check=False).returncode == 0:
                self.mounted.remove(self.mnt)
                return
            time.sleep(0.1)
        sh("umount", self.mnt)

    def grow_and_check(self):
        """Room again: the tmpfs grown, the file system checked and mounted."""
        self.umount()
        sh("mount", "-o", "remount,size=%dm" % (IMAGE_MB + 64), self.backing)
        # Rescan the loop device's backing file state; e2fsck repairs what the
        # failed writes left (exit 1: fixed, 0: clean).
        r = sh("e2fsck", "-fy", self.loop, check=False)
        if r.returncode not in (0, 1):
            raise AssertionError("e2fsck exit %d:\n%s" % (r.returncode, r.stdout[-3000:]))
        self.mount()

    def close(self):
        for m in reversed(self.mounted):
            sh("umount", "-l", m, check=False)
        self.mounted = []
        if self.loop:
            sh("losetup", "-d", self.loop, check=False)
            self.loop = None


def producer(b, acks, tag):
    """A confluent_kafka producer (retries off) that has delivered one record to each
    partition: connected, with every partition's leader known, before any flood fills
    the disk (a producer whose first Metadata came after the logs failed would only
    ever hold its records for leaderless partitions). Returns (producer, acked)."""
    p = Producer({"bootstrap.servers": b.addr, "acks": acks, "message.send.max.retries": 0,
                  "linger.ms": 5, "batch.size": 65536, "message.timeout.ms": 20000,
                  "request.timeout.ms": 15000})
    acked = {}
    errors = []

    def cb(err, m):
        if err is None:
            acked.setdefault(m.partition(), []).append((m.offset(), m.value()))
        else:
            errors.append(str(err))

    for part in range(PARTITIONS):
        p.produce(TOPIC, value=b"%s-warm-%d-" % (tag.encode(), part) + PAD, partition=part,
                  on_delivery=cb)
    if p.flush(30) or errors or len(acked) != PARTITIONS:
        fail(b, "%s: the warm-up records were not all acknowledged: %s" % (tag, errors[:3]))
    return p, acked


def produce(p, tag, acked):
    """Records of producer @p (see producer()) until its partitions failed a moment ago;
    returns (acked {partition: [(offset, value)]}, failed values, other errors). Failed:
    answered KAFKA_STORAGE_ERROR, or, after that, timed out in the client once Metadata
    showed the partition without a leader (the producer holds records for a leaderless
    partition until message.timeout.ms, as it would against Kafka)."""
    failed = []
    timed_out = []
    other = []

    def cb(err, m):
        if err is None:
            acked.setdefault(m.partition(), []).append((m.offset(), m.value()))
        elif err.code() == KafkaError.KAFKA_STORAGE_ERROR:
            failed.append(m.value())
        elif err.code() == KafkaError._MSG_TIMED_OUT and failed:
            timed_out.append(m.value())
        else:
            other.append("%s: %s" % (m.value()[:24], err))

    deadline = time.monotonic() + DEADLINE_S
    first_failure = None
    n = 0
    while n < MAX_RECORDS and time.monotonic() < deadline:
        # Stop a second after the first KAFKA_STORAGE_ERROR (every log fails within it).
        if failed and first_failure is None:
            first_failure = time.monotonic()
        if first_failure is not None and time.monotonic() - first_failure > 1.0:
            break
        v = b"%s-%d-" % (tag.encode(), n) + PAD
        try:
            p.produce(TOPIC, value=v, partition=n % PARTITIONS, on_delivery=cb)
            n += 1
        except BufferError:
            p.poll(0.05)
            continue
        if n % 500 == 0:
            p.poll(0)
    left = p.flush(30)
    if left:
        other.append("%d records never answered" % left)
    print("%s: %d timed out in the client after the logs failed" % (tag, len(timed_out)))
    return acked, failed + timed_out, other


KAFKA_STORAGE_ERROR = 56
LEADER_NOT_AVAILABLE = 5


def logs_failed(run, shm):
    """slipstream_storage_logs_failed as slipstream-metrics serves it from @shm (the
    broker publishes every 100 ms: read until two scrapes a moment apart agree)."""
    proc, url = slp_broker.start_metrics_server(METRICS, shm)
    run.process(proc)
    try:
        last = None
        for _ in range(50):
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            # One sample per storage writer's lcore: their sum.
            vals = re.findall(r"^slipstream_storage_logs_failed(?:\{[^}]*\})? (\S+)$", text,
                              re.M)
            if not vals:
                raise AssertionError("no slipstream_storage_logs_failed at /metrics")
            total = sum(float(v) for v in vals)
            if last is not None and total == last:
                return int(last)
            last = total
            time.sleep(0.3)
        return int(last)
    finally:
        proc.kill()
        proc.wait(5)


def kafka_python_request(b, req):
    """@req sent through kafka-python's own protocol code (its KafkaClient); the
    response object."""
    from kafka.client_async import KafkaClient
    cli = KafkaClient(bootstrap_servers=b.addr, api_version_auto_timeout_ms=20000)
    try:
        node = cli.least_loaded_node()
        deadline = time.monotonic() + 30
        while not cli.ready(node) and time.monotonic() < deadline:
            cli.poll(timeout_ms=200)
        f = cli.send(node, req)
        while not f.is_done and time.monotonic() < deadline:
            cli.poll(timeout_ms=200, future=f)
        if not f.succeeded():
            raise AssertionError("kafka-python: %s failed: %s" % (type(req).__name__,
                                                                  f.exception))
        return f.value
    finally:
        cli.close()


def kafka_python_produce(b, partition):
    """One record to @partition in a v3 ProduceRequest (kafka-python's producer maps
    code 56, which it does not know, to UnknownError); the partition's error code."""
    from kafka.protocol.produce import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=int(time.time() * 1000), key=None,
                   value=b"kafka-python-" + PAD, headers=[])
    builder.close()
    req = ProduceRequest[3](transactional_id=None, required_acks=1, timeout=30000,
                            topics=[(TOPIC, [(partition, builder.buffer())])])
    return kafka_python_request(b, req).topics[0][1][0][1]


def kafka_python_metadata(b):
    """{partition: (error_code, leader, isr, offline_replicas)} of TOPIC from a v5
    MetadataRequest, and the broker's node id."""
    from kafka.protocol.metadata import MetadataRequest
    resp = kafka_python_request(b, MetadataRequest[5](topics=[TOPIC],
                                                       allow_auto_topic_creation=False))
    node = resp.brokers[0][0]
    for _err, name, _internal, parts in resp.topics:
        if name == TOPIC:
            return {p[1]: (p[0], p[2], list(p[4]), list(p[5])) for p in parts}, node
    raise AssertionError("kafka-python: Metadata without topic %s" % TOPIC)


def kafka_python_fetch(b, partition):
    """A v4 FetchRequest of @partition from offset 0; the partition's error code."""
    from kafka.protocol.fetch import FetchRequest
    req = FetchRequest[4](replica_id=-1, max_wait_time=100, min_bytes=1,
                          max_bytes=1 << 20, isolation_level=0,
                          topics=[(TOPIC, [(partition, 0, 1 << 20)])])
    return kafka_python_request(b, req).topics[0][1][0][1]


def check_round(b, acks_results):
    """Phase 1's checks; returns (acked {partition: [(offset, value)]}, failed values)."""
    acked = {}
    failed = set()
    for acks, tag in (("1", "a1"), ("all", "aa")):
        if tag not in acks_results:
            fail(b, "acks=%s: the producer did not finish" % acks)
        a, f, other = acks_results[tag]
        if other:
            fail(b, "acks=%s: deliveries failed otherwise than KAFKA_STORAGE_ERROR: %s"
                 % (acks, other[:5]))
        if not f:
            fail(b, "acks=%s: no delivery answered KAFKA_STORAGE_ERROR (%d acked): "
                 "the logs did not fail?" % (acks, sum(len(x) for x in a.values())))
        for part, rows in a.items():
            acked.setdefault(part, []).extend(rows)
        failed.update(f)
        print("acks=%s: %d acknowledged, %d failed (KAFKA_STORAGE_ERROR, or held for a "
              "leaderless partition until they timed out)" % (
                  acks, sum(len(x) for x in a.values()), len(f)))
    if not any(v.startswith(b"aa-") for rows in acked.values() for _o, v in rows):
        fail(b, "no acks=all record was acknowledged before the logs failed")
    text = b.text()
    if "answered KAFKA_STORAGE_ERROR" not in text:
        fail(b, "the broker did not log the partitions it answered KAFKA_STORAGE_ERROR")
    if "closing a connection: an append it produced failed" in text:
        fail(b, "a connection was closed for a failed append (acks=1/all answer it)")
    if b.proc.poll() is not None:
        fail(b, "the broker exited (%s)" % b.proc.returncode)
    return acked, failed


def check_restarted(b2, acked, failed):
    """Phase 3's checks on the broker restarted over the repaired file system."""
    rows = slp_broker.assign_read(b2, TOPIC, PARTITIONS, timeout=90)
    got = {}
    for part, off, _k, v in rows:
        got.setdefault(part, []).append((off, v))
    n_durable = kept_durable = n_acked1 = kept1 = 0
    for part, want in acked.items():
        have = dict(got.get(part, []))
        for off, v in want:
            if have.get(off) not in (None, v):
                fail(b2, "partition %d offset %d: acknowledged %r, after the restart %r"
                     % (part, off, v[:24], have.get(off)[:24]))
            if v.startswith(b"aa-"):
                n_durable += 1
                kept_durable += have.get(off) == v
            else:
                n_acked1 += 1
                kept1 += have.get(off) == v
    acked_values = {v for rows_ in acked.values() for _o, v in rows_}
    strangers = [v for _p, _o, _k, v in rows if v not in acked_values and v not in failed]
    if strangers:
        fail(b2, "%d records after the restart were never produced or acknowledged: %r"
             % (len(strangers), strangers[0][:24]))
    seen = [v for _p, _o, _k, v in rows]
    if len(seen) != len(set(seen)):
        fail(b2, "a record is stored twice after the restart")
    for part, rows_ in got.items():
        offs = [o for o, _v in rows_]
        if offs != sorted(offs):
            fail(b2, "partition %d: offsets out of order after the restart" % part)
    # Not asserted: the failing device loses acknowledged writes near the failure
    # point (the module's comment), so survivors are counted.
    print("after the restart: of %d acknowledged acks=all records %d present; of %d "
          "acknowledged acks=1 records %d present; %d records in all" % (
              n_durable, kept_durable, n_acked1, kept1, len(rows)))
    trunc = re.findall(r"invalid batch \(header or CRC\) at position (\d+)", b2.text())
    if trunc:
        print("the restart truncated %d log(s) at positions %s" % (len(trunc), ", ".join(trunc)))


def run_round(run, name, extra):
    """One broker layout (@extra: its configuration lines) on a disk of its own."""
    print("--- %s" % name)
    root = run.path(name)
    os.makedirs(root)
    disk = Disk(root)
    shm = os.path.join(root, "metrics.shm")
    conf = CONFIG.format(logs=os.path.join(disk.mnt, "logs")) + extra + \
        "metrics.shm.path=%s\n" % shm
    try:
        b = run.broker(SLIPSTREAM, conf)
        admin = AdminClient({"bootstrap.servers": b.addr})
        for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
            f.result(30)

        # 1. confluent_kafka, acks=1 and acks=all at once (both see the logs fail).
        results = {}
        prods = {tag: producer(b, acks, tag) for acks, tag in (("1", "a1"), ("all", "aa"))}
        threads = [threading.Thread(target=lambda t=tag: results.__setitem__(
            t, produce(prods[t][0], t, prods[t][1]))) for tag in ("a1", "aa")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE_S + 90)
        acked, failed = check_round(b, results)

        # 2. kafka-python: the failed logs refuse appends and answer no Fetch.
        for part in range(PARTITIONS):
            code = kafka_python_produce(b, part)
            if code != KAFKA_STORAGE_ERROR:
                fail(b, "kafka-python: Produce to failed partition %d answered error %s, "
                     "not KAFKA_STORAGE_ERROR (56)" % (part, code))
            code = kafka_python_fetch(b, part)
            if code != KAFKA_STORAGE_ERROR:
                fail(b, "kafka-python: Fetch of failed partition %d answered error %s, "
                     "not KAFKA_STORAGE_ERROR (56)" % (part, code))
        print("kafka-python: Produce and Fetch KAFKA_STORAGE_ERROR for every partition")
        parts, node = kafka_python_metadata(b)
        for part in range(PARTITIONS):
            want = (LEADER_NOT_AVAILABLE, -1, [], [node])
            if parts.get(part) != want:
                fail(b, "kafka-python: Metadata of failed partition %d: %s, not %s"
                     % (part, parts.get(part), want))
        print("kafka-python: Metadata LEADER_NOT_AVAILABLE, leader -1, offline replica %d "
              "for every partition" % node)
        n = logs_failed(run, shm)
        if n != PARTITIONS:
            fail(b, "/metrics: slipstream_storage_logs_failed %d, not %d" % (n, PARTITIONS))

        # 3. Room again, restart: nothing wrong, twice or foreign; survivors counted.
        b.kill()
        disk.grow_and_check()
        b2 = run.broker(SLIPSTREAM, conf)
        check_restarted(b2, acked, failed)
        parts, node = kafka_python_metadata(b2)
        if any(parts.get(p) != (0, node, [node], []) for p in range(PARTITIONS)):
            fail(b2, "kafka-python: Metadata after the restart: %s" % parts)
        n = logs_failed(run, shm)
        if n != 0:
            fail(b2, "/metrics after the restart: slipstream_storage_logs_failed %d, not 0" % n)
        print("/metrics: slipstream_storage_logs_failed %d, then 0 after the restart"
              % PARTITIONS)
        b2.kill()
    finally:
        for br in run.brokers:
            br.kill()
        disk.close()


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (loop device, mounts)")
        return 77
    for tool in ("losetup", "mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            print("SKIP: %s missing" % tool)
            return 77
    with slp_broker.TestRun("slp-ioerr-") as run:
        try:
            os.makedirs(run.path("probe"))
            Disk(run.path("probe")).close()
        except (subprocess.CalledProcessError, OSError) as e:
            out = getattr(e, "stdout", "") or ""
            print("SKIP: no loop device or mount here: %s %s" % (e, out.strip()[-300:]))
            return 77
        run_round(run, "one-writer", "")
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            # Two storage writers on two lcores: a Produce naming partitions of both
            # is split over them, and each owner marks its own failed partitions.
            run_round(run, "two-writers", "dataplane.lcores=%d,%d\n"
                      "dataplane.storage.writers=2\n" % (cpus[0], cpus[1]))
        else:
            print("two-writers round skipped: one CPU")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
