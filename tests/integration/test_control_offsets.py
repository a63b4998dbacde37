# SPDX-License-Identifier: Apache-2.0
"""Committed-offset retention and FindCoordinator per listener.

Starts `slipstream` and `slipstream-control` on two listeners,
PLAINTEXT://127.0.0.1:P and INTERNAL://127.0.0.1:I (two free ports,
slp_broker.free_port()), the second advertised as localhost:I, with offsets.retention.minutes=1 (the smallest
Kafka allows) and offsets.retention.check.interval.ms=500.

FindCoordinator (raw frames, v0, v1, v3 and v4) and Metadata answer the
endpoint of the listener the request came in on: 127.0.0.1:P on
PLAINTEXT, localhost:I on INTERNAL (Kafka's rule with several
listeners), and
confluent-kafka commits and reads offsets through either.

Retention (KIP-211), on one timeline (T0 = the first commit):
- "ret-standalone" (offsets committed outside any generation) keeps its
  offsets at T0+50 s and loses them between T0+60 s and T0+90 s; the group
  is gone from ListGroups then;
- "ret-left" (a subscribed member that committed at once and left at about
  T0+15 s) still has its offsets when ret-standalone's expire: its clock
  starts when the group became empty; they expire later;
- "ret-late" (committed at about T0+35 s) is still there after both;
- "ret-live" (a member still consuming) keeps its offsets throughout;
- __consumer_offsets holds tombstones (null values) for every expired
  OffsetCommitKey and for the two expired groups' GroupMetadataKey;
- after a restart of the control process (which replays the topic) the
  expired offsets stay gone and the others are there.

Over DPDK (SLP_TRANSPORT=dpdk, run by test_broker_dpdk.py) both listeners
are on the port's address 198.18.0.2 and both are advertised there (the
DPDK transport advertises its address for loopback hosts and localhost), so
FindCoordinator and Metadata are checked per listener by port; the retention
timeline is not run again there (it does not depend on the transport and
takes 90 s).

Usage: test_control_offsets.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL
Exit 77 (skipped) without confluent_kafka. It takes about 90 s (the retention
cannot be shorter than a minute).
"""
import os
import re
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slp_broker  # noqa: E402

try:
    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Consumer = None

# Two listeners on ports of their own (several listeners cannot take port 0: the test
# must know which is which).
PLAIN_PORT = slp_broker.free_port()
INTERNAL_PORT = PLAIN_PORT
while INTERNAL_PORT == PLAIN_PORT:
    INTERNAL_PORT = slp_broker.free_port()
