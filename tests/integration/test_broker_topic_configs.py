# SPDX-License-Identifier: Apache-2.0
"""The message.* topic configs and the broker keys behind them, as Kafka applies them.

Runs the broker twice: alone (topics in its own table, local mode) and with
the control process (topics in the metadata log, as scripts/run runs it), and
in each checks with confluent_kafka (librdkafka), kafka-python (its own
protocol code) and kcat:
- message.timestamp.type=LogAppendTime (CreateTopics): records produced with
  an old CreateTime come back stamped with the broker's clock, timestamp type
  LogAppendTime (librdkafka and kafka-python), the same time kcat prints;
  ListOffsets by time finds them by the stamped time; the
  Produce response's LogAppendTimeMs reaches librdkafka's delivery report;
- max.message.bytes: a batch over it is MESSAGE_TOO_LARGE, one under it is
  stored; the broker's message.max.bytes still holds for other topics;
- message.timestamp.before.max.ms / after.max.ms: a record an hour old or an
  hour ahead is INVALID_TIMESTAMP, one of now is stored, a batch whose first
  record is of now and second an hour old is refused (every record is
  checked, not the batch header's first and largest); an old one is taken
  once the lower limit is gone (AlterConfigs); the deprecated
  difference.max.ms applies where those two are unset;
- compression.type=zstd (topic) and lz4 (broker): batches produced
  uncompressed and gzip-compressed are stored with that codec (the segment
  file's batch attributes), and read back intact by librdkafka, kafka-python
  and kcat; producer keeps the producer's codec; a partition of two gzip batches
  (kafka-python's batch builder, a raw Produce v3) whose second grows past
  max.message.bytes uncompressed is refused whole (MESSAGE_TOO_LARGE);
- min.insync.replicas=2 is taken and described (one replica: acks=all writes
  go on, Kafka's effective value being min(min.insync.replicas, replicas));
- DescribeConfigs (v4, raw frame) lists every new key with its Kafka type and
  source, and the broker's keys with their own types (not all STRING);
- the internal topics Kafka Streams creates, with its configs, are created;
- manual replica assignments naming this broker alone create and add
  partitions; another broker, a broker twice, uneven replica counts or a
  count that does not match are INVALID_REPLICA_ASSIGNMENT;
- unknown values are INVALID_CONFIG; IncrementalAlterConfigs APPEND and
  SUBTRACT on cleanup.policy (raw v0), INVALID_CONFIG on other keys;
- broker keys: log.message.timestamp.type=LogAppendTime stamps an
  auto-created topic's records; delete.topic.enable=false answers DeleteTopics
  with TOPIC_DELETION_DISABLED (v3+; raw frame) and INVALID_REQUEST before
  (librdkafka's version), the topic kept;
- the configs survive a restart.

Usage: test_broker_topic_configs.py PATH_TO_SLIPSTREAM [PATH_TO_CONTROL]
(run with /usr/bin/python3). Exit 77 (skipped) without confluent_kafka or
kafka-python.
"""
import shutil
import struct
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
CONTROL = sys.argv[2] if len(sys.argv) > 2 else None
try:
    from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer,
                                 KafkaError, Producer, TopicPartition)
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    import kafka  # kafka-python
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
dataplane.response.buffers=32
storage.cache.chunks=24
log.dir=%s
%s
"""

HOUR_MS = 3600 * 1000


def now_ms():
    return int(time.time() * 1000)


_admins = {}


def admin(b):
    """One AdminClient per broker address, kept: futures die with their client."""
    if b.addr not in _admins:
        _admins[b.addr] = AdminClient({"bootstrap.servers": b.addr})
    return _admins[b.addr]


def create(b, topic, configs):
    fs = admin(b).create_topics([NewTopic(topic, 1, 1, config=configs)], request_timeout=10)
    fs[topic].result(10)


def create_error(b, topic, configs):
    fs = admin(b).create_topics([NewTopic(topic, 1, 1, config=configs)], request_timeout=10)
    try:
        fs[topic].result(10)
    except Exception as e:
        return e.args[0].code()
    return None


def produce(b, topic, value, timestamp=0, acks="1", codec="none", partition=0):
    """One record; (error code or None, delivery report's (type, timestamp), offset)."""
    p = Producer({"bootstrap.servers": b.addr, "acks": acks, "linger.ms": 0,
                  "message.timeout.ms": 10000, "retries": 0, "compression.type": codec})
    out = []

    def dr(err, msg):
        out.append((err.code() if err is not None else None, msg.timestamp(), msg.offset()))

    p.produce(topic, value=value, timestamp=timestamp, partition=partition, on_delivery=dr)
    assert p.flush(15) == 0
    assert len(out) == 1, out
    return out[0]


def consume_confluent(b, topic, n):
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "tc-" + topic,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.value(), m.timestamp()))
    c.close()
    assert len(got) == n, got
    return got


