# SPDX-License-Identifier: Apache-2.0
"""A Fetch naming 2,000 partitions is served (Kafka serves it; ours was refused).

Starts `slipstream` on 127.0.0.1 (kernel-picked port, own log directory) with a topic
of 2,000 partitions, one record in every tenth partition (raw Produce frames,
acks=-1), then:
- raw Fetch frames (tests/tools/kwire.py) naming all 2,000 partitions, at v4 and v12,
  sessionless, repeated from the offsets after what each returned until every record
  was read (a response carries what its disk-read area allows): every partition
  answered once with error 0, high watermark 1 where a record is and 0 elsewhere, the
  records byte for byte; then a v12 full fetch that opens a session and an
  incremental one;
- a kafka-python consumer assign()ed all 2,000 partitions (one Fetch per poll names
  them all) reads the 200 records.
Before the fix the broker closed the connection ("arena too small"): the async
Fetch context had a 128 KiB arena.

Usage: test_broker_fetch_wide.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kafka-python. Bounded: socket timeouts, deadlines.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import kwire  # noqa: E402
import slp_broker  # noqa: E402

SLIPSTREAM = sys.argv[1]
try:
    from kafka import KafkaConsumer, TopicPartition
except ImportError:
    KafkaConsumer = None

TOPIC = "wide"
PARTS = 2000
EVERY = 10
CONFIG = """\
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=512
num.partitions=1
storage.cache.chunks=64
log.preallocate=false
log.segment.bytes=1048576
log.dir=%s
metrics.shm.path=%s.metrics
"""


def Client(b):
    """One connection to @b (kwire.Client)."""
    # Generous: creating 2,000 partition logs is slow on a busy disk.
    return kwire.Client(b.connect(), "wide-it", 180)


def value(p):
    return b"wide-%04d" % p


def create_topic(c):
    resp = c.request(19, 4, {"Topics": [{"Name": TOPIC, "NumPartitions": PARTS,
                                         "ReplicationFactor": 1, "Assignments": [],
                                         "Configs": []}],
                             "timeoutMs": 170000, "validateOnly": False})
    assert resp["Topics"][0]["ErrorCode"] == 0, resp


def produce(c, partition):
    batch = kwire.build_batch([(None, value(partition), [])])
    resp = c.request(0, 3, {"TransactionalId": None, "Acks": -1, "TimeoutMs": 5000,
                            "TopicData": [{"Name": TOPIC, "PartitionData": [
                                {"Index": partition, "Records": batch}]}]})
    pr = resp["Responses"][0]["PartitionResponses"][0]
    assert pr["ErrorCode"] == 0 and pr["BaseOffset"] == 0, resp


def fetch(c, ver, sid=0, epoch=-1, parts=range(PARTS), offsets=None):
    """@offsets: {partition: fetch offset}, 0 for the others."""
    offsets = offsets or {}
    body = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": 50 << 20,
            "IsolationLevel": 0, "SessionId": sid, "SessionEpoch": epoch,
            "Topics": [{"Topic": TOPIC, "Partitions": [
                {"Partition": p, "CurrentLeaderEpoch": -1, "FetchOffset": offsets.get(p, 0),
                 "LastFetchedEpoch": -1, "LogStartOffset": -1, "PartitionMaxBytes": 65536}
                for p in parts]}] if parts else [],
            "ForgottenTopicsData": [], "RackId": ""}
    return c.request(1, ver, body)


def check_answer(resp, how, offsets):
    """Every partition once, error 0, the high watermark as produced; returns
    {partition: value} of the records returned (each the one produced there)."""
    seen = set()
    got = {}
    for t in resp["Responses"]:
        assert t["Topic"] == TOPIC, (how, t["Topic"])
        for p in t["Partitions"]:
            i = p["PartitionIndex"]
            assert i not in seen, (how, "partition answered twice", i)
            seen.add(i)
            want = 1 if i % EVERY == 0 else 0
            assert p["ErrorCode"] == 0 and p["HighWatermark"] == want, (how, p)
            if p["Records"]:
                assert want == 1 and offsets.get(i, 0) == 0, (how, i)
                batches = kwire.split_batches(p["Records"])
                h = kwire.batch_header(batches[0])
                recs = kwire.parse_records(batches[0][61:], h["records_count"])
                assert len(batches) == 1 and [r["value"] for r in recs] == [value(i)], (how, i)
                got[i] = recs[0]["value"]
    assert seen == set(range(PARTS)), (how, len(seen))
    return got


def read_all(c, ver):
    """Sessionless fetches of all partitions, each from the offset after what it
    returned, until every record was read (a response holds what its disk-read
    area and max_bytes allow, so it may take a few)."""
    offsets = {}
    for rnd in range(50):
        r = fetch(c, ver, offsets=offsets)
        # v4 has no top-level error or session id (v7+).
        assert r.get("ErrorCode", 0) == 0 and r.get("SessionId", 0) == 0, r.get("ErrorCode")
        for p in check_answer(r, "v%d round %d" % (ver, rnd), offsets):
            offsets[p] = 1
        if len(offsets) == PARTS // EVERY:
            return rnd + 1
    raise AssertionError("v%d: %d of %d records after 50 fetches" % (
        ver, len(offsets), PARTS // EVERY))


def consume_kafka_python(b):
    c = KafkaConsumer(bootstrap_servers=b.addr, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=30000, fetch_max_wait_ms=100,
                      max_partition_fetch_bytes=65536, consumer_timeout_ms=1000)
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTS)]
        c.assign(tps)
        c.seek_to_beginning()
        got = {}
        deadline = time.monotonic() + 90
        while len(got) < PARTS // EVERY and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500, max_records=1000).items():
                for m in msgs:
                    assert (tp.partition, m.offset) not in got, (tp, m.offset)
                    got[(tp.partition, m.offset)] = m.value
    finally:
        c.close()
    want = {(p, 0): value(p) for p in range(0, PARTS, EVERY)}
    assert got == want, "kafka-python read %d of %d records" % (len(got), len(want))


def main():
    if KafkaConsumer is None:
        print("SKIP: needs kafka-python (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("wr-wide-") as run:
        b = run.broker(SLIPSTREAM, CONFIG % ((run.path("logs"),) * 2))
        c = Client(b)
        create_topic(c)
        for p in range(0, PARTS, EVERY):
            produce(c, p)
        rounds = {ver: read_all(c, ver) for ver in (4, 12)}
        # A full fetch opening a session, then an incremental one with the same offsets:
        # only partitions that have records at them are answered again.
        r = fetch(c, 12, 0, 0)
        assert r["ErrorCode"] == 0 and r["SessionId"] > 0, r["ErrorCode"]
        check_answer(r, "v12 session", {})
        r = fetch(c, 12, r["SessionId"], 1, parts=None)
        assert r["ErrorCode"] == 0, r["ErrorCode"]
        got = [p["PartitionIndex"] for t in r["Responses"] for p in t["Partitions"]]
        assert got and all(p % EVERY == 0 for p in got), got[:20]
        c.close()
        consume_kafka_python(b)
        print("OK: Fetches of %d partitions answered (v4 in %d, v12 in %d rounds, a "
              "session), kafka-python read %d records" % (
                  PARTS, rounds[4], rounds[12], PARTS // EVERY))
        rc = b.stop(timeout=180)  # closing 2,000 logs one by one takes a while
        assert rc == 0, rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