# Where clients connect, and the host each listener advertises.
HOST = slp_broker.DPDK_HOST if slp_broker.DPDK else "127.0.0.1"
INTERNAL_HOST = slp_broker.DPDK_HOST if slp_broker.DPDK else "localhost"
TOPIC = "ret-topic"
OFFSETS_PARTITIONS = 4

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:%d,INTERNAL://127.0.0.1:%d
advertised.listeners=PLAINTEXT://127.0.0.1:%d,INTERNAL://localhost:%d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
storage.cache.chunks=48
log.dir=%%s
log.segment.bytes=1048576
offsets.topic.num.partitions=%d
offsets.retention.minutes=1
offsets.retention.check.interval.ms=500
group.initial.rebalance.delay.ms=0
control.metrics.listen=127.0.0.1:0
""" % (PLAIN_PORT, INTERNAL_PORT, PLAIN_PORT, INTERNAL_PORT, OFFSETS_PARTITIONS)


# ---- raw FindCoordinator ----------------------------------------------------

def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def read_uvarint(buf, pos):
    shift = n = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def call(port, key, ver, body, flexible):
    s = socket.create_connection((HOST, port), timeout=10)
    try:
        cid = b"offsets-test"
        hdr = struct.pack(">hhih", key, ver, 7, len(cid)) + cid + (b"\x00" if flexible else b"")
        frame = hdr + body
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            d = s.recv(65536)
            assert d, "connection closed"
            data += d
        resp = data[4:]
        assert struct.unpack(">i", resp[:4])[0] == 7
        return resp[5:] if flexible else resp[4:]
    finally:
        s.close()


def find_coordinator(port, ver, group):
    """(error, node, host, port) of FindCoordinator v0-4 for group on a listener port."""
    g = group.encode()
    if ver == 0:
        r = call(port, 10, 0, struct.pack(">h", len(g)) + g, False)
        err, node, hl = struct.unpack(">hih", r[:8])
        return err, node, r[8:8 + hl].decode(), struct.unpack(">i", r[8 + hl:12 + hl])[0]
    if ver < 3:
        r = call(port, 10, ver, struct.pack(">h", len(g)) + g + b"\x00", False)
        _thr, err, ml = struct.unpack(">ihh", r[:8])
        pos = 8 + max(ml, 0)
        node, hl = struct.unpack(">ih", r[pos:pos + 6])
        host = r[pos + 6:pos + 6 + hl].decode()
        return err, node, host, struct.unpack(">i", r[pos + 6 + hl:pos + 10 + hl])[0]
    if ver == 3:
        r = call(port, 10, 3, uvarint(len(g) + 1) + g + b"\x00" + b"\x00", True)
        _thr, err = struct.unpack(">ih", r[:6])
        ml, pos = read_uvarint(r, 6)
        pos += max(ml - 1, 0)
        node = struct.unpack(">i", r[pos:pos + 4])[0]
        hl, pos = read_uvarint(r, pos + 4)
        host = r[pos:pos + hl - 1].decode()
        return err, node, host, struct.unpack(">i", r[pos + hl - 1:pos + hl + 3])[0]
    r = call(port, 10, ver, b"\x00" + uvarint(2) + uvarint(len(g) + 1) + g + b"\x00", True)
    n, pos = read_uvarint(r, 4)
    assert n == 2, n
    kl, pos = read_uvarint(r, pos)
    assert r[pos:pos + kl - 1] == g
    pos += kl - 1
    node = struct.unpack(">i", r[pos:pos + 4])[0]
    hl, pos = read_uvarint(r, pos + 4)
    host = r[pos:pos + hl - 1].decode()
    pos += hl - 1
    cport, err = struct.unpack(">ih", r[pos:pos + 6])
    return err, node, host, cport


def check_find_coordinator():
    for ver in (0, 1, 3, 4):
        for port, host in ((PLAIN_PORT, HOST), (INTERNAL_PORT, INTERNAL_HOST)):
            got = find_coordinator(port, ver, "ret-standalone")
            assert got == (0, 1, host, port), (ver, port, got)
    print("find_coordinator: v0/v1/v3/v4 answer %s:%d on PLAINTEXT and "
          "%s:%d on INTERNAL" % (HOST, PLAIN_PORT, INTERNAL_HOST, INTERNAL_PORT))
    # Metadata (and so the client's view of broker 1) follows the same rule.
    for port, host in ((PLAIN_PORT, HOST), (INTERNAL_PORT, INTERNAL_HOST)):
        a = AdminClient({"bootstrap.servers": "%s:%d" % (HOST, port)})
        brokers = a.list_topics(timeout=15).brokers
        assert {k: (v.host, v.port) for k, v in brokers.items()} == {1: (host, port)}, brokers
        del a
    print("metadata: broker 1 is %s:%d on PLAINTEXT and %s:%d on INTERNAL" % (
        HOST, PLAIN_PORT, INTERNAL_HOST, INTERNAL_PORT))


# ---- offsets -----------------------------------------------------------------

def consumer(bs, group, **kw):
    conf = {"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}
    conf.update(kw)
    return Consumer(conf)


def commit(bs, group, offsets):
    c = consumer(bs, group)
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in offsets.items()],
             asynchronous=False)
    c.close()


def committed(bs, group):
    """{partition: offset} (-1001 = none) from OffsetFetch."""
    c = consumer(bs, group)
    try:
        got = c.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


NONE = {0: -1001, 1: -1001, 2: -1001}


class LiveMember(threading.Thread):
    """A subscribed member: reads, commits {0: 1, 1: 2, 2: 3} once assigned, leaves on stop()."""

    def __init__(self, bs, group):
        super().__init__(daemon=True)
        self.c = consumer(bs, group, **{"session.timeout.ms": 30000})
        self.assigned = threading.Event()
        self.committed = threading.Event()
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            self.c.subscribe([TOPIC], on_assign=lambda c, p: self.assigned.set())
            while not self.halt.is_set():
                self.c.poll(0.2)
                if self.assigned.is_set() and not self.committed.is_set():
                    self.c.commit(offsets=[TopicPartition(TOPIC, p, p + 1) for p in range(3)],
                                  asynchronous=False)
                    self.committed.set()
            self.c.close()
        except Exception as e:  # reported by the main thread
            self.error = e

    def stop(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error


def offsets_topic_records(bs):
    """Every (key bytes, value bytes or None) in __consumer_offsets, all partitions."""
    c = consumer(bs, "ret-reader")
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition("__consumer_offsets", p),
                                           timeout=10)[1] for p in range(OFFSETS_PARTITIONS)}
        c.assign([TopicPartition("__consumer_offsets", p, OFFSET_BEGINNING)
                  for p in range(OFFSETS_PARTITIONS)])
        out, pos = [], {p: 0 for p in ends}
        deadline = time.monotonic() + 30
        while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append((m.key(), m.value()))
            pos[m.partition()] = m.offset() + 1
        assert all(pos[p] >= ends[p] for p in ends), (pos, ends)
        return out
    finally:
        c.close()


def decode_key(k):
    ver = struct.unpack(">h", k[:2])[0]
    gl = struct.unpack(">h", k[2:4])[0]
    group = k[4:4 + gl].decode()
    if ver >= 2:
        return ("group", group)
    tl = struct.unpack(">h", k[4 + gl:6 + gl])[0]
    topic = k[6 + gl:6 + gl + tl].decode()
    return ("offset", group, topic, struct.unpack(">i", k[6 + gl + tl:10 + gl + tl])[0])


def check_tombstones(bs, groups):
    recs = [(decode_key(k), v) for k, v in offsets_topic_records(bs) if k is not None]
    for g in groups:
        for p in range(3):
            key = ("offset", g, TOPIC, p)
            vals = [v for k, v in recs if k == key]
            assert vals and vals[0] is not None and vals[-1] is None, (key, vals)
        gvals = [v for k, v in recs if k == ("group", g)]
        assert gvals and gvals[-1] is None, (g, gvals)
    for k, v in recs:  # nothing else was expired
        assert v is not None or k[1] in groups, (k, v)
    print("tombstones: offsets and group metadata of %s" % ", ".join(groups))


def groups_listed(bs):
    a = AdminClient({"bootstrap.servers": bs})
    return {g.id for g in a.list_groups(timeout=15)}


def wait_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def poll_until(what, fn, deadline):
    while time.monotonic() < deadline:
        if fn():
            return time.monotonic()
        time.sleep(0.25)
    raise AssertionError("timed out waiting for " + what)


def main():
    if len(sys.argv) < 3:
        print("usage: test_control_offsets.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL")
        return 2
    if Consumer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("ctl-offsets-") as run:
        b = run.broker(sys.argv[1], CONFIG % run.path("logs"), control=sys.argv[2])
        live = None
        try:
            assert re.search(r"listening on INTERNAL://%s:%d" % (re.escape(HOST), INTERNAL_PORT),
                             b.text())
            bs = "%s:%d" % (HOST, PLAIN_PORT)
            bs_internal = "%s:%d" % (HOST, INTERNAL_PORT)
            admin = AdminClient({"bootstrap.servers": bs})
            admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[
                TOPIC].result(15)
            del admin
            p = Producer({"bootstrap.servers": bs})
            for i in range(30):
                p.produce(TOPIC, value=b"r%d" % i, partition=i % 3)
            assert p.flush(30) == 0
            del p

            t0 = time.monotonic()
            commit(bs, "ret-standalone", {0: 5, 1: 6, 2: 7})
            left = consumer(bs, "ret-left")
            left.subscribe([TOPIC])
            deadline = time.monotonic() + 30
            while not left.assignment() and time.monotonic() < deadline:
                left.poll(0.2)
            assert len(left.assignment()) == 3
            left.commit(offsets=[TopicPartition(TOPIC, q, 8) for q in range(3)], asynchronous=False)
            live = LiveMember(bs, "ret-live")
            live.start()
            assert live.committed.wait(30), live.error
            check_find_coordinator()
            # Both listeners serve the group APIs (through the coordinator each one names).
            assert committed(bs_internal, "ret-standalone") == {0: 5, 1: 6, 2: 7}
            commit(bs_internal, "ret-internal", {0: 1, 1: 1, 2: 1})
            assert committed(bs, "ret-internal") == {0: 1, 1: 1, 2: 1}
            if slp_broker.DPDK:
                live.stop()
                live = None
                print("OK (over DPDK: listeners and group APIs; retention runs over kernel "
                      "sockets only)")
                return 0

            wait_until(t0 + 15)
            left.close()  # LeaveGroup: ret-left is Empty from here
            t_left = time.monotonic()
            wait_until(t0 + 35)
            t_late = time.monotonic()
            commit(bs, "ret-late", {0: 2, 1: 2, 2: 2})

            wait_until(t0 + 50)
            assert committed(bs, "ret-standalone") == {0: 5, 1: 6, 2: 7}
            assert "ret-standalone" in groups_listed(bs)
            t_exp = poll_until("ret-standalone's offsets to expire",
                               lambda: committed(bs, "ret-standalone") == NONE, t0 + 90)
            assert t_exp >= t0 + 59.5, t_exp - t0
            print("retention: ret-standalone expired %.1f s after its commit" % (t_exp - t0))
            assert committed(bs, "ret-left") == {0: 8, 1: 8, 2: 8}
            assert committed(bs, "ret-late") == {0: 2, 1: 2, 2: 2}
            assert committed(bs, "ret-live") == {0: 1, 1: 2, 2: 3}
            assert "ret-standalone" not in groups_listed(bs)
            t_exp2 = poll_until("ret-left's offsets to expire",
                                lambda: committed(bs, "ret-left") == NONE, t_left + 90)
            assert t_exp2 >= t_left + 59.5, t_exp2 - t_left
            print("retention: ret-left expired %.1f s after it became empty" % (t_exp2 - t_left))
            assert time.monotonic() < t_late + 59.5, "too slow to check ret-late before its expiry"
            assert committed(bs, "ret-late") == {0: 2, 1: 2, 2: 2}
            assert committed(bs, "ret-live") == {0: 1, 1: 2, 2: 3}
            check_tombstones(bs, ["ret-standalone", "ret-internal", "ret-left"])

            b.stop_control()
            b.start_control()
            assert committed(bs, "ret-standalone") == NONE
            assert committed(bs, "ret-left") == NONE
            assert committed(bs, "ret-live") == {0: 1, 1: 2, 2: 3}
            if time.monotonic() < t_late + 59.5:
                assert committed(bs, "ret-late") == {0: 2, 1: 2, 2: 2}
            live.stop()
            live = None
            print("OK")
            return 0
        finally:
            if live is not None:
                live.halt.set()
                live.join(30)


if __name__ == "__main__":
    sys.exit(main())
