# SPDX-License-Identifier: Apache-2.0
"""The broker request path with confluent_kafka (librdkafka) and raw frames.

Starts `slipstream` on 127.0.0.1 (port picked by the kernel, own log
directory) and checks:
- AdminClient.create_topics: created (with a topic config), validate_only
  creating nothing, TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
  INVALID_CONFIG, INVALID_REPLICATION_FACTOR; list_topics sees the result;
- Producer with acks=all, acks=1 and acks=0, gzip and zstd: delivery
  reports carry consecutive offsets per partition; the messages are then
  read back with kcat (confluent_kafka's Consumer needs the group
  coordinator, which is not served yet);
- a raw Produce v2 request carrying a magic 1 message set is answered
  UNSUPPORTED_FOR_MESSAGE_FORMAT (43), and a Fetch past the end
  OFFSET_OUT_OF_RANGE (1).

Usage: test_broker_python.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka or kcat.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
try:
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=2
dataplane.response.buffers=32
dataplane.response.buffer.bytes=1048576
storage.cache.chunks=24
storage.fsync.acks.all=true
# one append in flight per log: concurrent produce requests take the -EAGAIN path
storage.log.max.pending=1
log.retention.check.interval.ms=200
log.dir=%s
"""


def Broker(run):
    return run.broker(SLIPSTREAM, CONFIG % os.path.join(run.tmp, "logs"))


def admin_checks(b):
    a = AdminClient({"bootstrap.servers": b.addr})
    fs = a.create_topics([NewTopic("py-created", 4, 1, config={"retention.ms": "3600000"})],
                         request_timeout=10)
    fs["py-created"].result(10)
    fs = a.create_topics([NewTopic("py-validate", 2, 1)], validate_only=True,
                         request_timeout=10)
    fs["py-validate"].result(10)
    cases = [
        (NewTopic("py-created", 1, 1), KafkaError.TOPIC_ALREADY_EXISTS),
        (NewTopic("py-too-many", 20000, 1), KafkaError.INVALID_PARTITIONS),
        (NewTopic("py-bad-config", 1, 1, config={"no.such.config": "1"}),
         KafkaError.INVALID_CONFIG),
        (NewTopic("py-rf3", 1, 3), KafkaError.INVALID_REPLICATION_FACTOR),
        (NewTopic("py-tiny-segments", 1, 1, config={"segment.bytes": "1024"}),
         KafkaError.INVALID_CONFIG),
    ]
    for topic, want in cases:
        fs = a.create_topics([topic], request_timeout=10)
        try:
            fs[topic.topic].result(10)
            raise AssertionError("%s: created, expected error %d" % (topic.topic, want))
        except Exception as e:  # KafkaException carrying a KafkaError
            err = e.args[0]
            assert err.code() == want, (topic.topic, err)
    md = a.list_topics(timeout=10)
    assert "py-created" in md.topics and len(md.topics["py-created"].partitions) == 4
    assert "py-validate" not in md.topics
    assert "py-bad-config" not in md.topics and "py-too-many" not in md.topics
    assert md.cluster_id and len(md.cluster_id) == 22, md.cluster_id


