# SPDX-License-Identifier: Apache-2.0
"""Cluster metadata in the control process's Raft log (issue 6), end to end.

argv: SLIPSTREAM SLIPSTREAM_CONTROL. Real clients only (confluent-kafka's
AdminClient and kafka-python's KafkaAdminClient), plus raw frames where
neither client has the call (IncrementalAlterConfigs in confluent-kafka 1.7)
or where the exact error code matters (a mutation while the control process
is away must answer NOT_CONTROLLER, 41, at once).

1. Migration: a dataplane alone (control.metadata=local) creates a topic and
   stores records; started with the control process (controller mode) the
   topic is imported into the log with the same id, partitions, configs and data.
2. Create (confluent, kafka-python), create partitions, AlterConfigs (kafka-python),
   IncrementalAlterConfigs (raw), delete; the errors Kafka gives
   (TOPIC_ALREADY_EXISTS, INVALID_CONFIG, INVALID_PARTITIONS); Metadata
   auto-creation through the log.
3. The control process killed (-9): produce and fetch go on, a CreateTopics
   answers NOT_CONTROLLER, and succeeds once it is back; nothing else changed.
4. The dataplane restarted while the control process is away: it serves its
   copy (topics, data); then the control process comes back.
5. Both restarted: topics, ids, partition counts and configs survive; the log
   was snapshotted (control.metadata.snapshot.threshold=8) and the snapshot restored.
"""
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import slp_broker  # noqa: E402 (beside this file)

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
storage.cache.chunks=48
log.dir=%s
log.segment.bytes=1048576
offsets.topic.num.partitions=2
control.metrics.listen=127.0.0.1:0
control.metadata.snapshot.threshold=8
"""

NOT_CONTROLLER = 41


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


# ---- raw frames -----------------------------------------------------------------------------

def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(b, api_key, version, body, timeout=10):
    """Send one request (header v1), return the response body after the correlation id."""
    s = b.connect()
    s.settimeout(timeout)
    try:
        frame = struct.pack(">hhi", api_key, version, 7) + kstr("meta-test") + body
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = slp_broker.recv_frame(s)
        assert struct.unpack(">i", data[:4])[0] == 7
        return data[4:]
    finally:
        s.close()


def create_topic_raw(b, name, partitions):
    """CreateTopics v4 for one topic: its error code."""
    body = struct.pack(">i", 1) + kstr(name) + struct.pack(">ihii", partitions, 1, 0, 0)
    body += struct.pack(">ib", 10000, 0)
    resp = request(b, 19, 4, body)
    # throttle, count, name, error code
    n = struct.unpack(">h", resp[8:10])[0]
    return struct.unpack(">h", resp[10 + n:12 + n])[0]


def incremental_alter_raw(b, topic, ops):
    """IncrementalAlterConfigs v0 on one topic; ops = [(name, op, value or None)]."""
    body = struct.pack(">i", 1) + struct.pack(">b", 2) + kstr(topic) + struct.pack(">i", len(ops))
    for name, op, value in ops:
        body += kstr(name) + struct.pack(">b", op)
        body += struct.pack(">h", -1) if value is None else kstr(value)
    body += struct.pack(">b", 0)
    resp = request(b, 44, 0, body)
    return struct.unpack(">h", resp[8:10])[0]  # throttle, count, error code


# ---- helpers ------------------------------------------------------------------------------

def topic_ids(logdir):
    """The dataplane's copy of the topic table: {name: (id hex, partitions, configs)}."""
    out = {}
    with open(os.path.join(logdir, "__slipstream_topics")) as f:
        for line in f:
            w = line.split()
            if w:
                out[w[0]] = (w[1], int(w[2]), sorted(w[3:]))
    return out


def admin(b):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": b.addr})


