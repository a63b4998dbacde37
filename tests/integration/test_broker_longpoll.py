# SPDX-License-Identifier: Apache-2.0
"""The Fetch long poll (issue 4): a parked Fetch is answered by the append that gives it
enough bytes, not by its max_wait_ms.

Every waiting Fetch here asks max_wait_ms=20000 and must be answered within 10 s of the
produce that satisfies it (generous for a loaded machine; the point is 20 s against at
once). The broker runs with dataplane.log.level=debug, whose "fetch parked" lines say
that a Fetch waits in the broker and what wakes it: each case waits for that line before
it produces (no sleeps), so it proves a wake-up, not an answer to data already there.

Cases, with raw frames (Fetch v4, Produce v3 with a v2 record batch built here) and with
a real client (confluent_kafka's Consumer on assign(), fetch.wait.max.ms=20000):
- one partition: the Fetch watches it, an append to it wakes the Fetch;
- 24 partitions (more than the 16 a parked Fetch watches one by one): any append wakes it
  (raw: the record comes from partition 20; the client: librdkafka's first Fetch may name
  only the partitions whose offsets it knew, so every partition gets a record);
- min_bytes above one batch: appends that leave it short wake it, it parks again ("fetch
  parked again" line) and sends nothing; the append that reaches min_bytes answers all;
  with max_wait_ms=5000 and too few bytes, the answer comes at max_wait (not before)
  and carries what arrived.
- every waiter slot (256) parked at once, on 260 connections: the 4 beyond are answered
  at once (empty); appends to the partitions in a shuffled order answer each parked Fetch
  with its own partition's record (slots leave the list of parked fetches out of order);
  twice, so the second round proves every slot came back (one writer only, see
  run_layout).
- librdkafka round trips: 20 produce -> consume round trips (linger.ms=0, acks=1, the
  consumer parked with fetch.wait.max.ms=20000) have a median under 100 ms (0.2-0.6 ms
  measured at load 12). A fresh producer's first record to a topic waits up to 1 s for
  librdkafka's scan of unknown topics, not for the broker: the cases ask for the topic's
  metadata first.
Layouts: one storage writer; then dataplane.storage.writers=2 (on two lcores when this
process may use two CPUs): the single-partition case runs on partitions of a 24-partition
topic until partitions of both writers were woken (the park line counts the partitions
of writers other than 0), and the other cases run there too.

Usage: test_broker_longpoll.py PATH_TO_SLIPSTREAM [one|two]... (run with /usr/bin/python3;
default both layouts).
Exit 77 (skipped) without confluent_kafka. Bounded: every wait has a deadline.
"""
import os
import re
import select
import socket
import random
import struct
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Consumer = None

