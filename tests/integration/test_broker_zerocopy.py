# SPDX-License-Identifier: Apache-2.0
"""Zero-copy Fetch from the tail cache, proven by the broker's counters.

Starts `slipstream` (metrics.shm.path in the test's directory, three
partitions) and `slipstream-metrics` on 127.0.0.1 (port 0), produces a known
set of records with confluent_kafka (keys, values from 0 bytes to 40 KB,
half of them lz4-compressed) and kcat, then reads everything back with a
confluent_kafka consumer (assigned partitions, from offset 0) and with kcat,
checking every key and value in order. The tail cache still holds all of it,
so the transport must have sent every Fetch record byte in place:

  slipstream_fetch_record_bytes_total{transport=T,path="copied"} == 0
  slipstream_fetch_record_bytes_total{transport=T,path="reference"}
      == sum of slipstream_partition_bytes_out_total (the record bytes Fetch
         answered with) > 0

with T the transport the broker runs (kernel, or dpdk when test_broker_dpdk.py
runs this script with SLP_TRANSPORT=dpdk). Raw Fetch frames (kwire) then show
one Fetch returning several consecutive tail-cache chunks of a partition (4 MB
at once), within PartitionMaxBytes and MaxBytes. Then the broker restarts on the
same log directory (empty cache): the records come back from disk (checked
again) and the counters say so (copy > 0: a disk read lands in a buffer of the
broker's; reference == 0).

Usage: test_broker_zerocopy.py SLIPSTREAM [SLIPSTREAM_METRICS] (run with
/usr/bin/python3; SLIPSTREAM_METRICS defaults to the build's
control/slipstream-metrics beside dataplane/). Exit 77 (skipped) without
confluent_kafka or kcat. Bounded: every wait has a deadline.
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import slp_broker

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import kwire  # noqa: E402

SLIPSTREAM = sys.argv[1]
METRICS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(SLIPSTREAM))), "control",
    "slipstream-metrics")
KCAT = shutil.which("kcat")
try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
log.dir=%s
metrics.shm.path=%s
"""

TOPIC = "zc"
N = 1500
TRANSPORT = "dpdk" if slp_broker.DPDK else "kernel"
SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')


