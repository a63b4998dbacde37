# SPDX-License-Identifier: Apache-2.0
"""The broker's admin APIs with confluent_kafka's AdminClient and raw frames.

Starts `slipstream` on 127.0.0.1 (port picked by the kernel, own log
directory, auto.create.topics.enable=false so no client re-creates a deleted
topic) and checks:
- DeleteTopics (AdminClient, librdkafka's version): a topic with data is
  deleted, its partition directories are gone, an unknown topic answers
  UNKNOWN_TOPIC_OR_PARTITION; re-created under the same name it starts
  empty (the first produced message gets offset 0);
- DeleteTopics v6 by topic id and by name (raw frames): UNKNOWN_TOPIC_ID for
  an unknown id, the name echoed for a deletion by id;
- CreatePartitions (AdminClient): validate_only changes nothing, an
  increase shows in Metadata, the same count or fewer is
  INVALID_PARTITIONS, an unknown topic UNKNOWN_TOPIC_OR_PARTITION; the new
  partition takes messages;
- DescribeConfigs (AdminClient): a topic's storage configs with effective
  values, DYNAMIC_TOPIC_CONFIG for the ones set, DEFAULT_CONFIG otherwise;
  the broker's keys read-only (STATIC_BROKER_CONFIG for keys set in the
  file); AlterConfigs (AdminClient) replaces the set, validate_only changes
  nothing, unknown keys and values the log refuses are INVALID_CONFIG, the
  broker resource is refused; a new segment.bytes takes effect on the open
  log (more segment files after producing); IncrementalAlterConfigs v0 (raw)
  SET and DELETE, APPEND and SUBTRACT on cleanup.policy (from Kafka's default
  delete when the topic does not set it), INVALID_CONFIG on other keys or for
  an empty result;
- raw frames: OffsetForLeaderEpoch v2 (epoch 0 ends at the log end offset;
  UNKNOWN_LEADER_EPOCH for a newer current epoch; unknown partition),
  DeleteRecords v0 (log start offset raised, then kcat reads from there;
  past the high watermark OFFSET_OUT_OF_RANGE), DescribeLogDirs v1 (the
  absolute log directory, partition sizes), DescribeCluster v1 (cluster id,
  this broker's port; controllers UNSUPPORTED_ENDPOINT_TYPE);
- a restart keeps the deletions, the partition counts and the configs.

Usage: test_broker_admin.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka.
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
try:
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
auto.create.topics.enable=false
dataplane.response.buffers=32
dataplane.response.buffer.bytes=1048576
storage.cache.chunks=24
log.dir=%s
"""


def logs_dir(tmp):
    return os.path.join(tmp, "logs")


def Broker(run):
    return run.broker(SLIPSTREAM, CONFIG % logs_dir(run.tmp))


def expect_error(futures, name, want):
    try:
        futures[name].result(10)
    except Exception as e:  # KafkaException carrying a KafkaError
        err = e.args[0]
        assert err.code() == want, (name, err)
        return
    raise AssertionError("%s: succeeded, expected error %d" % (name, want))


def produce(b, topic, values, partition=None):
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "linger.ms": 1})
    reports = []

    def dr(err, msg):
        assert err is None, err
        reports.append((msg.partition(), msg.offset()))

    for v in values:
        if partition is None:
            p.produce(topic, value=v, on_delivery=dr)
        else:
            p.produce(topic, value=v, partition=partition, on_delivery=dr)
    assert p.flush(15) == 0
    assert len(reports) == len(values), reports
    return reports


def topic_ids(tmp):
    """name -> topic id bytes, from the broker's topic table file."""
    ids = {}
    with open(os.path.join(logs_dir(tmp), "__slipstream_topics")) as f:
        for line in f:
            parts = line.split()
            ids[parts[0]] = bytes.fromhex(parts[1])
    return ids


