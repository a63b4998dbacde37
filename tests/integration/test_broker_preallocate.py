# SPDX-License-Identifier: Apache-2.0
"""log.preallocate (broker) and preallocate (topic): the active segment's size on disk.

A preallocated segment file is log.segment.bytes long from its first append on (the
storage engine reserves it then); one that is not is as long as what was written.
Two broker runs with log.segment.bytes=4 MiB:
- log.preallocate=false: topic "plain" (no topic config) stays small after an append;
  topic "reserve" (preallocate=true) is 4 MiB;
- no log.preallocate (Slipstream's default, true; Kafka's is false): "plain" is 4 MiB,
  "small" (preallocate=false) stays small.
Each topic gets a few kcat records (acks=all, so they are on disk when kcat returns),
read back to be sure they are there. DescribeConfigs reports the effective value.

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
RECORDS = 20

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
log.segment.bytes=%d
log.dir={logs}
metrics.shm.path={logs}.metrics
{extra}
""" % SEGMENT


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


def segment_size(logs, topic):
    return os.stat(os.path.join(logs, topic + "-0", "%020d.log" % 0)).st_size


def check_topic(b, admin, logs, topic, want_prealloc):
    lines = "".join("v-%s-%d\n" % (topic, n) for n in range(RECORDS))
    kcat(b, "-P", "-t", topic, "-X", "acks=all", stdin=lines.encode())
    got = kcat(b, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n").decode().split()
    if got != ["v-%s-%d" % (topic, n) for n in range(RECORDS)]:
        fail(b, "%s: read back %d records, want %d in order" % (topic, len(got), RECORDS))
    if want_prealloc:
        # Reserved at the first append by an asynchronous fallocate: wait for it.
        deadline = time.monotonic() + 30
        while segment_size(logs, topic) != SEGMENT and time.monotonic() < deadline:
            time.sleep(0.05)
        if segment_size(logs, topic) != SEGMENT:
            fail(b, "%s: segment file is %d bytes, want %d (preallocated)" % (
                topic, segment_size(logs, topic), SEGMENT))
    else:
        size = segment_size(logs, topic)
        # The records (rounded up to a block for O_DIRECT), far below the segment size.
        if not 0 < size <= 64 * 1024:
            fail(b, "%s: segment file is %d bytes, want what was written (not preallocated)"
                 % (topic, size))
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    for f in admin.describe_configs([res], request_timeout=15).values():
        entry = f.result(timeout=15).get("preallocate")
        want = "true" if want_prealloc else "false"
        if entry is None or entry.value != want:
            fail(b, "%s: DescribeConfigs preallocate=%s, want %s" % (
                topic, entry.value if entry is not None else None, want))
    return segment_size(logs, topic)


def run(test_run, name, extra, topics):
    """@topics: (topic, topic configs, preallocated expected)."""
    logs = test_run.path(name)
    b = test_run.broker(SLIPSTREAM, CONFIG.format(logs=logs, extra=extra))
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


def main():
    if KCAT is None or AdminClient is None:
        print("SKIP: needs kcat and confluent_kafka")
        return 77
    with slp_broker.TestRun("wr-prealloc-") as test_run:
        run(test_run, "broker-false", "log.preallocate=false",
            [("plain", {}, False), ("reserve", {"preallocate": "true"}, True)])
        run(test_run, "broker-default", "",
            [("plain", {}, True), ("small", {"preallocate": "false"}, False)])
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
