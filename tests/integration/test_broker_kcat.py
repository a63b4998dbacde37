# SPDX-License-Identifier: Apache-2.0
"""The broker request path end to end with kcat (librdkafka).

Starts `slipstream` on 127.0.0.1 with a port the kernel picks and a log
directory of its own, then: kcat -L; the reactor's end pollers in the order
that answers a Produce in the iteration that received it (its start-up line); produce keyed messages to a topic that
Metadata auto-creates (num.partitions=3), plain and compressed; consume them
back with -o beginning -e and check every message, the partition of each key
and the order within each partition; ListOffsets by timestamp (kcat -Q);
stop with SIGTERM (clean close of every log), start again on the same
directory and consume the same messages from disk.

Usage: test_broker_kcat.py PATH_TO_SLIPSTREAM. Bounded: every subprocess has
a timeout, the whole test takes a few seconds.
"""
import os
import re
import shutil
import subprocess
import sys

import slp_broker

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
N = 300
KEYS = 7

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
storage.cache.chunks=16
log.dir=%s
"""


def Broker(run, logdir):
    return run.broker(SLIPSTREAM, CONFIG % logdir)


def kcat(b, *args, stdin=None):
    r = subprocess.run([KCAT, "-b", b.addr] + list(args), input=stdin, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, "kcat %s: rc %d\n%s\n--- broker ---\n%s" % (
        " ".join(args), r.returncode, r.stderr[-2000:], b.text()[-3000:])
    return r.stdout


def consume(b, topic):
    out = kcat(b, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p\t%o\t%k\t%s\n")
    rows = []
    for line in out.splitlines():
        p, o, k, v = line.split("\t")
        rows.append((int(p), int(o), k, v))
    return rows


def check(rows, expected_values):
    """Every value once; each key in one partition; offsets 0.. and production order."""
    values = sorted(v for _, _, _, v in rows)
    assert values == sorted(expected_values), (len(values), len(expected_values))
    key_part = {}
    by_part = {}
    for p, o, k, v in rows:
        assert key_part.setdefault(k, p) == p, "key %s in partitions %d and %d" % (
            k, key_part[k], p)
        by_part.setdefault(p, []).append((o, v))
    assert len(by_part) > 1, "every key hashed to one partition: %r" % key_part
    for p, lst in by_part.items():
        assert [o for o, _ in lst] == list(range(len(lst))), "partition %d offsets" % p
        seq = [expected_values.index(v) for _, v in lst]
        assert seq == sorted(seq), "partition %d out of production order" % p
    return by_part


def check_end_pollers(b):
    """The broker lcore's end pollers run in the order that answers a Produce and the
    Fetch it wakes in the iteration that received it: every transport's walk of its
    connections (Produce appended), storage (written), fetch.wait (parked Fetches woken),
    then every transport's answers poller (docs/dataplane.md "Reactors"). Read from the
    reactor's start-up line of its pollers."""
    lines = [l for l in b.text().splitlines() if re.search(r"reactor: lcore \d+ pollers: ", l)
             and "fetch.wait" in l]
    assert len(lines) == 1, b.text()[-3000:]
    end = re.search(r"; end: (.*); idle: ", lines[0]).group(1).split(", ")
    walks = [i for i, n in enumerate(end) if re.fullmatch(r"(net\d+\.flush|dpdk\d+\.end)", n)]
    answers = [i for i, n in enumerate(end) if re.fullmatch(r"(net|dpdk)\d+\.answers", n)]
    assert walks and answers and "storage" in end, end
    assert max(walks) < end.index("storage") < end.index("fetch.wait") < min(answers), end
    # One answers poller per transport that walks its connections on this lcore.
    assert len(answers) == len(walks), end


def main():
    if KCAT is None:
        print("SKIP: no kcat")
        return 77
    with slp_broker.TestRun("slp-kcat-") as run:
        tmp = run.tmp
        logdir = os.path.join(tmp, "logs")
        b = Broker(run, logdir)
        out = kcat(b, "-L")
        assert "broker 1 at %s" % b.addr in out, out
        check_end_pollers(b)

        plain = ["k%d:plain-%04d" % (i % KEYS, i) for i in range(N)]
        kcat(b, "-P", "-t", "it-topic", "-K:", stdin="\n".join(plain) + "\n")
        zipped = ["k%d:lz4-%04d" % (i % KEYS, i) for i in range(N)]
        kcat(b, "-P", "-t", "it-topic", "-K:", "-z", "lz4", stdin="\n".join(zipped) + "\n")
        values = [kv.split(":", 1)[1] for kv in plain + zipped]

        out = kcat(b, "-L", "-t", "it-topic")
        assert 'topic "it-topic" with 3 partitions' in out, out
        # A batch far larger than a default response buffer (64 KiB) is fetched whole.
        kcat(b, "-P", "-t", "it-big", "-K:", stdin="kbig:%s\nksmall:tail\n" % ("z" * 300000))
        big = kcat(b, "-C", "-t", "it-big", "-o", "beginning", "-e", "-f", "%k %S\n").split("\n")
        assert sorted(x for x in big if x) == ["kbig 300000", "ksmall 4"], big
        rows = consume(b, "it-topic")
        by_part = check(rows, values)

        # ListOffsets by timestamp 0: the first offset of every partition is 0.
        q = kcat(b, "-Q", "-t", "it-topic:0:0", "-t", "it-topic:1:0", "-t", "it-topic:2:0")
        assert len(re.findall(r"offset 0\b", q)) == 3, q

        assert b.stop() == 0, b.text()[-2000:]
        assert "every log closed cleanly" in b.text(), b.text()[-2000:]
        for p in range(3):
            assert os.path.exists(os.path.join(logdir, "it-topic-%d" % p, "clean-shutdown"))
        with open(os.path.join(logdir, "meta.properties")) as f:
            meta = f.read()
        cluster = re.search(r"cluster.id=(\S+)", meta).group(1)

        # Same directory again: the topic, its id and the data survive.
        b = Broker(run, logdir)
        out = kcat(b, "-L", "-t", "it-topic")
        assert 'topic "it-topic" with 3 partitions' in out, out
        rows2 = consume(b, "it-topic")
        assert sorted(rows2) == sorted(rows), "data changed across a restart"
        check(rows2, values)
        # Appending after the restart continues the offsets.
        kcat(b, "-P", "-t", "it-topic", "-K:", stdin="k0:after-restart\n")
        rows3 = consume(b, "it-topic")
        p0 = rows3[[v for _, _, _, v in rows3].index("after-restart")]
        assert p0[1] == len(by_part[p0[0]]), (p0, len(by_part[p0[0]]))
        assert b.stop() == 0
        with open(os.path.join(logdir, "meta.properties")) as f:
            assert "cluster.id=%s" % cluster in f.read()
        b = None
        print("ok: %d messages over %d partitions, consumed again after a restart" % (
            len(rows), len(by_part)))
        return 0


if __name__ == "__main__":
    sys.exit(main())