def delete_checks(b, tmp):
    a = AdminClient({"bootstrap.servers": b.addr})
    for t in ("del-a", "del-b", "del-c", "del-d"):
        a.create_topics([NewTopic(t, 2, 1)], request_timeout=10)[t].result(10)
    offs = produce(b, "del-a", [b"m%d" % i for i in range(5)], partition=0)
    assert [o for _, o in offs] == [0, 1, 2, 3, 4], offs
    assert os.path.isdir(os.path.join(logs_dir(tmp), "del-a-0"))

    fs = a.delete_topics(["del-a", "no-such-topic"], request_timeout=10)
    fs["del-a"].result(10)
    expect_error(fs, "no-such-topic", KafkaError.UNKNOWN_TOPIC_OR_PART)
    md = a.list_topics(timeout=10)
    assert "del-a" not in md.topics and "del-b" in md.topics, list(md.topics)
    assert not os.path.exists(os.path.join(logs_dir(tmp), "del-a-0"))
    assert not os.path.exists(os.path.join(logs_dir(tmp), "del-a-1"))
    assert "del-a" not in topic_ids(tmp)
    # Renamed aside at once (del-a-0.<unique>-delete), the files unlinked off the
    # reactor a step per storage poll: soon gone.
    deadline = time.monotonic() + 10
    while True:
        aside = [n for n in os.listdir(logs_dir(tmp)) if n.endswith("-delete")]
        if not aside or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert aside == [], aside

    # Re-created: empty (offsets restart at 0).
    a.create_topics([NewTopic("del-a", 1, 1)], request_timeout=10)["del-a"].result(10)
    offs = produce(b, "del-a", [b"again"], partition=0)
    assert offs == [(0, 0)], offs

    # DeleteTopics v6 (raw): by id, by name, an unknown id.
    ids = topic_ids(tmp)
    unknown = bytes(range(16))
    s = b.connect()
    body = bytes([4])  # compact array of 3 topics
    body += bytes([0]) + ids["del-b"] + bytes([0])             # null name, id
    body += bytes([len("del-c") + 1]) + b"del-c" + bytes(16) + bytes([0])
    body += bytes([0]) + unknown + bytes([0])
    body += struct.pack(">i", 10000) + bytes([0])
    hdr = struct.pack(">hhih", 20, 6, 91, 2) + b"it" + bytes([0])
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    s.close()
    assert struct.unpack(">i", r[:4])[0] == 91 and r[4] == 0  # header v1: no tags
    pos = 5 + 4  # throttle_time_ms
    assert r[pos] == 4, r
    pos += 1
    got = []
    for _ in range(3):
        n = r[pos] - 1
        pos += 1
        name = r[pos:pos + n].decode() if n >= 0 else None
        pos += max(n, 0)
        tid = r[pos:pos + 16]
        pos += 16
        err = struct.unpack(">h", r[pos:pos + 2])[0]
        pos += 2
        m = r[pos] - 1
        pos += 1 + max(m, 0)
        assert r[pos] == 0
        pos += 1
        got.append((name, tid, err))
    assert got[0] == ("del-b", ids["del-b"], 0), got
    assert got[1] == ("del-c", ids["del-c"], 0), got
    assert got[2] == (None, unknown, 100), got  # UNKNOWN_TOPIC_ID
    md = a.list_topics(timeout=10)
    assert "del-b" not in md.topics and "del-c" not in md.topics and "del-d" in md.topics


def partitions_checks(b, tmp):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic("grow", 1, 1)], request_timeout=10)["grow"].result(10)
    fs = a.create_partitions([NewPartitions("grow", 3)], validate_only=True,
                             request_timeout=10)
    fs["grow"].result(10)
    assert len(a.list_topics(timeout=10).topics["grow"].partitions) == 1
    assert not os.path.exists(os.path.join(logs_dir(tmp), "grow-1"))
    fs = a.create_partitions([NewPartitions("grow", 3)], request_timeout=10)
    fs["grow"].result(10)
    deadline = time.monotonic() + 10
    while len(a.list_topics(timeout=10).topics["grow"].partitions) != 3:
        assert time.monotonic() < deadline, "partition count not updated"
        time.sleep(0.2)
    assert os.path.isdir(os.path.join(logs_dir(tmp), "grow-2"))
    for count in (3, 2):
        fs = a.create_partitions([NewPartitions("grow", count)], request_timeout=10)
        expect_error(fs, "grow", KafkaError.INVALID_PARTITIONS)
    fs = a.create_partitions([NewPartitions("no-such-topic", 4)], request_timeout=10)
    expect_error(fs, "no-such-topic", KafkaError.UNKNOWN_TOPIC_OR_PART)
    offs = produce(b, "grow", [b"p2-0", b"p2-1"], partition=2)
    assert offs == [(2, 0), (2, 1)], offs


def describe(a, res):
    fs = a.describe_configs([res], request_timeout=10)
    return fs[res].result(10)


ialter = slp_broker.incremental_alter_configs


