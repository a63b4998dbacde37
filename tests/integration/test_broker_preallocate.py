# SPDX-License-Identifier: Apache-2.0
"""log.preallocate (broker), preallocate (topic) and storage.preallocate.bytes (the step):
the active segment's size on disk.

A preallocated segment file is reserved from its first append on, a step
(storage.preallocate.bytes, 64 MiB by default) past the data at a time, at most
log.segment.bytes; one that is not is as long as what was written. Broker runs:
- log.segment.bytes=4 MiB (smaller than a step: the whole segment is reserved),
  log.preallocate=false: topic "plain" (no topic config) stays small after an append;
  topic "reserve" (preallocate=true) is 4 MiB;
- 4 MiB, no log.preallocate (Slipstream's default, true; Kafka's is false): "plain" is
  4 MiB, "small" (preallocate=false) stays small;
- log.segment.bytes=1 GiB, storage.preallocate.bytes=1 MiB: "plain" holds a step past
  its records (1 MiB and at most a block or so more, in size and in allocated blocks),
  far less than the segment;
- 1 GiB, the default step: "plain" holds 64 MiB and a little more, not 1 GiB.
After each stop (a clean close) every segment file is trimmed back to its records.
Each topic gets a few kcat records (acks=all, so they are on disk when kcat returns),
read back to be sure they are there. DescribeConfigs reports the effective preallocate.

Usage: test_broker_preallocate.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kcat or confluent_kafka. Bounded: every wait has a deadline.
"""
import os
import shutil
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
try:
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
except ImportError:
    AdminClient = None

SEGMENT = 4 * 1024 * 1024
BIG_SEGMENT = 1024 * 1024 * 1024
DEFAULT_STEP = 64 * 1024 * 1024  # storage.preallocate.bytes' default
RECORDS = 20
SMALL = 64 * 1024  # the records, rounded up to a block for O_DIRECT, are below this

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
log.segment.bytes={segment}
log.dir={logs}
metrics.shm.path={logs}.metrics
{extra}
"""


def fail(b, msg):
    """The test fails (slp_broker.TestRun prints @b's log tail)."""
    raise AssertionError(msg)


def kcat(b, *args, stdin=None):
    r = subprocess.run([KCAT, "-b", b.addr] + list(args), input=stdin, capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        fail(b, "kcat %s: rc %d\n%s" % (" ".join(args), r.returncode,
                                         r.stderr.decode(errors="replace")))
    return r.stdout


def segment_stat(logs, topic):
    return os.stat(os.path.join(logs, topic + "-0", "%020d.log" % 0))


def segment_size(logs, topic):
    return segment_stat(logs, topic).st_size


def check_topic(b, admin, logs, topic, reserve):
    """@reserve: the bytes the segment file should reach (None: not preallocated)."""
    lines = "".join("v-%s-%d\n" % (topic, n) for n in range(RECORDS))
    kcat(b, "-P", "-t", topic, "-X", "acks=all", stdin=lines.encode())
    got = kcat(b, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n").decode().split()
    if got != ["v-%s-%d" % (topic, n) for n in range(RECORDS)]:
        fail(b, "%s: read back %d records, want %d in order" % (topic, len(got), RECORDS))
    if reserve is not None:
        # Reserved at the first append by an asynchronous fallocate: wait for it. A step
        # goes past the data (a block or so here), the whole segment is exactly it.
        deadline = time.monotonic() + 30
        while segment_size(logs, topic) < reserve and time.monotonic() < deadline:
            time.sleep(0.05)
        st = segment_stat(logs, topic)
        most = reserve if reserve == SEGMENT else reserve + SMALL
        if not reserve <= st.st_size <= most:
            fail(b, "%s: segment file is %d bytes, want %d..%d (preallocated)" % (
                topic, st.st_size, reserve, most))
        # Reserved, not sparse, and no more than that on disk (+ extent-tree blocks).
        if not reserve // 2 <= st.st_blocks * 512 <= most + SMALL:
            fail(b, "%s: %d bytes of blocks allocated, want about %d" % (
                topic, st.st_blocks * 512, reserve))
    else:
        size = segment_size(logs, topic)
        if not 0 < size <= SMALL:
            fail(b, "%s: segment file is %d bytes, want what was written (not preallocated)"
                 % (topic, size))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    for f in admin.describe_configs([res], request_timeout=15).values():
        entry = f.result(timeout=15).get("preallocate")
        want = "true" if reserve is not None else "false"
        if entry is None or entry.value != want:
            fail(b, "%s: DescribeConfigs preallocate=%s, want %s" % (
                topic, entry.value if entry is not None else None, want))
    return segment_size(logs, topic)


def run(test_run, name, segment, extra, topics):
    """@topics: (topic, topic configs, bytes reserved expected or None)."""
    logs = test_run.path(name)
    b = test_run.broker(SLIPSTREAM, CONFIG.format(logs=logs, segment=segment, extra=extra))
    admin = AdminClient({"bootstrap.servers": b.addr})
    new = [NewTopic(t, 1, 1, config=c) for t, c, _ in topics]
    for f in admin.create_topics(new, request_timeout=15).values():
        f.result(timeout=15)
    for topic, _, want in topics:
        size = check_topic(b, admin, logs, topic, want)
        print("%s: %s segment %d bytes" % (name, topic, size))
    rc = b.stop()
    if rc != 0:
        fail(b, "%s: exit %s" % (name, rc))
    # A clean close trims the reservation: the files hold their records only.
    for topic, _, _ in topics:
        size = segment_size(logs, topic)
        if not 0 < size <= SMALL:
            fail(b, "%s: %s segment file is %d bytes after the stop, want its records"
                 % (name, topic, size))


def main():
    if KCAT is None or AdminClient is None:
        print("SKIP: needs kcat and confluent_kafka")
        return 77
    with slp_broker.TestRun("wr-prealloc-") as test_run:
        run(test_run, "broker-false", SEGMENT, "log.preallocate=false",
            [("plain", {}, None), ("reserve", {"preallocate": "true"}, SEGMENT)])
        run(test_run, "broker-default", SEGMENT, "",
            [("plain", {}, SEGMENT), ("small", {"preallocate": "false"}, None)])
        run(test_run, "broker-step", BIG_SEGMENT, "storage.preallocate.bytes=1048576",
            [("plain", {}, 1024 * 1024)])
        run(test_run, "broker-step-default", BIG_SEGMENT, "",
            [("plain", {}, DEFAULT_STEP)])
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
