# SPDX-License-Identifier: Apache-2.0
"""kill -9 in the middle of a clean shutdown, then restarts: nothing lost or doubled.

A shutdown closes every log in phases (docs/storage.md, "Close and open of many
logs"): final writes and fdatasyncs, the active segments' index files written
into the files as they are, a syncfs, the clean-shutdown markers written in
place, another syncfs. A log whose marker was not written yet is stale on disk
(made so at its open), so the next open scans it; one whose marker was written
is trusted with the index files beside it. This test kills the broker at points
inside that shutdown and checks both kinds of open.

Starts `slipstream` (kernel transport, 127.0.0.1, a free port, its own log
directory) with a topic of 200 partitions. Rounds, each on the same directory:
a confluent-kafka producer (acks=1) writes 10 records to every partition (keys
name the partition, values "r<round>-<partition>-<n>"), waits for every
acknowledgement; SIGTERM, then SIGKILL after a delay (0 to 320 ms, growing by
round: closing 200 logs takes 0.2-0.4 s here, so the kills land in its phases, the
later ones maybe after a clean exit);
the broker is started again. After every restart kcat reads the topic from
offset 0 (one run over every partition): each acknowledged record is there exactly once, in order, at
consecutive offsets, and ListOffsets' end offset (kcat -Q style query through
confluent-kafka) equals the count. A final round exits cleanly and reopens
(every marker trusted) with the same checks. Bounded: about 30 s.

Usage: test_broker_shutdown_kill.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka or kcat.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slp_broker  # noqa: E402

try:
    from confluent_kafka import Producer, TopicPartition, Consumer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover
    Producer = None

SLIPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "build/dataplane/slipstream"
KCAT = shutil.which("kcat")
TOPIC = "sk"
PARTS = 200
PER_ROUND = 10
KILL_AFTER_MS = (0, 40, 90, 140, 190, 240, 320)
CONFIG = """\
listeners=PLAINTEXT://127.0.0.1:%d
dpdk.hugepages=off
dpdk.memory.mb=256
auto.create.topics.enable=false
log.dir=%%s
""" % slp_broker.free_port()


def produce_round(addr, rnd, expect):
    p = Producer({"bootstrap.servers": addr, "acks": "1", "linger.ms": 2,
                  "enable.idempotence": False, "message.timeout.ms": 30000})
    acked, failed = [], []

    def cb(err, msg):
        (failed if err is not None else acked).append(
            (msg.partition(), msg.value().decode()) if err is None else str(err))

    for part in range(PARTS):
        for n in range(PER_ROUND):
            p.produce(TOPIC, value=("r%d-%d-%d" % (rnd, part, n)).encode(),
                      partition=part, on_delivery=cb)
        p.poll(0)
    left = p.flush(30)
    assert left == 0 and not failed, "round %d: %d unflushed, failures %r" % (
        rnd, left, failed[:3])
    assert len(acked) == PARTS * PER_ROUND
    for part, v in acked:
        expect[part].append(v)


def end_offsets(addr):
    c = Consumer({"bootstrap.servers": addr, "group.id": "sk-ends",
                  "enable.auto.commit": False})
    try:
        ends = {}
        for part in range(PARTS):
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
            assert lo == 0, (part, lo)
            ends[part] = hi
        return ends
    finally:
        c.close()


def read_all(addr):
    """Every partition from offset 0 to its end, by one kcat: {partition: [(offset, value)]}."""
    out = subprocess.run([KCAT, "-C", "-b", addr, "-t", TOPIC, "-o", "beginning", "-e", "-q",
                          "-f", "%p %o %s\\n"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {part: [] for part in range(PARTS)}
    for line in out.stdout.splitlines():
        if line:
            p, o, v = line.split(" ", 2)
            rows[int(p)].append((int(o), v))
    return rows


def check(addr, expect, what):
    ends = end_offsets(addr)
    got = read_all(addr)
    for part in range(PARTS):
        rows = got[part]
        assert [o for o, _ in rows] == list(range(len(rows))), \
            "%s: partition %d offsets not consecutive from 0" % (what, part)
        vals = [v for _, v in rows]
        assert vals == expect[part], "%s: partition %d holds %d records, %d acknowledged " \
            "(first difference at %s)" % (what, part, len(vals), len(expect[part]), next(
                (i for i, (a, b) in enumerate(zip(vals, expect[part])) if a != b),
                min(len(vals), len(expect[part]))))
        assert ends[part] == len(rows), (what, part, ends[part], len(rows))


def main():
    if Producer is None or KCAT is None:
        print("confluent_kafka or kcat missing: skipped")
        return 77
    with slp_broker.TestRun("slp-shutkill-") as run:
        b = run.broker(SLIPSTREAM, CONFIG % run.path("logs"))
        a = AdminClient({"bootstrap.servers": b.addr})
        fs = a.create_topics([NewTopic(TOPIC, num_partitions=PARTS, replication_factor=1)])
        for f in fs.values():
            f.result(30)
        expect = {part: [] for part in range(PARTS)}
        killed_mid = 0
        for rnd, delay in enumerate(KILL_AFTER_MS):
            produce_round(b.addr, rnd, expect)
            b.proc.send_signal(signal.SIGTERM)
            time.sleep(delay / 1000.0)
            clean = b.proc.poll() == 0
            b.kill_dataplane()
            if not clean and "every log closed cleanly" not in b.text():
                killed_mid += 1
            b.start_dataplane(30)
            check(b.addr, expect, "round %d (kill after %d ms)" % (rnd, delay))
        # A clean exit and a reopen that trusts every marker.
        produce_round(b.addr, len(KILL_AFTER_MS), expect)
        b.stop_clean("the last clean stop")
        b.start_dataplane(30)
        check(b.addr, expect, "after a clean shutdown")
        b.stop_clean("the final stop")
        print("ok: %d rounds, %d killed inside the shutdown, %d records checked at the end"
              % (len(KILL_AFTER_MS), killed_mid, sum(len(v) for v in expect.values())))
        assert killed_mid >= 1, "no kill landed inside a shutdown: the test did not test it"
    return 0


if __name__ == "__main__":
    sys.exit(main())
