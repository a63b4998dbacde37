# SPDX-License-Identifier: Apache-2.0
"""Fetch sessions (KIP-227) over the wire, with raw frames (tests/tools/kwire.py).

librdkafka, kafka-python 2.0 and kafkajs never open a fetch session (they
send session id 0, epoch -1); only the Java client does, so the sessions are
driven here by hand. Starts `slipstream` on 127.0.0.1 (kernel-picked port,
own log directory, max.incremental.fetch.session.cache.slots=4) and checks:
- a full fetch (epoch 0) answers every partition and opens a session;
- incremental fetches answer only partitions with records or a new high
  watermark: nothing after the client moved its offsets, one partition after
  an append to it, a long-polled one woken by an append to a partition of
  the session, an empty one at max_wait_ms;
- forgotten partitions are no longer answered; forgetting them all closes
  the session;
- a wrong epoch is INVALID_FETCH_SESSION_EPOCH, an unknown id
  FETCH_SESSION_ID_NOT_FOUND, an incremental v13 request on a v12 session
  FETCH_SESSION_TOPIC_ID_ERROR (all top-level, session id 0, no topics) and
  none of them changes the session; epoch -1 closes it; a full fetch naming
  a session replaces it;
- partitions that returned records move behind the others in the next
  incremental responses (Kafka's fairness rule), topics repeated as needed;
- v13 sessions name topics by id (UNKNOWN_TOPIC_ID for an unknown one) and
  forget by id;
- sessionless fetches (id 0, epoch -1) are unchanged: session id 0;
- with all 4 slots held by young sessions of the same size, a new full fetch
  is answered without a session (id 0), as Kafka's cache does;
- (second broker, a tail cache of 256 KiB) 16 fetches of old data pipelined
  on one connection, more than the 8 disk-read contexts: the extra ones are
  deferred (the debug log says so) and all are answered in order with the
  right records; with max.incremental.fetch.session.cache.slots=0 no
  session is ever created.

Usage: test_broker_fetch_session.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
"""
import os
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import kwire  # noqa: E402
import slp_broker  # noqa: E402

SLIPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "build/dataplane/slipstream"
CONFIG = """\
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=2
auto.create.topics.enable=true
max.incremental.fetch.session.cache.slots=4
log.dir=%s
"""

FETCH = 1
ERR_NONE = 0
ERR_SESSION_ID_NOT_FOUND = 70
ERR_INVALID_SESSION_EPOCH = 71
ERR_UNKNOWN_TOPIC_ID = 100
ERR_SESSION_TOPIC_ID_ERROR = 106


def Client(b):
    """One connection to @b (kwire.Client)."""
    return kwire.Client(b.connect(), "fetch-it", 10)


def produce(c, topic, partition, values):
    batch = kwire.build_batch([(None, v, []) for v in values])
    resp = c.request(0, 3, {"TransactionalId": None, "Acks": -1, "TimeoutMs": 5000,
                            "TopicData": [{"Name": topic, "PartitionData": [
                                {"Index": partition, "Records": batch}]}]})
    pr = resp["Responses"][0]["PartitionResponses"][0]
    assert pr["ErrorCode"] == 0, resp
    return pr["BaseOffset"]


def fetch(c, ver, sid, epoch, topics, forgotten=(), max_wait=0, min_bytes=1):
    """topics: [(name or id, [(partition, offset)])]; forgotten: [(name or id, [partitions])]."""
    key = "TopicId" if ver >= 13 else "Topic"
    body = {"ReplicaId": -1, "MaxWaitMs": max_wait, "MinBytes": min_bytes,
            "MaxBytes": 1 << 20, "IsolationLevel": 0, "SessionId": sid, "SessionEpoch": epoch,
            "Topics": [{key: t, "Partitions": [
                {"Partition": p, "CurrentLeaderEpoch": -1, "FetchOffset": off,
                 "LastFetchedEpoch": -1, "LogStartOffset": -1, "PartitionMaxBytes": 65536}
                for p, off in parts]} for t, parts in topics],
            "ForgottenTopicsData": [{key: t, "Partitions": list(parts)}
                                    for t, parts in forgotten],
            "RackId": ""}
    return c.request(FETCH, ver, body)


def answered(resp, ver=12):
    """{(topic, partition): (error, high watermark, record count)} of a response."""
    key = "TopicId" if ver >= 13 else "Topic"
    out = {}
    for t in resp["Responses"]:
        for p in t["Partitions"]:
            n = 0
            if p["Records"]:
                for batch in kwire.split_batches(p["Records"]):
                    n += kwire.batch_header(batch)["records_count"]
            k = (t[key], p["PartitionIndex"])
            assert k not in out, ("partition answered twice", k)
            out[k] = (p["ErrorCode"], p["HighWatermark"], n)
    return out