MAX_WAIT_MS = 20000
WAKE_BOUND_S = 10.0  # an answer later than this was not woken by the append

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=768
dataplane.max.connections=320
dataplane.response.buffers=64
dataplane.lcores={lcores}
dataplane.net.workers={workers}
dataplane.storage.writers={writers}
dataplane.log.level=debug
num.partitions=1
log.dir={logs}
"""

# ---- wire helpers (Kafka's classic encodings; Fetch v4 and Produce v3 are not flexible)

_CRC32C = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for x in data:
        c = _CRC32C[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(values):
    """A magic 2 record batch of @values (no keys, no headers), CRC-32C filled in."""
    recs = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        recs += varint(len(body)) + body
    ts = int(time.time() * 1000)
    tail = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, -1, -1, -1, len(values)) + recs
    head = struct.pack(">ib", -1, 2)
    return (struct.pack(">qi", 0, len(head) + 4 + len(tail)) + head +
            struct.pack(">I", crc32c(tail)) + tail)


def s16(s):
    s = s.encode()
    return struct.pack(">h", len(s)) + s


def send_req(sock, api, version, corr, body):
    hdr = struct.pack(">hhi", api, version, corr) + s16("longpoll")
    sock.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)


def recv_exact(sock, n, deadline):
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete response in time")
        sock.settimeout(left)
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return out


def recv_frame(sock, deadline):
    n = struct.unpack(">i", recv_exact(sock, 4, deadline))[0]
    return recv_exact(sock, n, deadline)


def nothing_to_read(sock):
    r, _, _ = select.select([sock], [], [], 0)
    return not r


def send_fetch(sock, corr, topic, parts, min_bytes=1, max_wait_ms=MAX_WAIT_MS):
    """Fetch v4 of @parts [(partition, offset)] of @topic."""
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 8 << 20, 0)
    body += struct.pack(">i", 1) + s16(topic) + struct.pack(">i", len(parts))
    for p, off in parts:
        body += struct.pack(">iqi", p, off, 1 << 20)
    send_req(sock, 1, 4, corr, body)


def parse_fetch(frame, corr):
    """{partition: (error, high watermark, records bytes)} of a Fetch v4 response."""
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, frame, pos)
        pos += struct.calcsize(fmt)
        return v

    got_corr, _throttle, ntopics = take(">iii")
    assert got_corr == corr, (got_corr, corr)
    out = {}
    for _ in range(ntopics):
        nlen = take(">h")[0]
        pos += nlen
        for _ in range(take(">i")[0]):
            p, err, hw, _lso, naborted = take(">ihqqi")
            pos += 16 * max(naborted, 0)
            rlen = take(">i")[0]
            recs = frame[pos:pos + max(rlen, 0)]
            pos += max(rlen, 0)
            out[p] = (err, hw, recs)
    return out


def batch_records(recs):
    """Records in the whole batches of @recs."""
    n = 0
    pos = 0
    while len(recs) - pos >= 61:
        blen = struct.unpack_from(">i", recs, pos + 8)[0]
        if pos + 12 + blen > len(recs):
            break
        n += struct.unpack_from(">i", recs, pos + 57)[0]
        pos += 12 + blen
    return n


def produce(b, topic, partition, values):
    """Produce v3, acks=1, one batch of @values; its base offset (error 0 required)."""
    s = b.connect()
    try:
        batch = record_batch(values)
        body = (struct.pack(">hhi", -1, 1, 10000) + struct.pack(">i", 1) + s16(topic) +
                struct.pack(">iii", 1, partition, len(batch)) + batch)
        send_req(s, 0, 3, 7, body)
        r = recv_frame(s, time.monotonic() + 30)
        corr, ntopics = struct.unpack_from(">ii", r, 0)
        nlen = struct.unpack_from(">h", r, 8)[0]
        pos = 10 + nlen
        nparts, p, err, base = struct.unpack_from(">iihq", r, pos)
        assert (corr, ntopics, nparts, p, err) == (7, 1, 1, partition, 0), \
            (corr, ntopics, nparts, p, err)
        return base
    finally:
        s.close()


# ---- synchronisation on the broker's debug lines

PARK = re.compile(r"fetch parked: (?:watches (\d+) partition\(s\), (\d+) of writers other "
                  r"than 0|more than \d+ partitions, any append wakes it)")
PARK_AGAIN = "fetch parked again:"


def parks(b):
    return PARK.findall(b.text())


def wait_parks(b, before, what, timeout=30, many=False):
    """Wait for a park line after the first @before (@many: of a fetch watching more than
    16 partitions); return it (the groups of PARK)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for park in parks(b)[before:]:
            if not many or park[0] == "":
                return park
        time.sleep(0.02)
    fail(b, "%s: no 'fetch parked' line in %d s" % (what, timeout))