def value_of(i):
    """Deterministic values of many sizes, 0 B to 40 KB."""
    size = (0, 1, 7, 100, 1000, 4000, 16384, 40000)[i % 8] + i % 13
    return (("%06d:" % i) * (size // 7 + 1)).encode()[:size]


def start_metrics(shm):
    return slp_broker.start_metrics_server(METRICS, shm)


def scrape(url):
    """{(name, labels text): value} of every sample."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def fetch_counters(url):
    s = scrape(url)
    ref = s.get(("slipstream_fetch_record_bytes_total",
                 'transport="%s",path="reference"' % TRANSPORT))
    copy = s.get(("slipstream_fetch_record_bytes_total",
                  'transport="%s",path="copied"' % TRANSPORT))
    out = sum(v for (n, _), v in s.items() if n == "slipstream_partition_bytes_out_total")
    assert ref is not None and copy is not None, "no fetch record counters: %r" % sorted(s)[:20]
    return ref, copy, out


def produce(b):
    """confluent_kafka (plain and lz4) and kcat; returns {partition: [(key, value)]}."""
    sent = {}
    for comp in ("none", "lz4"):
        p = Producer({"bootstrap.servers": b.addr, "compression.type": comp,
                      "linger.ms": 5, "batch.size": 65536})
        errors = []

        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                sent.setdefault(msg.partition(), []).append(
                    (msg.offset(), msg.key(), msg.value() or b""))
        for i in range(N // 2):
            k = i if comp == "none" else i + N // 2
            p.produce(TOPIC, key=("key-%d" % (k % 11)).encode(), value=value_of(k),
                      on_delivery=cb)
            p.poll(0)
        assert p.flush(60) == 0, "records left unsent"
        assert not errors, errors[:3]
    lines = "".join("kcat-%d:from kcat %d\n" % (i % 5, i) for i in range(200))
    r = subprocess.run([KCAT, "-b", b.addr, "-P", "-t", TOPIC, "-K:", "-p", "1"],
                       input=lines, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return sent


def expected(b, sent):
    """Offsets -> (key, value) per partition; kcat's records are read back by offset."""
    want = {p: {o: (k, v) for o, k, v in rows} for p, rows in sent.items()}
    return want


def consume_all(b):
    """Every record of TOPIC with confluent_kafka: {partition: [(offset, key, value)]}."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "zc-check",
                  "enable.auto.commit": False, "fetch.max.bytes": 4 * 1048576})
    ends = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in range(3)}
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(3)])
    got = {p: [] for p in range(3)}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(len(got[p]) < ends[p] for p in got):
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got[m.partition()].append((m.offset(), m.key(), m.value() or b""))
    c.close()
    for p in got:
        assert [o for o, _, _ in got[p]] == list(range(ends[p])), (p, ends[p], len(got[p]))
    return got


def check(got, want):
    n = 0
    for p, rows in want.items():
        have = {o: (k, v) for o, k, v in got[p]}
        for o, kv in rows.items():
            assert have.get(o) == kv, "partition %d offset %d differs" % (p, o)
            n += 1
    # kcat's 200 records went to partition 1 after the others.
    kc = [(k, v) for o, k, v in got[1] if k is not None and k.startswith(b"kcat-")]
    assert kc == [(("kcat-%d" % (i % 5)).encode(), ("from kcat %d" % i).encode())
                  for i in range(200)], kc[:3]
    return n + len(kc)


def kcat_consume(b):
    r = subprocess.run([KCAT, "-b", b.addr, "-C", "-t", TOPIC, "-p", "1", "-o", "beginning",
                        "-e", "-f", "%o\t%k\t%S\n"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return [l.split("\t") for l in r.stdout.splitlines()]


def no_sanitizer_reports(b):
    """An ASan/UBSan build reports use after release here (the broker may still exit 0)."""
    text = b.text()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in text, "sanitizer report in the broker log:\n" + text[-4000:]


def wait_counters(url, pred, what):
    deadline = time.monotonic() + 15
    last = None
    while time.monotonic() < deadline:
        last = fetch_counters(url)
        if pred(*last):
            return last
        time.sleep(0.1)
    raise AssertionError("%s: reference, copy, bytes_out = %r" % (what, last))


def raw_fetch(b, topic, rcvbuf):
    """A socket with a small receive buffer that sent one Fetch (v11) for @topic's partition 0."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect((b.host, b.port))
    body = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": 8 << 20,
            "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
            "Topics": [{"Topic": topic, "Partitions": [
                {"Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": 0,
                 "LogStartOffset": -1, "PartitionMaxBytes": 8 << 20}]}],
            "ForgottenTopicsData": [], "RackId": ""}
    s.sendall(kwire.encode_request(1, 11, 1, "zc-raw", body))
    return s


def recv_response(s):
    def exact(n):
        out = b""
        while len(out) < n:
            d = s.recv(min(65536, n - len(out)))
            assert d, "connection closed after %d of %d bytes" % (len(out), n)
            out += d
        return out
    n = struct.unpack(">i", exact(4))[0]
    return exact(n)


CHUNK_BYTES = (1 << 20) + 8192  # storage.cache.chunk.bytes (default)


def chained_fetch(b):
    """
    One Fetch returns more than one tail-cache chunk of a partition: consecutive
    batches from the fetch offset up to PartitionMaxBytes (all 4 MB here, in
    4-5 chunks), or up to the response's MaxBytes, never past either (but for
    a first batch above them, KIP-74).
    """
    p = Producer({"bootstrap.servers": b.addr, "linger.ms": 5, "batch.size": 65536})
    for i in range(100):
        p.produce("zc-chain", partition=0, value=value_of(7 + 8 * (i % 4)))  # 40 KB each
    assert p.flush(60) == 0
    c = kwire.Client(b.connect(), "zc-chain", 30)

    def fetch(offset, part_max, max_bytes):
        body = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": max_bytes,
                "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
                "Topics": [{"Topic": "zc-chain", "Partitions": [
                    {"Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": offset,
                     "LogStartOffset": -1, "PartitionMaxBytes": part_max}]}],
                "ForgottenTopicsData": [], "RackId": ""}
        pr = c.request(1, 11, body)["Responses"][0]["Partitions"][0]
        assert pr["ErrorCode"] == 0, pr["ErrorCode"]
        records = pr["Records"] or b""
        nxt = offset
        for batch in kwire.split_batches(records):  # whole batches, consecutive offsets
            h = kwire.batch_header(batch)
            assert h["base_offset"] == nxt, (h["base_offset"], nxt)
            nxt = h["base_offset"] + h["last_offset_delta"] + 1
        return len(records), nxt, pr["HighWatermark"]

    size, nxt, hw = fetch(0, 8 << 20, 8 << 20)
    assert hw == 100 and nxt == 100, (hw, nxt, size)  # everything, in one response
    assert size > CHUNK_BYTES * 3, size
    size, nxt, hw = fetch(0, 3 << 19, 8 << 20)  # 1.5 MiB a partition
    assert CHUNK_BYTES // 2 < size <= 3 << 19 and 0 < nxt < 100, (size, nxt)
    size2, nxt2, _ = fetch(nxt, 8 << 20, 2 << 20)  # 2 MiB a response, from there on
    assert CHUNK_BYTES < size2 <= 2 << 20 and nxt < nxt2 < 100, (size2, nxt2)
    c.close()
    print("one Fetch: 4 MB over several chunks at once; 1.5 MiB and 2 MiB bounds kept",
          flush=True)


