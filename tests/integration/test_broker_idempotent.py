# SPDX-License-Identifier: Apache-2.0
"""Idempotent producers against the broker: InitProducerId and Produce's
sequence checks, with producer state surviving restarts.

Raw frames (tests/tools/kwire.py for the codec):
- ApiVersions advertises InitProducerId v0-5; InitProducerId v0, v3, v4 (and
  flexible v2+) hand out new ids with epoch 0; v3+ with the current id and
  epoch bumps the epoch (KIP-360); only one of id/epoch set is
  INVALID_REQUEST, a transactional id COORDINATOR_NOT_AVAILABLE, an empty
  one INVALID_REQUEST;
- Produce v8 with idempotent batches: a retried batch gets its original
  offset and appends nothing; a sequence gap and a replayed older sequence
  are OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch INVALID_PRODUCER_EPOCH; a
  new epoch must start at 0; five requests pipelined on one connection,
  then the same five again (all duplicates, same offsets);
- after a clean restart (SIGTERM) and after kill -9: the last batches are
  still recognised as duplicates (snapshot, or snapshot + log replay), and
  InitProducerId never hands out an id given out before.
confluent_kafka (librdkafka) with enable.idempotence=true produces a
numbered sequence to 3 partitions while the broker is restarted mid-stream
with SIGTERM and then with kill -9 (same port); after delivery everything is
read back with kcat: per partition the numbers are strictly increasing, with
no duplicate and no gap. kafkajs with idempotent: true: a round trip.

Usage: test_broker_idempotent.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka or kcat. The broker's port: slp_broker.free_port().
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

import slp_broker

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import kwire  # noqa: E402

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
try:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:%d
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
dataplane.response.buffers=32
storage.cache.chunks=24
# small segments: rolls (and their producer snapshots) happen during the test
log.segment.bytes=65536
log.dir=%s
"""

ERR_NONE = 0
ERR_COORDINATOR_NOT_AVAILABLE = 15
ERR_INVALID_REQUEST = 42
ERR_OUT_OF_ORDER = 45
ERR_INVALID_PRODUCER_EPOCH = 47


def Broker(test_run, port):
    return test_run.broker(SLIPSTREAM, CONFIG % (port, os.path.join(test_run.tmp, "logs")))


# ---- raw frames -------------------------------------------------------------

def send_req(s, key, ver, corr, body):
    s.sendall(kwire.encode_request(key, ver, corr, "it-idem", body))


def recv_resp(s, key, ver, corr):
    r = kwire.Reader(slp_broker.recv_frame(s))
    assert r.int32() == corr
    flex = kwire.is_flexible(key, ver)
    if flex and key != 18:
        kwire.skip_tagged(r)
    return kwire.read_struct(r, kwire.API[key]["resp"], ver, flex)


def call(s, key, ver, body, corr=1):
    send_req(s, key, ver, corr, body)
    return recv_resp(s, key, ver, corr)


def init_pid(s, ver, txn=None, pid=-1, epoch=-1):
    r = call(s, 22, ver, {"TransactionalId": txn, "TransactionTimeoutMs": 60000,
                          "ProducerId": pid, "ProducerEpoch": epoch})
    return r["ErrorCode"], r["ProducerId"], r["ProducerEpoch"]


def idem_batch(pid, epoch, seq, values):
    """A v2 batch of @values with the producer fields set (CRC recomputed)."""
    b = bytearray(kwire.build_batch([(None, v, []) for v in values], 0, int(time.time() * 1000)))
    struct.pack_into(">qhi", b, 43, pid, epoch, seq)
    struct.pack_into(">I", b, 17, kwire.crc32c(bytes(b[21:])))
    return bytes(b)


def produce_body(topic, part, batch):
    return {"TransactionalId": None, "Acks": -1, "TimeoutMs": 10000,
            "TopicData": [{"Name": topic, "PartitionData": [{"Index": part, "Records": batch}]}]}


def produce(s, topic, part, batch, corr=1):
    r = call(s, 0, 8, produce_body(topic, part, batch), corr)
    p = r["Responses"][0]["PartitionResponses"][0]
    return p["ErrorCode"], p["BaseOffset"]


def end_offset(s, topic, part):
    body = {"ReplicaId": -1, "IsolationLevel": 0,
            "Topics": [{"Name": topic, "Partitions": [{"PartitionIndex": part,
                                                       "CurrentLeaderEpoch": -1,
                                                       "Timestamp": -1}]}]}
    r = call(s, 2, 5, body)
    return r["Topics"][0]["Partitions"][0]["Offset"]


def create_topic(addr, name, parts):
    a = AdminClient({"bootstrap.servers": addr})
    a.create_topics([NewTopic(name, parts, 1)], request_timeout=10)[name].result(10)


