# SPDX-License-Identifier: Apache-2.0
"""The broker with kafka-python (its own pure-Python protocol code) and kafkajs.

Starts `slipstream` on 127.0.0.1 (port picked by the kernel, own log
directory), then:
- kafka-python: KafkaAdminClient.create_topics; KafkaProducer with no
  compression, gzip, snappy and lz4 (acks=1 and all), every send acknowledged
  with consecutive offsets per partition; KafkaConsumer with assign() and
  seek_to_beginning() reads every message back, keys in produce order within
  their partition, and one key always lands in one partition;
- kafkajs (npm): admin createTopics, producer with gzip and acks=-1; the
  messages are read back with kafka-python and checked;
- SIGTERM: exit 0.

Usage: test_broker_clients.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kafka-python or node with kafkajs installed.
Bounded: every client call has a timeout; the test takes a few seconds.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
except ImportError:
    KafkaProducer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
storage.cache.chunks=24
log.dir=%s
"""


def consume_all(addr, topic, partitions, want, deadline_s=30):
    c = KafkaConsumer(bootstrap_servers=addr, group_id=None, enable_auto_commit=False,
                      consumer_timeout_ms=1000, request_timeout_ms=15000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    rows = []
    deadline = time.monotonic() + deadline_s
    while len(rows) < want and time.monotonic() < deadline:
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                rows.append((tp.partition, m.offset, m.key.decode(), m.value.decode()))
    c.close()
    assert len(rows) == want, "%s: read %d of %d" % (topic, len(rows), want)
    return rows


def check_order(rows, value_index):
    """Per partition, offsets are consecutive from 0; per key, values in produce order."""
    by_part, key_part, last = {}, {}, {}
    for p, off, k, v in sorted(rows):
        assert off == by_part.get(p, 0), (p, off)
        by_part[p] = off + 1
        assert key_part.setdefault(k, p) == p, "key %s in two partitions" % k
        i = value_index(v)
        assert i > last.get(k, -1), "key %s out of order: %d after %d" % (k, i, last.get(k))
        last[k] = i


def kafka_python_checks(b):
    admin = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=15000)
    admin.create_topics([NewTopic("kp-topic", 4, 1)])
    admin.close()
    n = 0
    for codec, acks in ((None, 1), ("gzip", "all"), ("snappy", 1), ("lz4", "all")):
        p = KafkaProducer(bootstrap_servers=b.addr, compression_type=codec, acks=acks,
                          linger_ms=5, request_timeout_ms=15000)
        futs = [p.send("kp-topic", key=b"key-%d" % (i % 6), value=b"kp-%d" % (n + i))
                for i in range(60)]
        p.flush(15)
        for f in futs:
            md = f.get(timeout=15)
            assert md.offset >= 0, md
        p.close(5)
        n += 60
    rows = consume_all(b.addr, "kp-topic", 4, n)
    assert sorted(int(v[3:]) for _, _, _, v in rows) == list(range(n))
    check_order(rows, lambda v: int(v[3:]))


def kafkajs_checks(b):
    r = subprocess.run(["node", os.path.join(HERE, "broker_kafkajs.js"), b.addr, "js-topic", "40"],
                       cwd=HERE, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "kafkajs: rc %d\n%s\n%s" % (r.returncode, r.stderr[-3000:],
                                                            b.text()[-2000:])
    acks = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert acks and all(a["error"] == 0 for a in acks), acks
    rows = consume_all(b.addr, "js-topic", 3, 40)
    assert sorted(int(v[3:]) for _, _, _, v in rows) == list(range(40))
    check_order(rows, lambda v: int(v[3:]))


def main():
    if KafkaProducer is None:
        print("SKIP: python3-kafka not installed")
        return 77
    have_js = shutil.which("node") and os.path.isdir(os.path.join(HERE, "node_modules", "kafkajs"))
    if not have_js:
        print("SKIP: node or kafkajs (scripts/install-deps) missing")
        return 77
    with slp_broker.TestRun("slp-clients-") as run:
        tmp = run.tmp
        b = run.broker(SLIPSTREAM, CONFIG % os.path.join(tmp, "logs"))
        kafka_python_checks(b)
        print("ok kafka-python: admin, 4 codecs, assign() consumer")
        kafkajs_checks(b)
        print("ok kafkajs: admin, gzip producer (read back with kafka-python)")
        rc = b.stop()
        assert rc == 0, "exit %s\n%s" % (rc, b.text()[-2000:])
        return 0


if __name__ == "__main__":
    sys.exit(main())