def lifetimes(b):
    """
    Responses whose bytes are still unsent when their topic is deleted, and
    connections closed with a response half sent: the broker releases the
    references once (no sanitizer report, no crash) and carries on.
    """
    p = Producer({"bootstrap.servers": b.addr, "linger.ms": 5})
    for t in ("zc-del", "zc-close"):
        for i in range(400):
            p.produce(t, partition=0, value=value_of(5 + 8 * (i % 4)))
    assert p.flush(60) == 0
    # A slow reader (4 KiB receive buffer) holds most of a large response unsent.
    slow = raw_fetch(b, "zc-del", 4096)
    time.sleep(0.5)
    a = AdminClient({"bootstrap.servers": b.addr})
    for f in a.delete_topics(["zc-del"], operation_timeout=30).values():
        f.result(30)
    body = recv_response(slow)  # every byte still arrives, the size prefix holds
    # A Fetch reads the partition's tail-cache chunks one after another up to
    # PartitionMaxBytes (8 MiB): all 400 records of some 4 KB (1.6 MB over two
    # chunks, every chunk still cached) come in this one response (it was 64 KiB
    # while a Fetch read one chunk), far beyond what a 4 KiB window and the
    # kernel's send buffer held when the topic was deleted.
    assert len(body) > 1400000, len(body)
    slow.close()
    # Closed early: half read, or not read at all (reset with unsent bytes).
    for k in range(10):
        s = raw_fetch(b, "zc-close", 4096)
        if k % 2 == 0:
            s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def main():
    if Producer is None or KCAT is None:
        print("SKIP: needs confluent_kafka and kcat")
        return 77
    with slp_broker.TestRun("zerocopy-") as run:
        logdir = run.path("logs")
        shm = run.path("metrics.shm")
        b = run.broker(SLIPSTREAM, CONFIG % (logdir, shm))
        mp, url = start_metrics(shm)
        run.process(mp)
        sent = produce(b)
        want = expected(b, sent)
        got = consume_all(b)
        n = check(got, want)
        rows = kcat_consume(b)
        assert len(rows) == len(got[1]), (len(rows), len(got[1]))
        for (o, k, size), (go, gk, gv) in zip(rows, got[1]):
            assert int(o) == go and k.encode() == (gk or b"") and int(size) == len(gv)
        ref, copy, out = wait_counters(url, lambda r, c, o: o > 0 and r + c >= o,
                                       "tail-cache fetch")
        assert copy == 0, "record bytes copied from the tail cache: %d" % copy
        assert ref == out, "by reference %d, Fetch answered %d" % (ref, out)
        print("tail cache: %d records checked, %d record bytes sent by reference, 0 copied"
              % (n, ref), flush=True)
        chained_fetch(b)
        lifetimes(b)
        check(consume_all(b), want)
        print("slow reader across DeleteTopics and early closes: released, still serving",
              flush=True)
        assert b.stop() == 0, b.text()[-3000:]
        no_sanitizer_reports(b)
        mp.kill()
        mp.wait(5)
        # Again from disk: the cache starts empty.
        b = run.broker(SLIPSTREAM, CONFIG % (logdir, shm))
        mp, url = start_metrics(shm)
        run.process(mp)
        got = consume_all(b)
        check(got, want)
        ref, copy, out = wait_counters(url, lambda r, c, o: o > 0 and r + c >= o, "disk fetch")
        assert copy == out and ref == 0, (ref, copy, out)
        print("from disk: records checked again, %d record bytes from read buffers" % copy,
              flush=True)
        assert b.stop() == 0, b.text()[-3000:]
        no_sanitizer_reports(b)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