def produce_checks(b):
    sent = {}
    for acks, codec in (("all", "gzip"), ("1", "zstd"), ("0", "none")):
        p = Producer({"bootstrap.servers": b.addr, "acks": acks, "compression.type": codec,
                      "linger.ms": 5})
        reports = []

        def dr(err, msg):
            assert err is None, err
            reports.append((msg.partition(), msg.offset(), msg.value().decode()))

        for i in range(100):
            p.produce("py-created", key=b"key%d" % (i % 5),
                      value=("%s-%03d" % (acks, i)).encode(), on_delivery=dr)
        assert p.flush(15) == 0
        assert len(reports) == 100
        if acks != "0":  # acks=0: librdkafka does not learn offsets
            by_part = {}
            for part, off, val in reports:
                by_part.setdefault(part, []).append(off)
            for part, offs in by_part.items():
                offs.sort()
                assert offs == list(range(offs[0], offs[0] + len(offs))), (acks, part, offs)
        sent[acks] = [v for _, _, v in reports]
    want = sorted(v for vals in sent.values() for v in vals)
    # acks=0: the delivery report does not wait for the broker (observed: the
    # last acks=0 request is sometimes not yet appended when kcat reads right
    # after flush()), so re-read for up to 10 s until every message is there.
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run([KCAT, "-b", b.addr, "-C", "-t", "py-created", "-o", "beginning",
                              "-e", "-f", "%s\n"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        got = sorted(out.stdout.split())
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = sorted(set(want) - set(got))
    assert got == want, (len(got), len(want), missing[:5], missing[-5:])


def retention_checks(b):
    """Topic configs reach the log: 4 KiB segments, 8 KiB retained."""
    a = AdminClient({"bootstrap.servers": b.addr})
    fs = a.create_topics([NewTopic("py-retained", 1, 1, config={
        "segment.bytes": "4096", "retention.bytes": "8192"})], request_timeout=10)
    fs["py-retained"].result(10)
    p = Producer({"bootstrap.servers": b.addr, "linger.ms": 0})
    for i in range(60):
        p.produce("py-retained", value=("r%03d-" % i + "x" * 1000).encode())
        assert p.flush(10) == 0
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run([KCAT, "-b", b.addr, "-C", "-t", "py-retained", "-o", "beginning",
                              "-e", "-f", "%o\n"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        offs = [int(x) for x in out.stdout.split()]
        # Retention keeps deleting segments (one check each 200 ms, then one
        # segment per reactor step) while kcat reads: a Fetch below the new log
        # start is OFFSET_OUT_OF_RANGE and kcat resets to the end (seen over
        # DPDK at load 16: 24..41), and a whole tail read mid-way starts early
        # (30..59 over DPDK in CI). Read again until one pass saw a whole tail
        # within Kafka's bound, or the deadline passed.
        whole = offs and offs[0] > 0 and offs == list(range(offs[0], 60))
        if (whole and offs[0] >= 60 - 16) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert offs[-1] == 59 and offs[0] > 0 and offs == list(range(offs[0], 60)), offs
    # What is left is Kafka's bound (8 KiB plus the active segment, 4 records of
    # 1 KiB each), every segment past it gone: one deletion per reactor step,
    # the scan going on until none is left.
    assert offs[0] >= 60 - 16, offs
    assert "retention: " in b.text()


def raw_checks(b):
    s = socket.create_connection((b.host, b.port), timeout=5)
    # Produce v2: a magic 1 message set (one message, CRC not even checked first).
    msg = struct.pack(">bbq", 1, 0, 0) + struct.pack(">i", -1) + struct.pack(">i", 1) + b"x"
    entry = struct.pack(">qi", 0, len(msg) + 4) + struct.pack(">I", 0) + msg
    name = b"py-created"
    body = (struct.pack(">hi", 1, 5000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) +
            name + struct.pack(">i", 1) + struct.pack(">ii", 0, len(entry)) + entry)
    hdr = struct.pack(">hhih", 0, 2, 77, 2) + b"it"
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    corr, ntopics, nlen = struct.unpack(">iih", r[:10])
    assert corr == 77 and ntopics == 1 and r[10:10 + nlen] == name
    off = 10 + nlen
    nparts, part, err, base = struct.unpack(">iihq", r[off:off + 18])
    assert (nparts, part, err, base) == (1, 0, 43, -1), (nparts, part, err, base)
    # Fetch v4 at offset 1000000 of partition 0: OFFSET_OUT_OF_RANGE.
    body = (struct.pack(">iiiib", -1, 0, 1, 1 << 20, 0) + struct.pack(">i", 1) +
            struct.pack(">h", len(name)) + name + struct.pack(">i", 1) +
            struct.pack(">iqi", 0, 1000000, 1 << 20))
    hdr = struct.pack(">hhih", 1, 4, 78, 2) + b"it"
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    corr, throttle, ntopics, nlen = struct.unpack(">iiih", r[:14])
    assert corr == 78 and ntopics == 1 and r[14:14 + nlen] == name
    off = 14 + nlen
    nparts, part, err, hw = struct.unpack(">iihq", r[off:off + 18])
    assert (nparts, part, err) == (1, 0, 1), (nparts, part, err)
    assert hw > 0, hw

    def fetch_at(offset, max_wait_ms, corr):
        body = (struct.pack(">iiiib", -1, max_wait_ms, 1, 1 << 20, 0) + struct.pack(">i", 1) +
                struct.pack(">h", len(name)) + name + struct.pack(">i", 1) +
                struct.pack(">iqi", 0, offset, 1 << 20))
        hdr = struct.pack(">hhih", 1, 4, corr, 2) + b"it"
        s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)

    # Long poll: nothing at the high watermark, so the answer comes at max_wait_ms.
    t0 = time.monotonic()
    fetch_at(hw, 400, 79)
    r = slp_broker.recv_frame(s)
    took = time.monotonic() - t0
    assert struct.unpack(">i", r[:4])[0] == 79
    assert 0.35 < took < 3, took
    rec_len = struct.unpack(">i", r[off + 30:off + 34])[0]
    assert rec_len == 0, rec_len
    # An append wakes a parked fetch long before its max_wait_ms.
    t0 = time.monotonic()
    fetch_at(hw, 8000, 80)
    time.sleep(0.3)
    out = subprocess.run([KCAT, "-b", b.addr, "-P", "-t", "py-created", "-p", "0"],
                         input="wake-up\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    r = slp_broker.recv_frame(s)
    took = time.monotonic() - t0
    assert struct.unpack(">i", r[:4])[0] == 80
    assert took < 5, took
    assert b"wake-up" in r
    s.close()


def main():
    if Producer is None or KCAT is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3) and kcat")
        return 77
    with slp_broker.TestRun("slp-py-") as run:
        b = Broker(run)
        admin_checks(b)
        produce_checks(b)
        raw_checks(b)
        retention_checks(b)
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(15) == 0
        assert "every log closed cleanly" in b.text()
        print("ok")
        return 0


if __name__ == "__main__":
    sys.exit(main())
