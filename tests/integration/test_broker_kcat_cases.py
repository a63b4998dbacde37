# SPDX-License-Identifier: Apache-2.0
"""The kcat cases of the broker issue that test_broker_kcat.py does not cover.

One broker (127.0.0.1, kernel-picked port, 4 partitions a topic,
message.max.bytes=100000):
- each codec (none, gzip, snappy, lz4, zstd): keyed messages with headers and
  unkeyed ones, produced by kcat and read back with kcat: every value once,
  its headers intact, each key in one partition and in production order
  across all five runs;
- replay from an offset (kcat -o N) of one partition: the same records as
  the full read from N on;
- replay from a timestamp (kcat -o s@T): starts at the first record of the
  partition whose timestamp is >= T (T taken from the records themselves, so
  equal timestamps cannot make it flaky; an uncompressed topic, where the
  answer is exact);
- message.max.bytes: a one-record batch of exactly 100000 bytes (its size
  computed with kwire.build_batch) is stored and read back; one byte more is
  refused with MESSAGE_TOO_LARGE (kcat reports "Message size too large").

Usage: test_broker_kcat_cases.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kcat. Bounded: every kcat run has a timeout.
"""
import os
import shutil
import subprocess
import sys

import slp_broker

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import kwire  # noqa: E402

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KEYS = 7
N = 120  # keyed messages per codec, plus N // 4 unkeyed
MAX = 100000

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=4
message.max.bytes=%d
log.segment.bytes=8388608
log.dir=%s
"""


def kcat(b, *args, stdin=None, ok=True):
    r = subprocess.run([KCAT, "-b", b.addr] + list(args), input=stdin, capture_output=True,
                       timeout=60)
    if ok:
        assert r.returncode == 0, "kcat %s: rc %d\n%s\n--- broker ---\n%s" % (
            " ".join(args), r.returncode, r.stderr.decode(errors="replace")[-2000:],
            b.text()[-3000:])
    return r


def read(b, topic, *args):
    """(partition, offset, timestamp, key, headers, value) of every record, kcat -e."""
    out = kcat(b, "-C", "-t", topic, "-e", "-f", "%p\\t%o\\t%T\\t%k\\t%h\\t%s\\n",
               *args).stdout.decode()
    rows = []
    for line in out.splitlines():
        p, o, ts, k, h, v = line.split("\t")
        rows.append((int(p), int(o), int(ts), k, h, v))
    return rows


def codecs(b):
    want = {}  # value -> (key or "", headers)
    order = []
    for codec in CODECS:
        # Headers are per kcat run: three runs (n=0,1,2), each message in one of them.
        for n in range(3):
            for i in range(n, N, 3):
                v = "%s-%04d" % (codec, i)
                want[v] = ("k%d" % (i % KEYS), "codec=%s,n=%d" % (codec, n))
                order.append(v)  # the order they are produced in
            lines = ["k%d\t%s-%04d" % (i % KEYS, codec, i) for i in range(n, N, 3)]
            kcat(b, "-P", "-t", "cases", "-K", "\t", "-z", codec, "-H", "codec=%s" % codec,
                 "-H", "n=%d" % n, stdin=("\n".join(lines) + "\n").encode())
        unkeyed = ["%s-u%03d" % (codec, i) for i in range(N // 4)]
        for v in unkeyed:
            want[v] = ("", "")
        kcat(b, "-P", "-t", "cases", "-z", codec, stdin=("\n".join(unkeyed) + "\n").encode())
    rows = read(b, "cases", "-o", "beginning")
    got = {}
    for p, o, ts, k, h, v in rows:
        assert v not in got, "%s read twice" % v
        got[v] = (p, o, k, h)
    assert sorted(got) == sorted(want), (len(got), len(want))
    key_part = {}
    for v, (p, o, k, h) in got.items():
        wk, wh = want[v]
        assert k == wk and h == wh, (v, k, h, wk, wh)
        if k:
            assert key_part.setdefault(k, p) == p, "key %s in two partitions" % k
    parts = {p for p, _, _, _, _, _ in rows}
    rank = {v: i for i, v in enumerate(order)}
    assert len(set(key_part.values())) > 1, key_part
    for p in parts:
        offs = sorted((o, v) for q, o, _, _, _, v in rows if q == p)
        assert [o for o, _ in offs] == list(range(len(offs))), "partition %d offsets" % p
        keyed = [rank[v] for _, v in offs if v in rank]
        assert keyed == sorted(keyed), "partition %d: keyed messages out of order" % p
    print("codecs %s: %d records with headers, keys in order" % (",".join(CODECS), len(rows)))
    return rows


def replay_offset(b, rows):
    p = max({r[0] for r in rows}, key=lambda q: sum(1 for r in rows if r[0] == q))
    full = sorted(r for r in rows if r[0] == p)
    start = len(full) // 2
    again = read(b, "cases", "-p", str(p), "-o", str(start))
    assert again == full[start:], (len(again), len(full) - start)
    print("replay from offset %d of partition %d: %d records" % (start, p, len(again)))


def replay_timestamp(b):
    # Two kcat runs, the second one later: its records' timestamps are >= the first's.
    for run in range(2):
        lines = ["t%d-%03d" % (run, i) for i in range(40)]
        kcat(b, "-P", "-t", "times", "-p", "0", stdin=("\n".join(lines) + "\n").encode())
    rows = read(b, "times", "-p", "0", "-o", "beginning")
    assert [r[1] for r in rows] == list(range(80)), [r[1] for r in rows][:10]
    ts = rows[40][2]
    first = min(o for _, o, t, _, _, _ in rows if t >= ts)
    again = read(b, "times", "-p", "0", "-o", "s@%d" % ts)
    assert again and again[0][1] == first, (first, again[:2])
    assert again == rows[first:], (len(again), 80 - first)
    # Past the newest timestamp: nothing to replay (ListOffsets answers the end).
    later = read(b, "times", "-p", "0", "-o", "s@%d" % (max(r[2] for r in rows) + 1))
    assert later == [], later[:2]
    print("replay from timestamp %d: from offset %d" % (ts, first))


def max_bytes(b):
    def value_for(size):
        # One record, no key, no headers, as librdkafka builds it: the batch is size bytes.
        v = size - len(kwire.build_batch([(None, b"", [])]))
        while len(kwire.build_batch([(None, b"x" * v, [])])) > size:
            v -= 1
        assert len(kwire.build_batch([(None, b"x" * v, [])])) == size
        return v

    edge = value_for(MAX)
    big = edge + 1
    assert len(kwire.build_batch([(None, b"x" * big, [])])) == MAX + 1
    client = ["-X", "message.max.bytes=1000000", "-X", "linger.ms=0", "-z", "none"]
    kcat(b, "-P", "-t", "edge", "-p", "0", *client, stdin=b"x" * edge)
    r = kcat(b, "-P", "-t", "edge", "-p", "0", *client, stdin=b"y" * big, ok=False)
    err = r.stderr.decode(errors="replace")
    assert "Message size too large" in err or "MSG_SIZE_TOO_LARGE" in err, (r.returncode, err)
    out = kcat(b, "-C", "-t", "edge", "-p", "0", "-o", "beginning", "-e", "-f",
               "%o %S\\n").stdout.decode().split()
    assert out == ["0", str(edge)], out
    print("message.max.bytes=%d: a %d-byte batch stored, %d refused" % (MAX, MAX, MAX + 1))


def main():
    if KCAT is None:
        print("SKIP: no kcat")
        return 77
    with slp_broker.TestRun("slp-kcat-cases-") as run:
        b = run.broker(SLIPSTREAM, CONFIG % (MAX, os.path.join(run.tmp, "logs")))
        rows = codecs(b)
        replay_offset(b, rows)
        replay_timestamp(b)
        max_bytes(b)
        assert b.stop() == 0, b.text()[-2000:]
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