def configs_checks(b, tmp):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic("cfg", 1, 1, config={"retention.ms": "3600000"})],
                    request_timeout=10)["cfg"].result(10)
    topic = ConfigResource(ConfigResource.Type.TOPIC, "cfg")
    got = describe(a, topic)
    for name in ("segment.bytes", "segment.ms", "retention.ms", "retention.bytes",
                 "cleanup.policy", "flush.messages", "flush.ms", "delete.retention.ms"):
        assert name in got, sorted(got)
        assert not got[name].is_read_only
    assert got["retention.ms"].value == "3600000"
    assert got["retention.ms"].source == 1, got["retention.ms"]  # DYNAMIC_TOPIC_CONFIG
    assert got["segment.bytes"].source == 5  # DEFAULT_CONFIG
    assert got["segment.bytes"].value.isdigit()
    assert got["cleanup.policy"].value == "delete"

    broker = ConfigResource(ConfigResource.Type.BROKER,
                            str(list(a.list_topics(timeout=10).brokers)[0]))
    got = describe(a, broker)
    assert got["num.partitions"].value == "1" and got["num.partitions"].is_read_only
    assert got["num.partitions"].source == 4  # STATIC_BROKER_CONFIG
    assert got["auto.create.topics.enable"].value == "false"
    assert any(e.source == 5 for e in got.values())  # keys left at their defaults

    # AlterConfigs replaces the set; validate_only changes nothing.
    topic = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config={"retention.ms": "5"})
    a.alter_configs([topic], validate_only=True, request_timeout=10)[topic].result(10)
    assert describe(a, topic)["retention.ms"].value == "3600000"
    topic = ConfigResource(ConfigResource.Type.TOPIC, "cfg",
                           set_config={"segment.bytes": "4096"})
    a.alter_configs([topic], request_timeout=10)[topic].result(10)
    got = describe(a, topic)
    assert got["segment.bytes"].value == "4096" and got["segment.bytes"].source == 1
    assert got["retention.ms"].source == 5, got["retention.ms"]
    for bad in ({"no.such.config": "1"}, {"segment.bytes": "1024"},
                {"retention.ms": "soon"}):
        topic = ConfigResource(ConfigResource.Type.TOPIC, "cfg", set_config=bad)
        expect_error(a.alter_configs([topic], request_timeout=10), topic,
                     KafkaError.INVALID_CONFIG)
    assert describe(a, topic)["segment.bytes"].value == "4096"
    broker = ConfigResource(ConfigResource.Type.BROKER, broker.name,
                            set_config={"num.partitions": "3"})
    expect_error(a.alter_configs([broker], request_timeout=10), broker,
                 KafkaError.INVALID_REQUEST)
    nosuch = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic",
                            set_config={"retention.ms": "5"})
    expect_error(a.alter_configs([nosuch], request_timeout=10), nosuch,
                 KafkaError.UNKNOWN_TOPIC_OR_PART)

    # The open log took 4 KiB segments: producing ~20 KB (one batch each) rolls several.
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "linger.ms": 0})
    for _ in range(20):
        p.produce("cfg", value=bytes(1000), partition=0)
        assert p.flush(15) == 0
    segs = [f for f in os.listdir(os.path.join(logs_dir(tmp), "cfg-0")) if f.endswith(".log")]
    assert len(segs) >= 3, segs

    # IncrementalAlterConfigs v0: SET and DELETE.
    assert ialter(b, "cfg", [("retention.ms", 0, "7200000"), ("segment.bytes", 1, None)]) == 0
    got = describe(a, topic)
    assert got["retention.ms"].value == "7200000" and got["retention.ms"].source == 1
    assert got["segment.bytes"].source == 5
    assert ialter(b, "cfg", [("retention.ms", 0, "1")], validate_only=True) == 0
    assert describe(a, topic)["retention.ms"].value == "7200000"
    # APPEND / SUBTRACT on the list key (from the default "delete"); not on others.
    assert ialter(b, "cfg", [("cleanup.policy", 2, "compact")]) == 0
    assert describe(a, topic)["cleanup.policy"].value == "compact,delete"
    assert ialter(b, "cfg", [("cleanup.policy", 3, "delete")]) == 0
    assert describe(a, topic)["cleanup.policy"].value == "compact"
    assert ialter(b, "cfg", [("cleanup.policy", 3, "compact")]) == 40
    assert ialter(b, "cfg", [("retention.ms", 2, "5")]) == 40
    assert ialter(b, "cfg", [("cleanup.policy", 1, None)]) == 0
    assert ialter(b, "cfg", [("bogus.key", 0, "1")]) == 40  # INVALID_CONFIG
    assert ialter(b, "nope", [("retention.ms", 0, "1")]) == 3

    # DescribeConfigs v4 (flexible), one key asked for.
    body = bytes([2, 2, 4]) + b"cfg" + bytes([2, 13]) + b"retention.ms" + bytes([0])
    body += bytes([0, 0, 0])
    r = raw(b, 32, 4, body, flexible=True)
    assert r[4] == 2 and struct.unpack(">h", r[5:7])[0] == 0 and r[7] == 0, r
    assert r[8] == 2 and r[9:13] == bytes([4]) + b"cfg" and r[13] == 2, r  # one config
    assert r[14:27] == bytes([13]) + b"retention.ms" and r[27:35] == bytes([8]) + b"7200000"
    read_only, source, sensitive, synonyms, ctype, doc = struct.unpack(">?b?bbb", r[35:41])
    assert (read_only, source, sensitive, synonyms, ctype, doc) == (False, 1, False, 1, 5, 0)