def raw_checks(b, state):
    s = b.connect()
    r = call(s, 18, 3, {"ClientSoftwareName": "it", "ClientSoftwareVersion": "1"})
    keys = {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"]) for k in r["ApiKeys"]}
    assert keys.get(22) == (0, 5), keys.get(22)

    # InitProducerId: new ids, epoch 0, in every version.
    pids = []
    for ver in range(0, 6):
        err, pid, epoch = init_pid(s, ver)
        assert (err, epoch) == (ERR_NONE, 0), (ver, err, epoch)
        pids.append(pid)
    assert pids == sorted(set(pids)), pids
    # KIP-360: the current id and epoch bump the epoch.
    assert init_pid(s, 3, pid=pids[3], epoch=0) == (ERR_NONE, pids[3], 1)
    assert init_pid(s, 5, pid=pids[3], epoch=1) == (ERR_NONE, pids[3], 2)
    # An id this broker never handed out: a new one.
    err, pid, epoch = init_pid(s, 4, pid=10 ** 12, epoch=3)
    assert err == ERR_NONE and pid > max(pids) and epoch == 0, (err, pid, epoch)
    pids.append(pid)
    assert init_pid(s, 3, pid=-1, epoch=0)[0] == ERR_INVALID_REQUEST
    assert init_pid(s, 3, pid=pids[0], epoch=-1)[0] == ERR_INVALID_REQUEST
    assert init_pid(s, 1, txn="tx-1") == (ERR_COORDINATOR_NOT_AVAILABLE, -1, -1)
    assert init_pid(s, 4, txn="tx-1")[0] == ERR_COORDINATOR_NOT_AVAILABLE
    assert init_pid(s, 4, txn="")[0] == ERR_INVALID_REQUEST
    state["pids"] = pids

    # Produce: sequence checks on partition 0 of "idem-raw".
    t, pid = "idem-raw", pids[0]
    b0 = idem_batch(pid, 0, 0, [b"a0", b"a1", b"a2"])
    err, off0 = produce(s, t, 0, b0)
    assert err == ERR_NONE, err
    leo = end_offset(s, t, 0)
    assert leo == off0 + 3
    assert produce(s, t, 0, b0) == (ERR_NONE, off0)  # retry: original offset
    assert end_offset(s, t, 0) == leo  # nothing appended
    assert produce(s, t, 0, idem_batch(pid, 0, 5, [b"gap"]))[0] == ERR_OUT_OF_ORDER
    assert produce(s, t, 0, idem_batch(pid, 0, 1, [b"old"]))[0] == ERR_OUT_OF_ORDER
    err, off1 = produce(s, t, 0, idem_batch(pid, 0, 3, [b"a3", b"a4"]))
    assert (err, off1) == (ERR_NONE, leo)
    # Epoch 1: must start at 0; then epoch 0 is fenced.
    assert produce(s, t, 0, idem_batch(pid, 1, 5, [b"x"]))[0] == ERR_OUT_OF_ORDER
    err, off2 = produce(s, t, 0, idem_batch(pid, 1, 0, [b"e1-0"]))
    assert (err, off2) == (ERR_NONE, off1 + 2)
    assert produce(s, t, 0, idem_batch(pid, 0, 5, [b"a5"]))[0] == ERR_INVALID_PRODUCER_EPOCH
    assert produce(s, t, 0, b0)[0] == ERR_INVALID_PRODUCER_EPOCH
    # A non-idempotent batch in between changes nothing for the producer.
    assert produce(s, t, 0, kwire.build_batch([(None, b"plain", [])]))[0] == ERR_NONE
    # Five requests pipelined on one connection (max.in.flight 5), then all five again.
    batches = [idem_batch(pid, 1, 1 + 2 * i, [b"p%d" % i, b"q%d" % i]) for i in range(5)]
    for i, bt in enumerate(batches):
        send_req(s, 0, 8, 100 + i, produce_body(t, 0, bt))
    offs = []
    for i in range(5):
        p = recv_resp(s, 0, 8, 100 + i)["Responses"][0]["PartitionResponses"][0]
        assert p["ErrorCode"] == ERR_NONE, p
        offs.append(p["BaseOffset"])
    assert offs == [offs[0] + 2 * i for i in range(5)], offs
    leo = end_offset(s, t, 0)
    for i, bt in enumerate(batches):
        send_req(s, 0, 8, 200 + i, produce_body(t, 0, bt))
    for i in range(5):
        p = recv_resp(s, 0, 8, 200 + i)["Responses"][0]["PartitionResponses"][0]
        assert (p["ErrorCode"], p["BaseOffset"]) == (ERR_NONE, offs[i]), (i, p)
    assert end_offset(s, t, 0) == leo
    # The oldest of six is no longer cached: Kafka's answer is OUT_OF_ORDER.
    assert produce(s, t, 0, idem_batch(pid, 1, 0, [b"e1-0"]))[0] == ERR_OUT_OF_ORDER
    state["raw"] = (t, pid, batches, offs, leo)
    s.close()


def after_restart_checks(b, state, what):
    s = b.connect()
    t, pid, batches, offs, leo = state["raw"]
    assert end_offset(s, t, 0) == leo, what
    for i, bt in enumerate(batches):
        assert produce(s, t, 0, bt) == (ERR_NONE, offs[i]), (what, i)
    assert end_offset(s, t, 0) == leo, what
    assert produce(s, t, 0, idem_batch(pid, 0, 99, [b"z"]))[0] == ERR_INVALID_PRODUCER_EPOCH
    err, new_pid, epoch = init_pid(s, 4)
    assert err == ERR_NONE and new_pid > max(state["pids"]), (what, new_pid, state["pids"])
    state["pids"].append(new_pid)
    # The producer goes on where it was.
    seq = state.get("next_seq", 11)
    nb = idem_batch(pid, 1, seq, [b"after-" + what.encode()])
    err, off = produce(s, t, 0, nb)
    assert (err, off) == (ERR_NONE, leo), (what, err, off)
    state["next_seq"] = seq + 1
    state["raw"] = (t, pid, batches[1:] + [nb], offs[1:] + [off], leo + 1)
    s.close()


# ---- confluent_kafka across restarts ------------------------------------------

def client_across_restarts(test_run, port, b):
    topic, n, parts = "idem-ck", 6000, 3
    create_topic(b.addr, topic, parts)
    errors, delivered = [], [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    p = Producer({"bootstrap.servers": b.addr, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "batch.num.messages": 50, "message.timeout.ms": 90000,
                  "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 500,
                  "socket.timeout.ms": 10000})
    done = threading.Event()
    stop_at = time.monotonic() + 240

    def run():
        for i in range(n):
            # At most 300 records unacknowledged: the kill below must land
            # mid-stream, not after a burst delivered the rest at once.
            while i - delivered[0] - len(errors) > 300 and time.monotonic() < stop_at:
                p.poll(0.05)
            while True:
                try:
                    p.produce(topic, value=b"%d" % i, partition=i % parts,
                              on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 100 == 0:
                p.poll(0)
            time.sleep(0.0005)
        p.flush(120)
        done.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    brokers = [b]
    for how in ("term", "kill"):
        deadline = time.monotonic() + 60
        want = delivered[0] + 1000
        while delivered[0] < want and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.05)
        # Mid-stream: records are still being produced (and some are in flight).
        assert not done.is_set() and delivered[0] < n, (how, delivered[0])
        if how == "term":
            assert brokers[-1].stop() == 0
        else:
            brokers[-1].kill()
        time.sleep(0.5)
        brokers.append(Broker(test_run, port))
    th.join(180)
    assert done.is_set(), "producer did not finish; delivered %d" % delivered[0]
    assert not errors, errors[:5]
    assert delivered[0] == n, delivered[0]
    seen = {q: [] for q in range(parts)}
    out = subprocess.run([KCAT, "-b", brokers[-1].addr, "-C", "-t", topic, "-e", "-q",
                          "-f", "%p %s\n"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.split("\n"):
        if line:
            q, v = line.split()
            seen[int(q)].append(int(v))
    for q in range(parts):
        want = list(range(q, n, parts))
        assert seen[q] == want, "partition %d: %d records, first difference at %s" % (
            q, len(seen[q]),
            next((k for k, (x, y) in enumerate(zip(seen[q], want)) if x != y), "the end"))
    text = "".join(x.text() for x in brokers)
    return brokers[-1], text.count("InitProducerId"), delivered[0]


def kafkajs_check(b):
    have_js = shutil.which("node") and os.path.isdir(os.path.join(HERE, "node_modules", "kafkajs"))
    if not have_js:
        print("SKIP kafkajs: node or kafkajs missing")
        return
    r = subprocess.run(["node", os.path.join(HERE, "broker_kafkajs_idempotent.js"), b.addr,
                        "idem-js", "30"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "kafkajs: rc %d\n%s\n%s" % (r.returncode, r.stderr[-3000:],
                                                         r.stdout[-2000:])
    res = [json.loads(l) for l in r.stdout.split("\n") if l.startswith("{")]
    assert res and all(x["error"] == 0 for x in res), res
    out = subprocess.run([KCAT, "-b", b.addr, "-C", "-t", "idem-js", "-e", "-q", "-f", "%s\n"],
                         capture_output=True, text=True, timeout=60)
    vals = sorted(int(v.split("-")[1]) for v in out.stdout.split())
    assert vals == list(range(60)), vals
    print("ok kafkajs: idempotent producer, two sends, read back once each")


def main():
    if Producer is None or KCAT is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3) and kcat")
        return 77
    with slp_broker.TestRun("slp-idem-") as test_run:
        port = slp_broker.free_port()
        state = {}
        b = Broker(test_run, port)
        create_topic(b.addr, "idem-raw", 1)
        raw_checks(b, state)
        print("ok raw: InitProducerId, duplicates, gaps, epochs, pipelined")
        assert b.stop() == 0
        b = Broker(test_run, port)
        after_restart_checks(b, state, "term")
        print("ok raw: producer state after SIGTERM")
        b.kill()
        b = Broker(test_run, port)
        after_restart_checks(b, state, "kill")
        print("ok raw: producer state after kill -9")
        b, inits, n = client_across_restarts(test_run, port, b)
        print("ok confluent_kafka: %d idempotent records across SIGTERM and kill -9, "
              "no duplicate, no gap, order kept" % n)
        kafkajs_check(b)
        assert b.stop() == 0
        print("ok")
        return 0


if __name__ == "__main__":
    sys.exit(main())