def wait_for(pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out: " + what)


def partitions_of(b, topic):
    md = admin(b).list_topics(timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def config_of(b, topic, key):
    from confluent_kafka.admin import ConfigResource
    r = ConfigResource("topic", topic)
    a = admin(b)  # kept alive until the future resolves
    e = a.describe_configs([r])[r].result(15)[key]
    return e.value, e.source


def produce(b, topic, n, partition=0, tag="m"):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "message.timeout.ms": 20000})
    errs = []
    for i in range(n):
        p.produce(topic, value=("%s-%d" % (tag, i)).encode(), partition=partition,
                  on_delivery=lambda e, m: errs.append(e) if e else None)
    left = p.flush(30)
    check(left == 0 and not errs, "produced %d to %s[%d]" % (n, topic, partition))


def consume(b, topic, partition=0, n=1):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "meta-test-unused",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        return got
    finally:
        c.close()


def confluent_create(b, name, parts, config=None):
    from confluent_kafka.admin import NewTopic
    a = admin(b)  # kept alive until the future resolves
    f = a.create_topics([NewTopic(name, parts, 1, config=config or {})],
                        request_timeout=15)[name]
    try:
        f.result(20)
        return 0
    except Exception as e:  # KafkaException wrapping a KafkaError
        return e.args[0].code()


# ---- the test -----------------------------------------------------------------------------