def wait_count(b, needle, before, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b.text().count(needle) > before:
            return
        time.sleep(0.02)
    fail(b, "%s: no '%s' line in %d s" % (what, needle, timeout))


def fail(b, msg):
    """The test fails (slp_broker.TestRun prints @b's log tail)."""
    raise AssertionError(msg)


# ---- the cases

def raw_wake(b, topic, partition, parts, what):
    """Park a Fetch of @parts at their ends, produce one record to @partition.

    @return the park line's groups (watched partitions, of other writers)."""
    s = b.connect()
    try:
        before = len(parks(b))
        t_fetch = time.monotonic()
        send_fetch(s, 11, topic, parts)
        park = wait_parks(b, before, what, many=len(parts) > 16)
        if not nothing_to_read(s):
            fail(b, "%s: the parked fetch answered before any append" % what)
        value = ("%s-%d-%d" % (topic, partition, time.monotonic_ns())).encode()
        t0 = time.monotonic()
        produce(b, topic, partition, [value])
        r = parse_fetch(recv_frame(s, t0 + MAX_WAIT_MS / 1000.0 + 30), 11)
        took = time.monotonic() - t0
        if took >= WAKE_BOUND_S:
            fail(b, "%s: answered %.1f s after the append (max_wait %d ms): not woken by it" % (
                what, took, MAX_WAIT_MS))
        err, hw, recs = r[partition]
        if err != 0 or value not in recs or batch_records(recs) != 1:
            fail(b, "%s: partition %d answered error %d, hw %d, %d record(s)" % (
                what, partition, err, hw, batch_records(recs)))
        print("%s: answered %.3f s after the append (fetch sent %.3f s before it)" % (
            what, took, t0 - t_fetch))
        return park
    finally:
        s.close()


WAITER_SLOTS = 256  # FETCH_WAITERS in dataplane/broker/dp_fetch.c


def raw_all_slots(b, topic, partitions, what, rounds=2):
    """Park a Fetch in every waiter slot and 4 more; wake them partition by partition."""
    rng = random.Random(14)
    for rnd in range(rounds):
        e = ends(b, topic, partitions)
        socks = []
        try:
            before = len(parks(b))
            for i in range(WAITER_SLOTS + 4):
                s = b.connect()
                socks.append(s)
                send_fetch(s, 1000 + i, topic, [(i % partitions, e[i % partitions])])
            deadline = time.monotonic() + 60
            while len(parks(b)) - before < WAITER_SLOTS and time.monotonic() < deadline:
                time.sleep(0.05)
            parked = len(parks(b)) - before
            if parked != WAITER_SLOTS:
                fail(b, "%s: %d fetches parked, want %d" % (what, parked, WAITER_SLOTS))
            # The ones beyond the slots answer at once, with nothing.
            over, waiting = [], {}
            deadline = time.monotonic() + 10
            for i, s in enumerate(socks):
                r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic())
                                        if len(over) < 4 else 0)
                if r:
                    rec = parse_fetch(recv_frame(s, time.monotonic() + 10), 1000 + i)
                    if batch_records(rec[i % partitions][2]) != 0:
                        fail(b, "%s: fetch %d answered with records before any append" % (
                            what, i))
                    over.append(i)
                else:
                    waiting[i] = s
            if len(over) != 4:
                fail(b, "%s: %d fetches answered at once, want 4" % (what, len(over)))
            order = list(range(partitions))
            rng.shuffle(order)
            for p in order:
                value = ("%s-r%d-p%d" % (topic, rnd, p)).encode()
                produce(b, topic, p, [value])
                for i in [i for i in waiting if i % partitions == p]:
                    rec = parse_fetch(recv_frame(waiting.pop(i), time.monotonic() + 30),
                                      1000 + i)
                    err, _, recs = rec[p]
                    if err != 0 or value not in recs or batch_records(recs) != 1:
                        fail(b, "%s: fetch %d (partition %d): error %d, %d record(s)" % (
                            what, i, p, err, batch_records(recs)))
                for i, s in waiting.items():
                    if not nothing_to_read(s):
                        fail(b, "%s: fetch %d (partition %d) answered by an append to %d" % (
                            what, i, i % partitions, p))
            print("%s: round %d: %d parked, 4 answered at once, all woken by their own "
                  "partition in the order %s" % (what, rnd + 1, WAITER_SLOTS, order[:6]))
        finally:
            for s in socks:
                s.close()


def ends(b, topic, partitions):
    """Log end offsets of @topic's partitions (a Fetch at offset 0, max_wait 0)."""
    s = b.connect()
    try:
        send_fetch(s, 5, topic, [(p, 0) for p in range(partitions)], max_wait_ms=0)
        r = parse_fetch(recv_frame(s, time.monotonic() + 30), 5)
        return {p: r[p][1] for p in range(partitions)}
    finally:
        s.close()


def raw_min_bytes(b, topic):
    what = topic + " min_bytes"
    one = record_batch([b"m" * 200])
    end = ends(b, topic, 1)[0]
    s = b.connect()
    try:
        # Three batches like `one` reach min_bytes, two do not.
        before = len(parks(b))
        send_fetch(s, 21, topic, [(0, end)], min_bytes=2 * len(one) + 1)
        wait_parks(b, before, what)
        for k in range(2):
            again = b.text().count(PARK_AGAIN)
            produce(b, topic, 0, [b"m" * 200])
            wait_count(b, PARK_AGAIN, again, "%s: append %d" % (what, k + 1))
            if not nothing_to_read(s):
                fail(b, "%s: answered with %d batch(es), below min_bytes" % (what, k + 1))
        t0 = time.monotonic()
        produce(b, topic, 0, [b"m" * 200])
        r = parse_fetch(recv_frame(s, t0 + MAX_WAIT_MS / 1000.0 + 30), 21)
        took = time.monotonic() - t0
        if took >= WAKE_BOUND_S:
            fail(b, "%s: answered %.1f s after the append reaching min_bytes" % (what, took))
        if r[0][0] != 0 or batch_records(r[0][2]) != 3:
            fail(b, "%s: error %d, %d record(s), want 3" % (
                what, r[0][0], batch_records(r[0][2])))
        print("%s: parked twice below min_bytes, answered %.3f s after the third append" % (
            what, took))

        # Too few bytes until max_wait_ms: answered then, with what there is.
        what = topic + " max_wait"
        before = len(parks(b))
        t_send = time.monotonic()
        # 5 s: the produce below must land before max_wait (1 s was missed at load 12).
        send_fetch(s, 22, topic, [(0, end + 3)], min_bytes=1 << 20, max_wait_ms=5000)
        wait_parks(b, before, what)
        again = b.text().count(PARK_AGAIN)
        produce(b, topic, 0, [b"w" * 100])
        wait_count(b, PARK_AGAIN, again, what)
        r = parse_fetch(recv_frame(s, time.monotonic() + 60), 22)
        took = time.monotonic() - t_send
        if took < 4.95:
            fail(b, "%s: answered after %.3f s, before max_wait_ms=5000" % (what, took))
        if r[0][0] != 0 or batch_records(r[0][2]) != 1:
            fail(b, "%s: error %d, %d record(s), want 1" % (
                what, r[0][0], batch_records(r[0][2])))
        print("%s: answered at max_wait (%.3f s) with the record below min_bytes" % (what, took))
    finally:
        s.close()