def consume_kafka_python(b, topic, n):
    c = kafka.KafkaConsumer(bootstrap_servers=b.addr, enable_auto_commit=False,
                            consumer_timeout_ms=10000)
    tp = kafka.TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    for m in c:
        got.append((m.value, m.timestamp_type, m.timestamp))
        if len(got) == n:
            break
    c.close()
    assert len(got) == n, got
    return got


def kcat_timestamps(b, topic):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    out = subprocess.run([kcat, "-b", b.addr, "-C", "-t", topic, "-p", "0", "-o", "beginning",
                          "-e", "-q", "-f", "%T %s\n"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return [(int(line.split()[0]), line.split()[1]) for line in out.splitlines() if line]


def describe(b, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin(b).describe_configs([res], request_timeout=10)[res].result(10)


def kstr(x):
    return struct.pack(">h", len(x)) + x.encode()


def delete_topics_v4(b, topic):
    """DeleteTopics v4 (flexible) of @topic by raw frame: its error code."""
    s = b.connect()
    hdr = struct.pack(">hhi", 20, 4, 77) + kstr("it") + bytes([0])
    body = bytes([2, len(topic) + 1]) + topic.encode() + struct.pack(">i", 10000) + bytes([0])
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    s.close()
    assert struct.unpack(">i", r[:4])[0] == 77
    # tags, throttle, compact array (n+1), name, error code
    assert r[4] == 0 and r[9] == 2, r
    nlen = r[10] - 1
    assert r[11:11 + nlen] == topic.encode(), r
    return struct.unpack(">h", r[11 + nlen:13 + nlen])[0]


def log_append_time_checks(b):
    create(b, "lat", {"message.timestamp.type": "LogAppendTime"})
    old = 1000000  # 1970: kept as CreateTime it would be this
    before = now_ms()
    err, (ts_type, ts), off = produce(b, "lat", b"a", timestamp=old)
    after = now_ms()
    assert err is None and off == 0, (err, off)
    # librdkafka takes the Produce response's LogAppendTimeMs into the report.
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, \
        (ts_type, ts, before, after)
    produce(b, "lat", b"b", timestamp=old)
    got = consume_confluent(b, "lat", 2)
    for value, (t, stamp) in got:
        assert t == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= stamp <= now_ms() + 1000, got
    assert got[0][1][1] == ts, (got, ts)  # the reported time is the one stored
    kp = consume_kafka_python(b, "lat", 2)
    assert [(v, t) for v, t, _ in kp] == [(b"a", 1), (b"b", 1)], kp
    assert [s for _, _, s in kp] == [s for _, (_, s) in got], (kp, got)
    assert [t for t, _ in kcat_timestamps(b, "lat")] == [s for _, (_, s) in got]
    cfg = describe(b, "lat")["message.timestamp.type"]
    assert cfg.value == "LogAppendTime" and cfg.source == 1, cfg  # DYNAMIC_TOPIC_CONFIG
    # ListOffsets by time reads the stamped times: the first record at or after 1970's
    # 2,000,000 ms is offset 0 (by the producer's CreateTime of 1,000,000 there is none).
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "tc-times"})
    got = c.offsets_for_times([TopicPartition("lat", 0, 2000000)], timeout=10)
    c.close()
    assert got[0].offset == 0, got

    # A CreateTime topic keeps the producer's time and reports no append time.
    create(b, "ct", {})
    err, (ts_type, ts), _ = produce(b, "ct", b"c", timestamp=old)
    assert err is None and ts_type == TIMESTAMP_CREATE_TIME and ts == old, (err, ts_type, ts)
    assert consume_kafka_python(b, "ct", 1)[0][1:] == (0, old)


def max_message_checks(b):
    create(b, "small", {"max.message.bytes": "2000"})
    err, _, _ = produce(b, "small", b"x" * 3000)
    assert err == KafkaError.MSG_SIZE_TOO_LARGE, err
    err, _, off = produce(b, "small", b"y" * 500)
    assert err is None and off == 0, (err, off)
    # The broker's message.max.bytes (1 MiB) still holds elsewhere.
    create(b, "big", {})
    err, _, _ = produce(b, "big", b"z" * 3000)
    assert err is None, err
    cfg = describe(b, "small")["max.message.bytes"]
    assert cfg.value == "2000" and cfg.source == 1, cfg
    cfg = describe(b, "big")["max.message.bytes"]
    assert cfg.value == "1048588" and cfg.source == 5, cfg  # DEFAULT_CONFIG


def timestamp_window_checks(b):
    create(b, "win", {"message.timestamp.before.max.ms": "60000",
                      "message.timestamp.after.max.ms": "60000"})
    err, _, _ = produce(b, "win", b"old", timestamp=now_ms() - HOUR_MS)
    assert err == KafkaError.INVALID_TIMESTAMP, err
    err, _, _ = produce(b, "win", b"ahead", timestamp=now_ms() + HOUR_MS)
    assert err == KafkaError.INVALID_TIMESTAMP, err
    err, _, off = produce(b, "win", b"now", timestamp=now_ms())
    assert err is None and off == 0, (err, off)
    # Every record is checked, not the batch header's first and largest timestamps: a
    # batch of (now, an hour ago) is refused whole (librdkafka batches the two).
    for codec in ("none", "zstd"):  # a compressed batch is decompressed for the check
        p = Producer({"bootstrap.servers": b.addr, "linger.ms": 200, "retries": 0,
                      "message.timeout.ms": 10000, "compression.type": codec})
        errs = []

        def dr(err, msg):
            errs.append(err.code() if err else None)

        p.produce("win", value=b"warm-up", partition=0, on_delivery=dr)  # connected first
        assert p.flush(15) == 0 and errs == [None], (codec, errs)
        for ts in (now_ms(), now_ms() - HOUR_MS):
            p.produce("win", value=b"pair", timestamp=ts, partition=0, on_delivery=dr)
        assert p.flush(15) == 0
        assert errs == [None] + [KafkaError.INVALID_TIMESTAMP] * 2, (codec, errs)
    # Limits near the largest long: no overflow turns them into a refusal.
    near_max = str(2**63 - 2)
    create(b, "wide", {"message.timestamp.before.max.ms": near_max,
                       "message.timestamp.after.max.ms": near_max})
    for ts in (now_ms(), 1, now_ms() + 100 * 365 * 24 * HOUR_MS):
        err, _, _ = produce(b, "wide", b"w", timestamp=ts)
        assert err is None, (ts, err)
    # The deprecated difference key applies where before/after are unset.
    create(b, "diff", {"message.timestamp.difference.max.ms": "60000"})
    err, _, _ = produce(b, "diff", b"old", timestamp=now_ms() - HOUR_MS)
    assert err == KafkaError.INVALID_TIMESTAMP, err
    # Lower limit removed: an old record is taken (AlterConfigs replaces the set).
    res = ConfigResource(ConfigResource.Type.TOPIC, "win",
                         set_config={"message.timestamp.after.max.ms": "60000"})
    admin(b).alter_configs([res], request_timeout=10)[res].result(10)
    err, _, off = produce(b, "win", b"old", timestamp=now_ms() - HOUR_MS)
    assert err is None and off == 3, (err, off)  # after "now" and the two warm-ups
    got = describe(b, "win")
    assert got["message.timestamp.before.max.ms"].source == 5, got
    assert got["message.timestamp.after.max.ms"].value == "60000", got


def stored_codecs(logdir, topic):
    """The codec of each batch in partition 0's first segment file, in order."""
    import glob
    import os
    seg = sorted(glob.glob(os.path.join(logdir, topic + "-0", "*.log")))[0]
    data = open(seg, "rb").read()
    codecs, pos = [], 0
    while pos + 61 <= len(data):
        blen = struct.unpack(">i", data[pos + 8:pos + 12])[0]
        if blen <= 0:
            break  # preallocated tail
        codecs.append(struct.unpack(">h", data[pos + 21:pos + 23])[0] & 7)
        pos += 12 + blen
    return codecs


def gzip_batch(value):
    """One gzip record batch (magic 2) of @value, built by kafka-python's own code."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    bb = DefaultRecordBatchBuilder(2, 1, False, -1, -1, -1, 1 << 20)
    bb.append(0, now_ms(), None, value, [])
    return bytes(bb.build())


def produce_batches_v3(b, topic, batches):
    """Produce v3 (acks=1) of @batches, back to back in partition 0: its error code."""
    s = b.connect()
    records = b"".join(batches)
    body = (struct.pack(">hhi", -1, 1, 10000) + struct.pack(">i", 1) + kstr(topic) +
            struct.pack(">iii", 1, 0, len(records)) + records)
    hdr = struct.pack(">hhi", 0, 3, 55) + kstr("it")
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    s.close()
    corr, ntopics = struct.unpack_from(">ii", r, 0)
    pos = 8 + 2 + struct.unpack_from(">h", r, 8)[0]
    nparts, p, err = struct.unpack_from(">iih", r, pos)
    assert (corr, ntopics, nparts, p) == (55, 1, 1, 0), (corr, ntopics, nparts, p)
    return err


def compression_checks(b, logdir):
    create(b, "zst", {"compression.type": "zstd"})
    values = [b"plain " * 50, b"gzipped " * 50, b"zstd-already " * 50]
    for v, codec in zip(values, ("none", "gzip", "zstd")):
        err, _, _ = produce(b, "zst", v, codec=codec)
        assert err is None, err
    create(b, "keep", {})
    for codec in ("gzip", "lz4"):
        err, _, _ = produce(b, "keep", b"k" * 300, codec=codec)
        assert err is None, err
    # A batch recompressed past max.message.bytes: MESSAGE_TOO_LARGE.
    create(b, "inflate", {"compression.type": "uncompressed", "max.message.bytes": "4000"})
    err, _, _ = produce(b, "inflate", b"a" * 20000, codec="zstd")
    assert err == KafkaError.MSG_SIZE_TOO_LARGE, err
    err, _, off = produce(b, "inflate", b"a" * 2000, codec="zstd")
    assert err is None and off == 0, (err, off)
    # Two batches in one partition, the second too large once recompressed: refused whole
    # (the first, which fits, is not appended either: the next record takes offset 1).
    err = produce_batches_v3(b, "inflate", [gzip_batch(b"f" * 1000), gzip_batch(b"a" * 20000)])
    assert err == 10, err  # MESSAGE_TOO_LARGE
    assert produce_batches_v3(b, "inflate", [gzip_batch(b"g" * 1000),
                                             gzip_batch(b"h" * 1000)]) == 0
    err, _, off = produce(b, "inflate", b"next", codec="zstd")
    assert err is None and off == 3, (err, off)
    # 900 KB that zstd makes a few hundred bytes: the broker's buffers grow to hold it.
    create(b, "grow", {"compression.type": "uncompressed"})
    big = b"0123456789" * 90000
    err, _, off = produce(b, "grow", big, codec="zstd")
    assert err is None and off == 0, (err, off)
    assert consume_confluent(b, "grow", 1)[0][0] == big
    assert stored_codecs(logdir, "zst") == [4, 4, 4], stored_codecs(logdir, "zst")
    assert stored_codecs(logdir, "keep") == [1, 3], stored_codecs(logdir, "keep")
    assert stored_codecs(logdir, "inflate") == [0] * 4, stored_codecs(logdir, "inflate")
    assert stored_codecs(logdir, "grow") == [0], stored_codecs(logdir, "grow")
    got = consume_confluent(b, "zst", 3)
    assert [v for v, _ in got] == values, got
    assert [v for v, _, _ in consume_kafka_python(b, "zst", 3)] == values
    out = subprocess.run([shutil.which("kcat") or "kcat", "-b", b.addr, "-C", "-t", "zst", "-p",
                          "0", "-o", "beginning", "-e", "-q", "-f", "%s\n"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out.split(b"\n")[:3] == values, out[:200]
    cfg = describe(b, "zst")["compression.type"]
    assert cfg.value == "zstd" and cfg.source == 1, cfg
    assert describe(b, "keep")["compression.type"].value == "producer"


def list_op_checks(b):
    """IncrementalAlterConfigs APPEND / SUBTRACT (raw v0): here in both modes."""
    create(b, "lists", {"cleanup.policy": "compact"})
    ialter = slp_broker.incremental_alter_configs
    assert ialter(b, "lists", [("cleanup.policy", 2, "delete,compact")]) == 0
    assert describe(b, "lists")["cleanup.policy"].value == "compact,delete"
    assert ialter(b, "lists", [("cleanup.policy", 3, "compact")]) == 0
    assert describe(b, "lists")["cleanup.policy"].value == "delete"
    assert ialter(b, "lists", [("cleanup.policy", 3, "delete")]) == 40  # nothing left
    assert ialter(b, "lists", [("max.message.bytes", 2, "5")]) == 40    # not a list
    assert describe(b, "lists")["cleanup.policy"].value == "delete"


def min_isr_checks(b):
    create(b, "misr", {"min.insync.replicas": "2"})
    err, _, off = produce(b, "misr", b"m", acks="all")
    assert err is None and off == 0, (err, off)
    cfg = describe(b, "misr")["min.insync.replicas"]
    assert cfg.value == "2" and cfg.source == 1, cfg


def streams_internal_topics_checks(b):
    """The internal topics Kafka Streams creates, with the configs it sets (every one
    carries message.timestamp.type=CreateTime, refused before this key was taken)."""
    for name, configs in (
            ("app-repartition", {"cleanup.policy": "delete", "segment.bytes": "52428800",
                                 "retention.ms": "-1", "message.timestamp.type": "CreateTime"}),
            ("app-changelog", {"cleanup.policy": "compact",
                               "message.timestamp.type": "CreateTime"}),
            ("app-window-changelog", {"cleanup.policy": "compact,delete",
                                      "retention.ms": "86400000",
                                      "message.timestamp.type": "CreateTime"})):
        create(b, name, configs)
        got = describe(b, name)
        for k, v in configs.items():
            if k != "cleanup.policy":
                assert got[k].value == v and got[k].source == 1, (name, k, got[k])


def assignment_checks(b):
    """Manual replica assignments (CreateTopics, CreatePartitions): this broker (node 1)
    alone is a valid replica list; anything else INVALID_REPLICA_ASSIGNMENT."""
    a = admin(b)
    fs = a.create_topics([NewTopic("manual", 3, replication_factor=-1,
                                   replica_assignment=[[1], [1], [1]])], request_timeout=10)
    fs["manual"].result(10)
    md = a.list_topics(timeout=10).topics["manual"]
    assert sorted(md.partitions) == [0, 1, 2], md.partitions
    assert all(p.replicas == [1] and p.leader == 1 for p in md.partitions.values()), md
    for bad in ([[2]], [[1, 1]], [[1], [1, 1]]):
        fs = a.create_topics([NewTopic("manual-bad", len(bad), replication_factor=-1,
                                       replica_assignment=bad)], request_timeout=10)
        try:
            fs["manual-bad"].result(10)
            raise AssertionError("created with %r" % bad)
        except Exception as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, (bad, e)
    fs = a.create_partitions([NewPartitions("manual", 5, replica_assignment=[[1], [1]])],
                             request_timeout=10)
    fs["manual"].result(10)
    for np, ra in ((7, [[1]]), (7, [[1], [3]])):
        fs = a.create_partitions([NewPartitions("manual", np, replica_assignment=ra)],
                                 request_timeout=10)
        try:
            fs["manual"].result(10)
            raise AssertionError("added with %r" % ra)
        except Exception as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, (ra, e)
    md = a.list_topics(timeout=10).topics["manual"]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4], md.partitions
    err, _, off = produce(b, "manual", b"on 4", partition=4)
    assert err is None and off == 0, (err, off)


def bad_value_checks(b):
    for configs in ({"message.timestamp.type": "WallClock"}, {"max.message.bytes": "-1"},
                    {"compression.type": "brotli"},
                    {"message.timestamp.after.max.ms": "-5"}, {"min.insync.replicas": "0"},
                    {"message.max.bytes": "100"}):  # the broker's name, not a topic key
        assert create_error(b, "bad", configs) == KafkaError.INVALID_CONFIG, configs


def uvarint(r, pos):
    x, shift = 0, 0
    while True:
        c = r[pos]
        pos += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, pos
        shift += 7


def cstr(r, pos):
    n, pos = uvarint(r, pos)
    if n == 0:
        return None, pos
    return r[pos:pos + n - 1].decode(), pos + n - 1


def describe_v4(b, rtype, name):
    """DescribeConfigs v4 (flexible, raw) of one resource: {name: (value, source, type)}."""
    body = bytes([2, rtype, len(name) + 1]) + name.encode() + bytes([0, 0]) + bytes([0, 0, 0])
    s = b.connect()
    hdr = struct.pack(">hhi", 32, 4, 78) + kstr("it") + bytes([0])
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = slp_broker.recv_frame(s)
    s.close()
    assert struct.unpack(">i", r[:4])[0] == 78 and r[4] == 0, r[:8]
    pos = 9  # after the header tags and throttle
    n, pos = uvarint(r, pos)
    assert n == 2, n
    assert struct.unpack(">h", r[pos:pos + 2])[0] == 0, r[pos:pos + 2]
    _, pos = cstr(r, pos + 2)
    pos += 1  # resource type
    _, pos = cstr(r, pos)
    n, pos = uvarint(r, pos)
    out = {}
    for _ in range(n - 1):
        key, pos = cstr(r, pos)
        value, pos = cstr(r, pos)
        source = r[pos + 1]
        pos += 3
        ns, pos = uvarint(r, pos)
        assert ns == 1, ns  # no synonyms
        ctype = r[pos]
        _, pos = cstr(r, pos + 1)
        assert r[pos] == 0
        pos += 1
        out[key] = (value, source, ctype)
    return out


def types_checks(b):
    got = describe_v4(b, 2, "lat")
    want = {"max.message.bytes": 3, "message.timestamp.type": 2,
            "message.timestamp.before.max.ms": 5, "message.timestamp.after.max.ms": 5,
            "message.timestamp.difference.max.ms": 5, "min.insync.replicas": 3,
            "compression.type": 2, "segment.bytes": 3, "retention.ms": 5,
            "cleanup.policy": 7, "preallocate": 1}
    for name, t in want.items():
        assert got[name][2] == t, (name, got[name])
    assert got["message.timestamp.type"][:2] == ("LogAppendTime", 1), got
    # The broker's keys carry their own types too (not all STRING).
    got = describe_v4(b, 4, "")
    want = {"message.max.bytes": 3, "log.retention.bytes": 5, "auto.create.topics.enable": 1,
            "log.dirs": 2, "log.message.timestamp.type": 2, "log.cleanup.policy": 7,
            "log.message.timestamp.after.max.ms": 5}
    for name, t in want.items():
        assert got[name][2] == t, (name, got[name])


def broker_keys_checks(run, mode_conf):
    """A broker whose file sets LogAppendTime and forbids topic deletion."""
    b = run.broker(SLIPSTREAM, CONFIG % (run.path("logs2"), mode_conf +
                                         "\nlog.message.timestamp.type=LogAppendTime"
                                         "\ncompression.type=lz4"
                                         "\ndelete.topic.enable=false\n"), control=CONTROL
                   if "controller" in mode_conf else None)
    before = now_ms()
    err, (ts_type, ts), _ = produce(b, "auto-lat", b"v", timestamp=1000000)  # auto-created
    assert err is None and ts_type == TIMESTAMP_LOG_APPEND_TIME and ts >= before - 1000, \
        (err, ts_type, ts)
    kp = consume_kafka_python(b, "auto-lat", 1)
    assert kp[0][1] == 1 and kp[0][2] == ts, (kp, ts)
    assert stored_codecs(run.path("logs2"), "auto-lat") == [3]  # the broker's lz4
    # A topic may still choose CreateTime.
    create(b, "ct2", {"message.timestamp.type": "CreateTime"})
    err, (ts_type, ts), _ = produce(b, "ct2", b"w", timestamp=1000000)
    assert err is None and ts_type == TIMESTAMP_CREATE_TIME and ts == 1000000, (ts_type, ts)
    # delete.topic.enable=false.
    assert delete_topics_v4(b, "ct2") == 73  # TOPIC_DELETION_DISABLED
    fs = admin(b).delete_topics(["ct2"], request_timeout=10)
    try:
        fs["ct2"].result(10)
        raise AssertionError("deleted with delete.topic.enable=false")
    except Exception as e:
        code = e.args[0].code()
        assert code in (KafkaError.INVALID_REQUEST, KafkaError.TOPIC_DELETION_DISABLED), code
    assert "ct2" in admin(b).list_topics(timeout=10).topics
    assert b.stop() == 0


def run_mode(mode_conf):
    control = CONTROL if "controller" in mode_conf else None
    with slp_broker.TestRun("slp-topiccfg-") as run:
        conf = CONFIG % (run.path("logs"), mode_conf)
        b = run.broker(SLIPSTREAM, conf, control=control)
        log_append_time_checks(b)
        max_message_checks(b)
        timestamp_window_checks(b)
        compression_checks(b, run.path("logs"))
        min_isr_checks(b)
        list_op_checks(b)
        streams_internal_topics_checks(b)
        assignment_checks(b)
        bad_value_checks(b)
        types_checks(b)
        assert b.stop() == 0
        b = run.broker(SLIPSTREAM, conf, control=control)
        assert describe(b, "lat")["message.timestamp.type"].value == "LogAppendTime"
        assert describe(b, "small")["max.message.bytes"].value == "2000"
        err, _, _ = produce(b, "small", b"x" * 3000)
        assert err == KafkaError.MSG_SIZE_TOO_LARGE, err
        err, (ts_type, _), off = produce(b, "lat", b"c", timestamp=1000000)
        assert err is None and ts_type == TIMESTAMP_LOG_APPEND_TIME and off == 2, (err, off)
        assert b.stop() == 0
        broker_keys_checks(run, mode_conf)


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka and kafka-python (/usr/bin/python3)")
        return 77
    run_mode("control.metadata=local")
    print("local mode: ok")
    if CONTROL is not None:
        run_mode("control.metadata=controller")
        print("controller mode (slipstream-control): ok")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