def expect_top_error(resp, err):
    assert resp["ErrorCode"] == err, resp
    assert resp["SessionId"] == 0, resp
    assert resp["Responses"] == [], resp


def topic_ids(c):
    resp = c.request(3, 12, {"Topics": None, "AllowAutoTopicCreation": False,
                             "IncludeTopicAuthorizedOperations": False})
    return {t["Name"]: t["TopicId"] for t in resp["Topics"]}


def create_topics(c, names):
    """Auto-created by a Metadata request (num.partitions=2)."""
    resp = c.request(3, 12, {"Topics": [{"TopicId": b"\0" * 16, "Name": n} for n in names],
                             "AllowAutoTopicCreation": True,
                             "IncludeTopicAuthorizedOperations": False})
    for t in resp["Topics"]:
        assert t["ErrorCode"] in (0, 5), t  # 5: LEADER_NOT_AVAILABLE while being created


def session_checks(b):
    c = Client(b)
    p = Client(b)  # producer connection
    create_topics(p, ["sa", "sb"])
    produce(p, "sa", 0, [b"a0", b"a1", b"a2"])
    produce(p, "sa", 1, [b"b0", b"b1"])
    produce(p, "sb", 0, [b"c0"])

    # Full fetch: everything answered, a session opened.
    r = fetch(c, 12, 0, 0, [("sa", [(0, 0), (1, 0)]), ("sb", [(0, 0)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] > 0, r
    sid = r["SessionId"]
    assert answered(r) == {("sa", 0): (0, 3, 3), ("sa", 1): (0, 2, 2), ("sb", 0): (0, 1, 1)}, r

    # The client moves its offsets to the ends: nothing new to answer.
    r = fetch(c, 12, sid, 1, [("sa", [(0, 3), (1, 2)]), ("sb", [(0, 1)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] == sid, r
    assert answered(r) == {}, r
    r = fetch(c, 12, sid, 2, [])
    assert r["SessionId"] == sid and answered(r) == {}, r

    # An append to sa/1: only sa/1 is answered, with the new records.
    produce(p, "sa", 1, [b"b2", b"b3"])
    r = fetch(c, 12, sid, 3, [])
    assert answered(r) == {("sa", 1): (0, 4, 2)}, r
    r = fetch(c, 12, sid, 4, [("sa", [(1, 4)])])
    assert answered(r) == {}, r

    # Long poll on the session: woken by an append to sb/0, well before max_wait_ms.
    timer = threading.Timer(0.3, lambda: produce(Client(b), "sb", 0, [b"c1"]))
    t0 = time.monotonic()
    timer.start()
    r = fetch(c, 12, sid, 5, [], max_wait=5000)
    took = time.monotonic() - t0
    timer.join()
    assert answered(r) == {("sb", 0): (0, 2, 1)}, r
    assert 0.2 < took < 4.0, took
    # Nothing new: answered empty at max_wait_ms (the parked fetch keeps its session epoch).
    t0 = time.monotonic()
    r = fetch(c, 12, sid, 6, [("sb", [(0, 2)])], max_wait=400)
    took = time.monotonic() - t0
    assert r["ErrorCode"] == 0 and r["SessionId"] == sid and answered(r) == {}, r
    assert 0.3 < took < 3.0, took

    # Errors: wrong epoch, unknown id, v13 on a v12 session; none changes the session.
    expect_top_error(fetch(c, 12, sid, 99, []), ERR_INVALID_SESSION_EPOCH)
    expect_top_error(fetch(c, 12, sid, 6, []), ERR_INVALID_SESSION_EPOCH)  # already used
    other = sid + 1 if sid < 0x7FFFFFF0 else sid - 1
    expect_top_error(fetch(c, 12, other, 1, []), ERR_SESSION_ID_NOT_FOUND)
    expect_top_error(fetch(c, 13, sid, 7, []), ERR_SESSION_TOPIC_ID_ERROR)
    r = fetch(c, 12, sid, 7, [])
    assert r["ErrorCode"] == 0 and r["SessionId"] == sid and answered(r) == {}, r

    # Forget sa/1: appends to it are no longer answered, sa/0's are.
    r = fetch(c, 12, sid, 8, [], forgotten=[("sa", [1])])
    assert answered(r) == {}, r
    produce(p, "sa", 1, [b"b4"])
    produce(p, "sa", 0, [b"a3"])
    r = fetch(c, 12, sid, 9, [])
    assert answered(r) == {("sa", 0): (0, 4, 1)}, r
    # Re-adding it (an incremental request naming it) answers it again.
    r = fetch(c, 12, sid, 10, [("sa", [(0, 4), (1, 4)])])
    assert answered(r) == {("sa", 1): (0, 5, 1)}, r

    # A full fetch naming the session replaces it with a new one.
    r = fetch(c, 12, sid, 0, [("sa", [(0, 4)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] > 0 and r["SessionId"] != sid, r
    assert answered(r) == {("sa", 0): (0, 4, 0)}, r
    expect_top_error(fetch(c, 12, sid, 11, []), ERR_SESSION_ID_NOT_FOUND)
    sid = r["SessionId"]
    # Forgetting every partition closes the session: answered without one.
    r = fetch(c, 12, sid, 1, [], forgotten=[("sa", [0])])
    assert r["ErrorCode"] == 0 and r["SessionId"] == 0 and answered(r) == {}, r
    expect_top_error(fetch(c, 12, sid, 2, []), ERR_SESSION_ID_NOT_FOUND)

    # Epoch -1 closes a session; the request itself is answered sessionless.
    r = fetch(c, 12, 0, 0, [("sb", [(0, 0)])])
    sid = r["SessionId"]
    assert sid > 0, r
    r = fetch(c, 12, sid, -1, [("sb", [(0, 1)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] == 0, r
    assert answered(r) == {("sb", 0): (0, 2, 1)}, r
    expect_top_error(fetch(c, 12, sid, 1, []), ERR_SESSION_ID_NOT_FOUND)

    # Sessionless fetches: every partition, session id 0, at any version.
    for ver in (4, 7, 11, 12):
        r = fetch(c, ver, 0, -1, [("sa", [(0, 0)]), ("sb", [(0, 2)])])
        assert r.get("SessionId", 0) == 0, r
        assert answered(r) == {("sa", 0): (0, 4, 4), ("sb", 0): (0, 2, 0)}, (ver, r)

    # v13: topics by id.
    ids = topic_ids(c)
    sa, sb = ids["sa"], ids["sb"]
    unknown = b"\x42" * 16
    r = fetch(c, 13, 0, 0, [(sa, [(0, 0), (1, 5)]), (sb, [(0, 2)]), (unknown, [(0, 0)])])
    sid = r["SessionId"]
    assert r["ErrorCode"] == 0 and sid > 0, r
    assert answered(r, 13) == {(sa, 0): (0, 4, 4), (sa, 1): (0, 5, 0), (sb, 0): (0, 2, 0),
                               (unknown, 0): (ERR_UNKNOWN_TOPIC_ID, -1, 0)}, r
    # The unknown topic keeps answering its error; the others only when they change.
    r = fetch(c, 13, sid, 1, [(sa, [(0, 4)])])
    assert answered(r, 13) == {(unknown, 0): (ERR_UNKNOWN_TOPIC_ID, -1, 0)}, r
    r = fetch(c, 13, sid, 2, [], forgotten=[(unknown, [0])])
    assert answered(r, 13) == {}, r
    produce(p, "sb", 0, [b"c2", b"c3"])
    r = fetch(c, 13, sid, 3, [])
    assert answered(r, 13) == {(sb, 0): (0, 4, 2)}, r
    expect_top_error(fetch(c, 12, sid, 4, []), ERR_SESSION_TOPIC_ID_ERROR)
    r = fetch(c, 13, sid, 4, [], forgotten=[(sb, [0])])
    assert answered(r, 13) == {}, r
    produce(p, "sb", 0, [b"c4"])
    r = fetch(c, 13, sid, 5, [])
    assert r["SessionId"] == sid and answered(r, 13) == {}, r
    fetch(c, 13, sid, -1, [])  # close it

    # Fairness: a partition that returned records moves behind the others of the session.
    def order(resp):
        return [(t["Topic"], p["PartitionIndex"]) for t in resp["Responses"]
                for p in t["Partitions"]]
    ends = {k: v[1] for k, v in answered(fetch(c, 12, 0, -1, [
        ("sa", [(0, 0), (1, 0)]), ("sb", [(0, 0)])])).items()}
    r = fetch(c, 12, 0, 0, [("sa", [(0, ends[("sa", 0)]), (1, ends[("sa", 1)])]),
                            ("sb", [(0, ends[("sb", 0)])])])
    sid = r["SessionId"]
    assert sid > 0 and order(r) == [("sa", 0), ("sa", 1), ("sb", 0)], r
    produce(p, "sa", 0, [b"f0"])
    r = fetch(c, 12, sid, 1, [])
    assert order(r) == [("sa", 0)], r
    produce(p, "sa", 0, [b"f1"])
    produce(p, "sa", 1, [b"f2"])
    produce(p, "sb", 0, [b"f3"])
    r = fetch(c, 12, sid, 2, [("sa", [(0, ends[("sa", 0)] + 1)])])
    assert order(r) == [("sa", 1), ("sb", 0), ("sa", 0)], order(r)
    assert [t["Topic"] for t in r["Responses"]] == ["sa", "sb", "sa"], r
    fetch(c, 12, sid, -1, [])  # close it

    # The cache holds 4 sessions: with 4 young ones of one partition, a fifth gets none.
    held = []
    for i in range(4):
        r = fetch(c, 12, 0, 0, [("sa", [(0, 0)])])
        assert r["SessionId"] > 0, (i, r)
        held.append(r["SessionId"])
    assert len(set(held)) == 4, held
    r = fetch(c, 12, 0, 0, [("sa", [(0, 0)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] == 0, r
    assert answered(r) == {("sa", 0): (0, 6, 6)}, r  # a0-a3, f0, f1
    for s in held:  # all still usable
        r = fetch(c, 12, s, 1, [])
        assert r["ErrorCode"] == 0 and r["SessionId"] == s, r
    c.close()
    p.close()


DISK_CONFIG = """\
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
auto.create.topics.enable=true
storage.cache.chunk.bytes=65536
storage.cache.chunks=4
dataplane.log.level=debug
max.incremental.fetch.session.cache.slots=0
log.dir=%s
"""


def disk_fetch_checks(b):
    """16 fetches of old data pipelined on one connection: more than the 8 disk-read
    contexts, so some are deferred (parked, run when a context frees) instead of
    stalling the reactor; all are answered in order with the right records."""
    c = Client(b)
    create_topics(c, ["disk"])
    n = 0
    for i in range(40):
        produce(c, "disk", 0, [b"%05d" % (n + k) + b"x" * 2000 for k in range(10)])
        n += 10
    reqs = []
    for i in range(16):
        off = (i * 23) % 300
        c.corr += 1
        body = {"ReplicaId": -1, "MaxWaitMs": 0, "MinBytes": 1, "MaxBytes": 1 << 20,
                "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
                "Topics": [{"Topic": "disk", "Partitions": [
                    {"Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": off,
                     "LastFetchedEpoch": -1, "LogStartOffset": -1,
                     "PartitionMaxBytes": 16384}]}],
                "ForgottenTopicsData": [], "RackId": ""}
        reqs.append((c.corr, off, kwire.encode_request(FETCH, 12, c.corr, "disk", body)))
    c.s.sendall(b"".join(r[2] for r in reqs))
    for corr, off, _ in reqs:
        size = struct.unpack(">i", c.recv_exact(4))[0]
        r = kwire.Reader(c.recv_exact(size))
        assert r.int32() == corr
        kwire.skip_tagged(r)
        resp = kwire.read_struct(r, kwire.API[FETCH]["resp"], 12, True)
        p = resp["Responses"][0]["Partitions"][0]
        assert p["ErrorCode"] == 0 and p["HighWatermark"] == n, p
        batches = kwire.split_batches(p["Records"])
        first = kwire.batch_header(batches[0])
        assert first["base_offset"] <= off <= first["base_offset"] + first[
            "last_offset_delta"], (off, first)
        recs = kwire.parse_records(batches[0][61:], first["records_count"])
        assert recs[0]["value"][:5] == b"%05d" % first["base_offset"], recs[0]["value"][:8]
    # No session slots: full fetches get no session, incremental ones no session found.
    r = fetch(c, 12, 0, 0, [("disk", [(0, n)])])
    assert r["ErrorCode"] == 0 and r["SessionId"] == 0, r
    expect_top_error(fetch(c, 12, 12345, 1, []), ERR_SESSION_ID_NOT_FOUND)
    c.close()
    assert "fetch deferred: all 8 disk-read contexts busy" in b.text(), \
        "no fetch was deferred (the test did not reach the ninth disk fetch)"


def main():
    with slp_broker.TestRun("slp-fetchsess-") as run:
        tmp = run.tmp
        b = run.broker(SLIPSTREAM, CONFIG % os.path.join(tmp, "logs"))
        session_checks(b)
        assert b.stop() == 0
        b = run.broker(SLIPSTREAM, DISK_CONFIG % os.path.join(tmp, "logs2"))
        disk_fetch_checks(b)
        assert b.stop() == 0
        print("ok")
        return 0


if __name__ == "__main__":
    sys.exit(main())
