# SPDX-License-Identifier: Apache-2.0
"""A 10,000-partition topic through the control process's metadata log (issue 6).

argv: SLIPSTREAM SLIPSTREAM_CONTROL. The dataplane takes 16,384 partitions per topic;
the metadata log carries as many (one TOPIC record per topic):

1. confluent-kafka's AdminClient creates "wide" with 10,000 partitions through the
   control process (controller mode); Metadata serves 10,000; records produced to
   partitions 0, 5,000 and 9,999 are read back.
2. 16,385 partitions (CreateTopics, and CreatePartitions of a small topic) answer
   INVALID_PARTITIONS (37) saying 16384; kafka-python grows a small topic to 2,000.
3. Both processes restarted (the log snapshotted in between: threshold 4): "wide" has
   its id, 10,000 partitions and its records; the snapshot was restored. Both stop
   cleanly (SIGTERM; the dataplane's stop of 12,000 partitions takes some 20 s here,
   minutes on a loaded machine: the waits are generous) and, at the end, the
   dataplane is SIGKILLed and started once more: the table and records survive a crash
   too.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

WIDE = 10000
CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=512
num.partitions=1
storage.cache.chunks=32
log.preallocate=false
log.segment.bytes=1048576
log.dir=%s
offsets.topic.num.partitions=2
control.metrics.listen=127.0.0.1:0
control.metadata.snapshot.threshold=4
"""


T0 = time.monotonic()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok: [%5.1f s] %s" % (time.monotonic() - T0, what), flush=True)


def admin(b):
    from confluent_kafka.admin import AdminClient
    # Creating 10,000 partitions (directories, segment files) takes the dataplane
    # seconds, minutes on a loaded machine: more than librdkafka's 60 s socket timeout.
    return AdminClient({"bootstrap.servers": b.addr, "socket.timeout.ms": 300000})


def create(b, name, parts):
    """Create @name through the control process: 0, or the Kafka error code (and message)."""
    from confluent_kafka.admin import NewTopic
    a = admin(b)
    try:
        a.create_topics([NewTopic(name, parts, 1)], request_timeout=300)[name].result(330)
        return 0, ""
    except Exception as e:  # KafkaException wrapping a KafkaError
        return e.args[0].code(), e.args[0].str()


def partitions_of(b, topic):
    md = admin(b).list_topics(topic=topic, timeout=60)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def table_id(logdir, name):
    with open(os.path.join(logdir, "__slipstream_topics")) as f:
        for line in f:
            w = line.split()
            if w and w[0] == name:
                return w[1], int(w[2])
    return None


def produce(b, topic, parts):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "message.timeout.ms": 60000})
    errs = []
    for q in parts:
        p.produce(topic, value=b"p%d" % q, partition=q,
                  on_delivery=lambda e, m: errs.append(e) if e else None)
    check(p.flush(90) == 0 and not errs, "produced to %s partitions %s" % (topic, parts))


def read_one(b, topic, partition):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "wide-unused",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                return m.value()
        return None
    finally:
        c.close()


def main():
    import slp_broker
    slp_broker.require("confluent_kafka", "kafka")
    from kafka.admin import KafkaAdminClient, NewPartitions

    slipstream, control = sys.argv[1], sys.argv[2]
    with slp_broker.TestRun("ctl-parts-it-") as run:
        tmp = run.tmp
        logdir = os.path.join(tmp, "logs")
        conf = CONFIG % logdir
        probe = [0, WIDE // 2, WIDE - 1]

        b = run.broker(slipstream, conf, control=control)
        t0 = time.monotonic()
        check(create(b, "wide", WIDE) == (0, ""),
              "wide created with %d partitions through the control process (%.1f s)" %
              (WIDE, time.monotonic() - t0))
        check(partitions_of(b, "wide") == WIDE, "Metadata: wide has %d partitions" % WIDE)
        wide_id = table_id(logdir, "wide")
        check(wide_id is not None and wide_id[1] == WIDE, "the dataplane's table has it")
        produce(b, "wide", probe)
        for q in probe:
            check(read_one(b, "wide", q) == b"p%d" % q, "wide[%d] read back" % q)

        code, msg = create(b, "too-wide", 16385)
        check(code == 37 and "16384" in msg,
              "16,385 partitions: INVALID_PARTITIONS (%d, %r)" % (code, msg))
        check(create(b, "small", 1) == (0, ""), "small created")
        ka = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=120000)
        try:
            try:
                ka.create_partitions({"small": NewPartitions(16385)})
                check(False, "CreatePartitions to 16,385 must fail")
            except Exception as e:
                check("InvalidPartitions" in type(e).__name__ or "37" in str(e),
                      "CreatePartitions to 16,385: INVALID_PARTITIONS (%s)" % type(e).__name__)
            ka.create_partitions({"small": NewPartitions(2000)})
        finally:
            ka.close()
        check(partitions_of(b, "small") == 2000, "kafka-python: small grown to 2,000 partitions")
        for i in range(4):  # past the snapshot threshold
            check(create(b, "filler-%d" % i, 1) == (0, ""), "filler-%d created" % i)
        # Stops of some 20 s, minutes on a loaded machine; starts of up to 10 minutes:
        # opening 12,000 partition logs takes that long there.
        check(b.restart(stop_timeout=900, start_timeout=600) == 0,
              "both stopped cleanly and started again with %d partitions" % (WIDE + 2000 + 6))
        meta = os.path.join(logdir, "__slipstream_metadata")
        check(any(f.startswith("snapshot-") for f in os.listdir(meta)),
              "the metadata log was snapshotted")
        check("metadata snapshot restored" in b.control_text(), "the snapshot restored")
        check(partitions_of(b, "wide") == WIDE, "after the restart: wide has %d partitions" % WIDE)
        check(table_id(logdir, "wide") == wide_id, "... and the same id")
        check(partitions_of(b, "small") == 2000, "small still has 2,000 partitions")
        for q in probe:
            check(read_one(b, "wide", q) == b"p%d" % q, "wide[%d] still there" % q)
        # A crash of the dataplane under the running control process.
        b.restart("dataplane", kill=True, start_timeout=600)
        check(partitions_of(b, "wide") == WIDE and table_id(logdir, "wide") == wide_id,
              "after a SIGKILL of the dataplane: wide has %d partitions, the same id" % WIDE)
        check(read_one(b, "wide", WIDE - 1) == b"p%d" % (WIDE - 1), "... and its records")
        check(b.stop_control(timeout=60) == 0, "control process stopped cleanly")
        b.kill()
    print("PASS")


if __name__ == "__main__":
    main()