def client_wake(b, topic, partitions, what):
    """confluent_kafka Consumer at the end of every partition, parked; a produce.

    librdkafka fetches the partitions whose offsets it knows, so its first parked Fetch
    may name only some of them (and it adds no partition to a Fetch in flight): the
    consumer starts at explicit end offsets, and one record goes to every partition;
    whichever the parked Fetch names, an append wakes it."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "longpoll-" + topic,
                  "enable.auto.commit": False, "fetch.wait.max.ms": MAX_WAIT_MS,
                  "fetch.min.bytes": 1, "socket.timeout.ms": 60000})
    p = Producer({"bootstrap.servers": b.addr, "acks": 1, "linger.ms": 0})
    try:
        e = ends(b, topic, partitions)
        before = len(parks(b))
        c.assign([TopicPartition(topic, q, e[q]) for q in range(partitions)])
        deadline = time.monotonic() + 30
        while len(parks(b)) <= before:
            m = c.poll(0.05)
            if m is not None:
                fail(b, "%s: consumer got %s before any produce" % (
                    what, m.error() or "a record"))
            if time.monotonic() > deadline:
                fail(b, "%s: the consumer's fetch never parked" % what)
        park = parks(b)[before]
        value = ("client-%s-%d" % (what, time.monotonic_ns())).encode()
        # A new producer's first produce to a topic not in its metadata cache waits for
        # librdkafka's once-a-second scan of unknown topics (librdkafka #3202,
        # confluent-kafka-python #1414; the same against Apache Kafka): ask first.
        p.list_topics(topic, timeout=30)
        t0 = time.monotonic()
        for q in range(partitions):
            p.produce(topic, value=value, partition=q)
        if p.flush(30) != 0:
            fail(b, "%s: produce not delivered" % what)
        got = None
        while time.monotonic() - t0 < WAKE_BOUND_S + 5:
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                fail(b, "%s: consumer error %s" % (what, m.error()))
            got = m
            break
        took = time.monotonic() - t0
        if got is None or took >= WAKE_BOUND_S:
            fail(b, "%s: the record reached the consumer after %.1f s (fetch.wait.max.ms "
                 "%d): not woken by the append" % (what, took, MAX_WAIT_MS))
        if got.value() != value:
            fail(b, "%s: got %r from partition %d" % (what, got.value(), got.partition()))
        print("%s: consumer got a record %.3f s after the produce (its parked fetch %s)" % (
            what, took, "watched %s partition(s)" % park[0] if park[0] else
            "named more than 16 partitions"))
    finally:
        c.close()


ROUND_TRIPS = 20
ROUND_TRIP_MEDIAN_S = 0.1  # milliseconds expected; a wake at fetch.wait.max.ms is 20 s


def client_round_trips(b, topic, what):
    """Produce -> consume round trips through librdkafka: linger.ms=0, acks=1, a consumer
    parked with fetch.wait.max.ms=20000. Each record must come from the append's wake-up,
    so the median of ROUND_TRIPS must be far below a second (a loaded machine's thread
    stalls may delay a few; the median bounds what a Kafka user measuring e2e sees)."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "rt-" + topic,
                  "enable.auto.commit": False, "fetch.wait.max.ms": MAX_WAIT_MS,
                  "fetch.min.bytes": 1, "socket.timeout.ms": 60000})
    p = Producer({"bootstrap.servers": b.addr, "acks": 1, "linger.ms": 0})
    try:
        p.list_topics(topic, timeout=30)  # see client_wake: librdkafka's topic scan
        c.assign([TopicPartition(topic, 0, ends(b, topic, 1)[0])])
        took = []
        for i in range(ROUND_TRIPS + 1):  # the first (connections, offsets) not counted
            value = ("rt-%d-%d" % (i, time.monotonic_ns())).encode()
            t0 = time.monotonic()
            p.produce(topic, value=value, partition=0)
            p.poll(0)
            got = None
            while got is None and time.monotonic() - t0 < WAKE_BOUND_S + 20:
                m = c.poll(0.005)
                p.poll(0)
                if m is None:
                    continue
                if m.error():
                    fail(b, "%s: consumer error %s" % (what, m.error()))
                if m.value() != value:
                    fail(b, "%s: got %r, want %r" % (what, m.value(), value))
                got = m
            if got is None:
                fail(b, "%s: round trip %d: no record in %d s" % (what, i, WAKE_BOUND_S + 20))
            if i > 0:
                took.append(time.monotonic() - t0)
        if p.flush(30) != 0:
            fail(b, "%s: produce not delivered" % what)
        took.sort()
        median = (took[ROUND_TRIPS // 2 - 1] + took[ROUND_TRIPS // 2]) / 2
        if median >= ROUND_TRIP_MEDIAN_S:
            fail(b, "%s: median round trip %.1f ms (bound %.0f ms): %s" % (
                what, median * 1e3, ROUND_TRIP_MEDIAN_S * 1e3,
                " ".join("%.1f" % (t * 1e3) for t in took)))
        print("%s: %d produce->consume round trips, median %.2f ms, max %.1f ms" % (
            what, ROUND_TRIPS, median * 1e3, took[-1] * 1e3))
    finally:
        c.close()


def run_layout(name, run, lcores, workers, writers):
    logs = run.path(name)
    os.makedirs(logs)
    b = run.broker(SLIPSTREAM, CONFIG.format(lcores=lcores, workers=workers,
                                             writers=writers, logs=logs))
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic("lp-one", 1, 1), NewTopic("lp-many", 24, 1),
                                  NewTopic("lp-min", 1, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)
    raw_wake(b, "lp-one", 0, [(0, 0)], name + ": one partition, raw")
    raw_wake(b, "lp-many", 20, [(p, 0) for p in range(24)],
             name + ": 24 partitions, raw")
    raw_min_bytes(b, "lp-min")
    if writers == 1:
        # One writer only: with two net workers each hands the broker's lcore at most
        # dataplane.response.buffers (64) requests at once (dp_hop's descriptors), so 128
        # park and the rest wait in their connections until those are answered.
        raw_all_slots(b, "lp-many", 24, name + ": every waiter slot")
    client_wake(b, "lp-one", 1, name + ": one partition, confluent_kafka")
    client_wake(b, "lp-many", 24, name + ": 24 partitions, confluent_kafka")
    client_round_trips(b, "lp-one", name + ": confluent_kafka")
    if writers > 1:
        # Single-partition long polls on partitions of both writers.
        seen = {False: 0, True: 0}
        e = ends(b, "lp-many", 24)
        for p in range(24):
            park = raw_wake(b, "lp-many", p, [(p, e[p])],
                            "%s: partition %d of lp-many alone, raw" % (name, p))
            seen[park[1] == "1"] += 1
            if seen[False] >= 2 and seen[True] >= 2:
                break
        if seen[True] == 0 or seen[False] == 0:
            fail(b, "%s: partitions woken per owner (writer 0, others): %s" % (
                name, seen))
        print("%s: woken single-partition fetches: %d of writer 0, %d of writer 1" % (
            name, seen[False], seen[True]))
    rc = b.stop(30)
    if rc != 0 or "every log closed cleanly" not in b.text():
        fail(b, "%s: SIGTERM: exit %s" % (name, rc))


def main():
    if Consumer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    cpus = sorted(os.sched_getaffinity(0))
    only = sys.argv[2:]  # layouts to run: "one", "two" (default both)
    with slp_broker.TestRun("slp-longpoll-") as run:
        if not only or "one" in only:
            run_layout("one writer", run, "%d" % cpus[0], 1, 1)
        if only and "two" not in only:
            pass
        elif len(cpus) >= 2:
            run_layout("two writers, two lcores", run, "%d,%d" % (cpus[0], cpus[1]), 2, 2)
        else:
            run_layout("two writers, one lcore", run, "%d" % cpus[0], 1, 2)
        print("OK")
        return 0


if __name__ == "__main__":
    sys.exit(main())