def kstr(x):
    return struct.pack(">h", len(x)) + x.encode()


def raw(b, key, ver, body, flexible=False):
    """One request; the response body after the correlation id (and tags when flexible)."""
    s = b.connect()
    hdr = struct.pack(">hhi", key, ver, 1234) + kstr("it") + (bytes([0]) if flexible else b"")
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    s.close()
    assert struct.unpack(">i", r[:4])[0] == 1234
    if flexible:
        assert r[4] == 0
        return r[5:]
    return r[4:]


def records_checks(b, tmp):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic("recs", 1, 1)], request_timeout=10)["recs"].result(10)
    produce(b, "recs", [b"r%d" % i for i in range(10)], partition=0)

    # OffsetForLeaderEpoch v2: [topic [partition current_epoch epoch]].
    def olep(partition, current, epoch):
        body = struct.pack(">i", 1) + kstr("recs") + struct.pack(">i", 1)
        body += struct.pack(">iii", partition, current, epoch)
        r = raw(b, 23, 2, body)
        throttle, nt = struct.unpack(">ii", r[:8])
        n = struct.unpack(">h", r[8:10])[0]
        assert nt == 1 and r[10:10 + n] == b"recs"
        pos = 10 + n
        assert struct.unpack(">i", r[pos:pos + 4])[0] == 1
        return struct.unpack(">hiiq", r[pos + 4:pos + 22])
    assert olep(0, 0, 0) == (0, 0, 0, 10), olep(0, 0, 0)
    assert olep(0, -1, 3) == (0, 0, 0, 10)
    assert olep(0, 1, 0)[0] == 75  # UNKNOWN_LEADER_EPOCH
    assert olep(7, -1, 0)[0] == 3

    # DeleteRecords v0: [topic [partition offset]] timeout.
    def delrec(topic, partition, offset):
        body = struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", 1)
        body += struct.pack(">iq", partition, offset) + struct.pack(">i", 5000)
        r = raw(b, 21, 0, body)
        n = struct.unpack(">h", r[8:10])[0]
        assert r[10:10 + n] == topic.encode()
        pos = 10 + n + 4
        part, low, err = struct.unpack(">iqh", r[pos:pos + 14])
        assert part == partition
        return low, err
    assert delrec("recs", 0, 4) == (4, 0)
    assert delrec("recs", 0, 2) == (4, 0)  # below the start: nothing to do
    assert delrec("recs", 0, 11)[1] == 1   # past the high watermark
    assert delrec("nope", 0, 1)[1] == 3
    kcat = shutil.which("kcat")
    if kcat is not None:
        out = subprocess.run([kcat, "-b", b.addr, "-C", "-t", "recs", "-o", "beginning",
                              "-e", "-f", "%o %s\n"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[0] == "4 r4", out.stdout
        assert len(out.stdout.split()) == 12, out.stdout

    # DescribeLogDirs v1: null topics = all.
    r = raw(b, 35, 1, struct.pack(">i", -1))
    assert struct.unpack(">i", r[4:8])[0] == 1
    err, n = struct.unpack(">hh", r[8:12])
    assert err == 0
    assert r[12:12 + n].decode() == os.path.realpath(logs_dir(tmp)), r[12:12 + n]
    pos = 12 + n
    sizes = {}
    for _ in range(struct.unpack(">i", r[pos:pos + 4])[0]):
        pos += 4
        n = struct.unpack(">h", r[pos:pos + 2])[0]
        name = r[pos + 2:pos + 2 + n].decode()
        pos += 2 + n
        np = struct.unpack(">i", r[pos:pos + 4])[0]
        for _ in range(np):
            part, size, lag, fut = struct.unpack(">iqq?", r[pos + 4:pos + 25])
            sizes[(name, part)] = size
            assert lag == 0 and not fut
            pos += 21
    assert sizes[("recs", 0)] > 0, sizes
    assert ("grow", 2) in sizes and ("cfg", 0) in sizes, sizes

    # Flexible versions: OffsetForLeaderEpoch v4, DeleteRecords v2, DescribeLogDirs v4.
    def cstr(x):
        return bytes([len(x) + 1]) + x.encode()
    body = struct.pack(">i", -1) + bytes([2]) + cstr("recs") + bytes([2])
    body += struct.pack(">iii", 0, 0, 0) + bytes([0, 0, 0])
    r = raw(b, 23, 4, body, flexible=True)
    assert r[4] == 2 and r[5:10] == cstr("recs") and r[10] == 2, r
    assert struct.unpack(">hiiq", r[11:29]) == (0, 0, 0, 10), r

    body = bytes([2]) + cstr("recs") + bytes([2]) + struct.pack(">iq", 0, -1) + bytes([0, 0])
    body += struct.pack(">i", 5000) + bytes([0])
    r = raw(b, 21, 2, body, flexible=True)
    assert r[4] == 2 and r[5:10] == cstr("recs") and r[10] == 2, r
    assert struct.unpack(">iqh", r[11:25]) == (0, 10, 0), r  # -1: up to the high watermark

    body = bytes([2]) + cstr("recs") + bytes([2]) + struct.pack(">i", 0) + bytes([0, 0])
    r = raw(b, 35, 4, body, flexible=True)
    assert struct.unpack(">h", r[4:6])[0] == 0 and r[6] == 2, r
    assert struct.unpack(">h", r[7:9])[0] == 0
    n = r[9] - 1
    pos = 10 + n
    assert r[pos] == 2 and r[pos + 1:pos + 6] == cstr("recs") and r[pos + 6] == 2, r
    part, size, lag, fut = struct.unpack(">iqq?", r[pos + 7:pos + 28])
    assert part == 0 and size > 0
    total, usable = struct.unpack(">qq", r[pos + 30:pos + 46])
    assert total > 0 and 0 <= usable <= total, (total, usable)

    # DescribeCluster v1 (flexible): include_authorized_operations, endpoint_type.
    r = raw(b, 60, 1, bytes([0, 1, 0]), flexible=True)
    throttle, err = struct.unpack(">ih", r[:6])
    assert err == 0 and r[6] == 0 and r[7] == 1  # null message, brokers
    n = r[8] - 1
    assert n == 22, r
    pos = 9 + n
    controller, nb = struct.unpack(">ib", r[pos:pos + 5])
    assert nb == 2, r  # compact array of 1
    node = struct.unpack(">i", r[pos + 5:pos + 9])[0]
    assert controller == node
    n = r[pos + 9] - 1
    assert r[pos + 10:pos + 10 + n] == b.host.encode()
    assert struct.unpack(">i", r[pos + 10 + n:pos + 14 + n])[0] == b.port
    r = raw(b, 60, 1, bytes([0, 2, 0]), flexible=True)
    assert struct.unpack(">h", r[4:6])[0] == 115  # UNSUPPORTED_ENDPOINT_TYPE


def api_versions_checks(b):
    """ApiVersions v0 advertises every admin API with the versions the schemas define."""
    r = raw(b, 18, 0, b"")
    err, n = struct.unpack(">hi", r[:6])
    assert err == 0
    got = {}
    for i in range(n):
        key, lo, hi = struct.unpack(">hhh", r[6 + 6 * i:12 + 6 * i])
        got[key] = (lo, hi)
    want = {20: (0, 6), 37: (0, 3), 32: (0, 4), 33: (0, 2), 44: (0, 1), 60: (0, 1),
            21: (0, 2), 35: (0, 4), 23: (0, 4)}
    for key, versions in want.items():
        assert got.get(key) == versions, (key, got.get(key))


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("slp-admin-") as run:
        tmp = run.tmp
        b = Broker(run)
        api_versions_checks(b)
        delete_checks(b, tmp)
        partitions_checks(b, tmp)
        configs_checks(b, tmp)
        records_checks(b, tmp)
        assert b.stop() == 0
        b = Broker(run)
        a = AdminClient({"bootstrap.servers": b.addr})
        md = a.list_topics(timeout=10)
        assert sorted(md.topics) == ["cfg", "del-a", "del-d", "grow", "recs"], sorted(md.topics)
        assert len(md.topics["grow"].partitions) == 3
        got = describe(a, ConfigResource(ConfigResource.Type.TOPIC, "cfg"))
        assert got["retention.ms"].value == "7200000" and got["retention.ms"].source == 1
        assert b.stop() == 0
        print("ok")
        return 0


if __name__ == "__main__":
    sys.exit(main())
