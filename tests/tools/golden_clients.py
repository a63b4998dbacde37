#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Python Kafka client runs driven by tests/tools/capture-golden.

Each sub-command is one short client session against the fake broker
(capture_broker.py) so that its request frames are captured. Producers send
N records with key "key-<i>", value "value-<i>" and one header
app=slipstream-golden, i = 0..N-1, to a topic of their own, so every
Produce request holds one record batch whose contents tests can check.

Clients: confluent-kafka (librdkafka underneath) and kafka-python, both
Debian packages visible only to /usr/bin/python3. Every run is bounded: the
caller wraps it in timeout(1), and each loop here has its own deadline.
"""

import argparse
import sys
import time

HEADER = ("app", b"slipstream-golden")


def records(n):
    return [(b"key-%d" % i, b"value-%d" % i) for i in range(n)]


def cfk_produce(a):
    import confluent_kafka as ck
    conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "compression.type": a.codec,
            "linger.ms": 100, "client.id": a.client_id or "rdkafka"}
    if a.idempotent:
        conf["enable.idempotence"] = True
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)

    p = ck.Producer(conf)
    # Learn the partition leader first: a record produced before that goes
    # out in a batch of its own, splitting the N records.
    p.list_topics(a.topic, timeout=5)
    for k, v in records(a.n):
        p.produce(a.topic, key=k, value=v, headers=[HEADER], partition=a.partition,
                  on_delivery=dr)
    left = p.flush(10)
    if left or errors:
        print("cfk produce: %d undelivered, errors %r" % (left, errors), file=sys.stderr)
        return 1
    return 0


def cfk_consume(a):
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "client.id": a.client_id or "rdkafka"})
    tp = ck.TopicPartition(a.topic, a.partition if a.partition >= 0 else 0,
                           ck.OFFSET_BEGINNING)
    c.assign([tp])
    got = []
    deadline = time.monotonic() + 10
    while len(got) < a.n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.key(), m.value()))
    rc = 0 if got == records(a.n) else 1
    if got:
        c.commit(asynchronous=False)
        c.committed([ck.TopicPartition(tp.topic, tp.partition)], timeout=5)
    c.close()
    if rc:
        print("cfk consume: got %r" % got, file=sys.stderr)
    return rc


def cfk_txn(a):
    """Two transactions: produce + send offsets + commit, then produce + abort."""
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": a.bootstrap, "transactional.id": "golden-txn",
                     "compression.type": a.codec, "linger.ms": 100,
                     "client.id": a.client_id or "rdkafka"})
    c = ck.Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                     "enable.auto.commit": False, "client.id": a.client_id or "rdkafka"})
    p.init_transactions(10)
    p.begin_transaction()
    for k, v in records(a.n):
        p.produce(a.topic, key=k, value=v, headers=[HEADER], partition=0)
    p.flush(10)
    p.send_offsets_to_transaction([ck.TopicPartition(a.topic, 0, a.n)],
                                  c.consumer_group_metadata(), 10)
    p.commit_transaction(10)
    p.begin_transaction()
    p.produce(a.topic, key=b"key-%d" % a.n, value=b"value-%d" % a.n, headers=[HEADER],
              partition=0)
    p.flush(10)
    p.abort_transaction(10)
    c.close()
    return 0


def kp_produce(a):
    from kafka import KafkaProducer
    acks = {"all": "all", "-1": "all", "0": 0, "1": 1}[a.acks]
    codec = None if a.codec == "none" else a.codec
    kw = {"client_id": a.client_id} if a.client_id else {}
    p = KafkaProducer(bootstrap_servers=a.bootstrap, acks=acks, compression_type=codec,
                      linger_ms=100, **kw)
    futs = [p.send(a.topic, key=k, value=v, headers=[HEADER],
                   partition=a.partition if a.partition >= 0 else None)
            for k, v in records(a.n)]
    p.flush(10)
    rc = 0
    if acks != 0:
        for f in futs:
            f.get(timeout=5)
    p.close(5)
    return rc


def kp_consume(a):
    from kafka import KafkaConsumer, TopicPartition
    kw = {"client_id": a.client_id} if a.client_id else {}
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=None,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=5000, **kw)
    c.assign([TopicPartition(a.topic, a.partition if a.partition >= 0 else 0)])
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) >= a.n:
            break
    c.close()
    if got != records(a.n):
        print("kafka-python consume: got %r" % got, file=sys.stderr)
        return 1
    return 0


def kp_group(a):
    """Group consumer: subscribe, read N records, commit, leave."""
    from kafka import KafkaConsumer
    kw = {"client_id": a.client_id} if a.client_id else {}
    c = KafkaConsumer(a.topic, bootstrap_servers=a.bootstrap, group_id=a.group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=8000, heartbeat_interval_ms=300,
                      session_timeout_ms=6000, **kw)
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) >= a.n:
            break
    c.commit()
    time.sleep(0.7)  # let a heartbeat go out
    c.close()
    if got != records(a.n):
        print("kafka-python group: got %r" % got, file=sys.stderr)
        return 1
    return 0


def kp_admin(a):
    from kafka.admin import KafkaAdminClient, NewTopic
    kw = {"client_id": a.client_id} if a.client_id else {}
    adm = KafkaAdminClient(bootstrap_servers=a.bootstrap, **kw)
    adm.create_topics([NewTopic(a.topic, num_partitions=3, replication_factor=1)],
                      timeout_ms=5000)
    names = adm.list_topics()
    adm.close()
    return 0 if a.topic in names else 1


CMDS = {"cfk-produce": cfk_produce, "cfk-txn": cfk_txn, "cfk-consume": cfk_consume, "kp-produce": kp_produce,
        "kp-consume": kp_consume, "kp-group": kp_group, "kp-admin": kp_admin}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=sorted(CMDS))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--codec", default="none")
    ap.add_argument("--acks", default="1")
    ap.add_argument("--partition", type=int, default=-1)
    ap.add_argument("--idempotent", action="store_true")
    ap.add_argument("--group", default="golden-group")
    ap.add_argument("--client-id")
    a = ap.parse_args()
    return CMDS[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