def main():
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType
    from kafka.admin import KafkaAdminClient

    slipstream, control = sys.argv[1], sys.argv[2]
    with slp_broker.TestRun("ctl-meta-it-") as run:
        tmp = run.tmp
        logdir = os.path.join(tmp, "logs")
        conf = CONFIG % logdir

        # 1. A dataplane alone, then upgraded to the metadata log.
        b = run.broker(slipstream, conf)
        check(confluent_create(b, "legacy-a", 3, {"retention.ms": "777777"}) == 0,
              "local mode: legacy-a created by the dataplane")
        produce(b, "legacy-a", 5, tag="old")
        legacy = topic_ids(logdir)["legacy-a"]
        check(b.stop() == 0, "local dataplane stopped cleanly")
        b = run.broker(slipstream, conf, control=control)
        check("importing 1 topic(s)" in b.control_text(), "the legacy table imported once")
        check(topic_ids(logdir)["legacy-a"] == legacy, "legacy-a kept its id, partitions, configs")
        check(partitions_of(b, "legacy-a") == 3, "legacy-a served with 3 partitions")
        check(config_of(b, "legacy-a", "retention.ms")[0] == "777777", "legacy-a config kept")
        check(len(consume(b, "legacy-a", 0, 5)) == 5, "legacy-a data readable")

        # 2. Mutations through the log.
        check(confluent_create(b, "m-a", 2, {"segment.bytes": "1048576"}) == 0,
              "confluent: m-a created")
        ka = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=15000)
        from kafka.admin import NewTopic as KNewTopic, NewPartitions as KNewPartitions
        ka.create_topics([KNewTopic("m-b", 1, 1)])
        check(partitions_of(b, "m-b") == 1, "kafka-python: m-b created")
        check(confluent_create(b, "m-a", 2) == 36, "m-a again: TOPIC_ALREADY_EXISTS")
        check(confluent_create(b, "m-bad", 1, {"segment.bytes": "12"}) == 40,
              "segment.bytes=12: INVALID_CONFIG")
        check(confluent_create(b, "m-bad", 1, {"no.such.key": "1"}) == 40,
              "unknown config: INVALID_CONFIG")
        from confluent_kafka.admin import NewPartitions
        ac = admin(b)
        ac.create_partitions([NewPartitions("m-a", 4)])["m-a"].result(20)
        check(partitions_of(b, "m-a") == 4, "confluent: m-a grown to 4 partitions")
        try:
            ac.create_partitions([NewPartitions("m-a", 2)])["m-a"].result(20)
            check(False, "shrinking must fail")
        except Exception as e:
            check(e.args[0].code() == 37, "m-a to 2 partitions: INVALID_PARTITIONS")
        ka.create_partitions({"m-b": KNewPartitions(3)})
        check(partitions_of(b, "m-b") == 3, "kafka-python: m-b grown to 3 partitions")
        ka.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "m-b",
                                          configs={"retention.ms": "5000"})])
        check(config_of(b, "m-b", "retention.ms")[0] == "5000",
              "kafka-python AlterConfigs: m-b retention.ms=5000")
        check(incremental_alter_raw(b, "m-a", [("retention.ms", 0, "3600000"),
                                               ("segment.bytes", 1, None)]) == 0,
              "IncrementalAlterConfigs SET + DELETE")
        v, src = config_of(b, "m-a", "segment.bytes")
        check(config_of(b, "m-a", "retention.ms")[0] == "3600000" and src != 1,
              "m-a: retention.ms set, segment.bytes back to the broker's")
        check(incremental_alter_raw(b, "m-a", [("retention.ms", 0, "x")]) == 40,
              "IncrementalAlterConfigs with a bad value: INVALID_CONFIG")
        ka.delete_topics(["m-b"])
        check(wait_for(lambda: partitions_of(b, "m-b") is None, "m-b gone", 10),
              "kafka-python: m-b deleted")
        # Renamed aside at once (m-b-<p>.<unique>-delete), emptied off the reactor.
        check(wait_for(lambda: not any(d.startswith("m-b-") for d in os.listdir(logdir)),
                       "m-b's partition directories removed", 10),
              "m-b's partition directories removed")
        # Metadata auto-creation goes through the log (LEADER_NOT_AVAILABLE, then the topic).
        produce(b, "auto-x", 3)
        check(partitions_of(b, "auto-x") == 3, "auto-x auto-created with num.partitions")
        ka.close()
        produce(b, "m-a", 10, partition=3, tag="before")
        ids = topic_ids(logdir)

        # 3. The control process killed: data path carries on, mutations refused.
        b.kill_control()
        produce(b, "m-a", 10, partition=3, tag="away")
        check(len(consume(b, "m-a", 3, 20)) == 20, "fetch while the control process is down")
        t0 = time.monotonic()
        check(create_topic_raw(b, "m-c", 1) == NOT_CONTROLLER,
              "CreateTopics while away: NOT_CONTROLLER")
        check(time.monotonic() - t0 < 5, "... answered at once")
        check(incremental_alter_raw(b, "m-a", [("retention.ms", 0, "1")]) == NOT_CONTROLLER,
              "IncrementalAlterConfigs while away: NOT_CONTROLLER")
        b.start_control()
        check(wait_for(lambda: create_topic_raw(b, "m-c", 1) == 0, "m-c created", 30),
              "the same CreateTopics succeeds once the control process is back")
        now = topic_ids(logdir)
        check(all(now[k] == v for k, v in ids.items()), "other topics unchanged by the restart")

        # 4. The dataplane restarted while the control process is away.
        b.kill_control()
        check(b.stop_dataplane() == 0, "dataplane stopped cleanly")
        b.start_dataplane(60)
        check(partitions_of(b, "m-a") == 4 and partitions_of(b, "m-c") == 1,
              "restarted dataplane serves its copy without the control process")
        check(len(consume(b, "m-a", 3, 20)) == 20, "and its data")
        b.start_control()
        ids = topic_ids(logdir)

        # 5. Both restarted.
        check(b.stop() == 0, "both stopped cleanly")
        meta = os.path.join(logdir, "__slipstream_metadata")
        check(any(f.startswith("snapshot-") for f in os.listdir(meta)),
              "the metadata log was snapshotted")
        b = run.broker(slipstream, conf, control=control)
        check("metadata snapshot restored" in b.control_text(), "the snapshot restored")
        check("importing" not in b.control_text(), "no second import")
        check(topic_ids(logdir) == ids, "topics, ids, partitions, configs survive")
        check(config_of(b, "m-a", "retention.ms")[0] == "3600000", "m-a's config survives")
        check(partitions_of(b, "m-a") == 4, "m-a's partitions survive")
        check(len(consume(b, "legacy-a", 0, 5)) == 5, "imported data still there")
        check(b.stop_control() == 0, "control process stopped cleanly (exit 0)")
        check(b.stop() == 0, "stopped cleanly")
    print("PASS")


if __name__ == "__main__":
    main()
