# SPDX-License-Identifier: Apache-2.0
"""Consumer groups and committed offsets through the control process.

Starts `slipstream` and `slipstream-control` on 127.0.0.1 (a port the kernel
picks, log directory and unix sockets under a temporary directory) and runs
real clients against them:

- confluent-kafka-python groups of 1 to 6 members on a 4-partition topic,
  each member its own process: balanced, disjoint assignments, members
  beyond the partition count idle; a member killed with SIGKILL is evicted
  at its session timeout and an idle member takes its partitions; a graceful
  close (LeaveGroup) rebalances well before the session timeout;
- static membership (group.instance.id): a member restarted within its
  session timeout gets its partitions back and nobody else rebalances;
- cooperative-sticky: a third member joins two, partitions move
  incrementally (the members keep what they need not give up);
- at-least-once: commit after processing, SIGKILL the consumer mid-stream,
  restart: every message seen, offsets resume from the last commit;
- two groups on one topic keep independent offsets;
- the control process killed (SIGKILL) mid-run: group requests answer
  COORDINATOR_NOT_AVAILABLE at once in their own shapes (raw frames), produce
  keeps working, the consumer carries on once it is back, no committed offset
  lost;
- the dataplane restarted while the control process runs: both reconnect,
  committed offsets kept, the group carries on;
- both processes restarted on the same directory: committed offsets kept;
- kcat -G, kafka-python and kafkajs group consumers (each skipped with a
  message when the client is not installed).

Usage: test_control_groups.py PATH_TO_SLIPSTREAM [PATH_TO_SLIPSTREAM_CONTROL] [test_...]
(the control binary defaults to the build's control/slipstream-control; naming
test functions runs only those).
(Internally also: test_control_groups.py --member JSON, one group member.)
Every wait is bounded; the whole test takes about a minute.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SESSION_MS = 6000

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=4
storage.cache.chunks=48
log.dir=%s
log.segment.bytes=1048576
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=200
group.min.session.timeout.ms=1000
"""


def member_main(cfg):
    """One group member: prints ASSIGN/REVOKE/MSG lines, commits each message."""
    from confluent_kafka import Consumer
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    conf = {
        "bootstrap.servers": cfg["bs"], "group.id": cfg["group"],
        "session.timeout.ms": cfg.get("session_ms", SESSION_MS),
        "heartbeat.interval.ms": 300, "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": cfg.get("strategy", "range"),
    }
    if cfg.get("instance"):
        conf["group.instance.id"] = cfg["instance"]
    c = Consumer(conf)
    coop = cfg.get("strategy") == "cooperative-sticky"
    current = set()

    def on_assign(cons, parts):
        nonlocal current
        got = {p.partition for p in parts}
        current = current | got if coop else got
        print("ASSIGN", json.dumps(sorted(current), separators=(",", ":")), json.dumps(sorted(got), separators=(",", ":")), flush=True)

    def on_revoke(cons, parts):
        nonlocal current
        lost = {p.partition for p in parts}
        current = current - lost if coop else set()
        print("REVOKE", json.dumps(sorted(current), separators=(",", ":")), json.dumps(sorted(lost), separators=(",", ":")), flush=True)

    c.subscribe([cfg["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    while not stop:
        m = c.poll(0.1)
        if m is None or m.error():
            continue
        print("MSG", m.partition(), m.offset(), m.value().decode(), flush=True)
        if cfg.get("commit", True):
            try:
                c.commit(message=m, asynchronous=False)
            except Exception as e:  # a rebalance in between: the next message retries
                print("COMMITFAIL", e, flush=True)
    c.close()
    print("CLOSED", flush=True)


class Member:
    def __init__(self, bs, group, topic, **kw):
        self.cfg = dict(bs=bs, group=group, topic=topic, **kw)
        self.lines = []
        self.proc = subprocess.Popen([sys.executable, __file__, "--member", json.dumps(self.cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, kind):
        return [l for l in list(self.lines) if l.startswith(kind + " ")]

    def assignment(self):
        ev = [l for l in list(self.lines) if l.startswith("ASSIGN ") or l.startswith("REVOKE ")]
        return set(json.loads(ev[-1].split(" ")[1])) if ev else None

    def messages(self):
        out = []
        for l in self.events("MSG"):
            f = l.split(" ", 3)
            if len(f) != 4:
                # The last line of a member killed (SIGKILL) while printing it: cut short
                # (CI, session 19: "MSG 2"). Its message was not committed either (the
                # commit follows the print), so a later member must deliver it.
                continue
            out.append((int(f[1]), int(f[2]), f[3]))
        return out

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        self.t.join(5)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.t.join(5)


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def balanced(members, n_parts=4):
    """Every member assigned (possibly nothing), disjoint, covering every partition."""
    seen = set()
    for m in members:
        a = m.assignment()
        if a is None or a & seen:
            return False
        seen |= a
    return seen == set(range(n_parts))


def produce(bs, topic, values, partition=None):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    for i, v in enumerate(values):
        if partition is None:
            p.produce(topic, key=str(i), value=v, partition=i % 4)
        else:
            p.produce(topic, key=str(i), value=v, partition=partition)
    assert p.flush(20) == 0, "produce did not complete"


def create_topic(bs, topic, parts=4):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": bs})
    for f in a.create_topics([NewTopic(topic, parts, 1)]).values():
        f.result(20)


def committed(bs, group, topic, parts=4):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bs, "group.id": group})
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=15)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def describe(bs, group):
    """ListGroups + DescribeGroups through AdminClient.list_groups()."""
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bs})
    gs = a.list_groups(group, timeout=15)
    assert len(gs) == 1 and gs[0].error is None, gs
    return gs[0]


def test_groups(b):
    bs = b.addr
    create_topic(bs, "g-topic")
    produce(bs, "g-topic", ["v%d" % i for i in range(40)])
    members = []
    try:
        for n in range(1, 7):
            members.append(Member(bs, "g6", "g-topic"))
            wait_for("%d balanced members" % n, lambda: balanced(members), 30)
        idle = [m for m in members if not m.assignment()]
        assert len(idle) == 2, "6 members on 4 partitions: 2 idle, got %d" % len(idle)
        d = describe(bs, "g6")
        assert len(d.members) == 6 and d.state == "Stable" and d.protocol == "range", \
            (d.state, d.protocol, len(d.members))
        import slp_broker
        host = "/198.18.0.1" if slp_broker.DPDK else "/127.0.0.1"  # the clients' address
        assert all(m.client_host == host for m in d.members), [m.client_host for m in d.members]
        # SIGKILL a member with partitions: evicted at the session timeout.
        victim = next(m for m in members if m.assignment())
        lost = victim.assignment()
        victim.kill()
        members.remove(victim)
        t0 = time.monotonic()
        t1 = wait_for("rebalance after a member died", lambda: balanced(members), 30)
        assert t1 - t0 > SESSION_MS / 1000 * 0.6, "evicted before its session timeout"
        taken = set().union(*(m.assignment() for m in members))
        assert lost <= taken and len([m for m in members if not m.assignment()]) == 1
        # A graceful close (LeaveGroup): rebalanced well before the session timeout.
        leaver = next(m for m in members if m.assignment())
        t0 = time.monotonic()
        leaver.stop()
        members.remove(leaver)
        t1 = wait_for("rebalance after a leave", lambda: balanced(members), 30)
        assert t1 - t0 < SESSION_MS / 1000 * 0.8, "LeaveGroup did not rebalance at once"
        assert not [m for m in members if not m.assignment()], "4 members, 4 partitions"
        total = set()
        for m in members + [victim, leaver]:
            total |= {v for _, _, v in m.messages()}
        assert total >= {"v%d" % i for i in range(40)}, "messages missing"
    finally:
        for m in members:
            m.kill()
    print("groups of 1..6: ok")


def test_static(b):
    bs = b.addr
    create_topic(bs, "s-topic")
    a = Member(bs, "gs", "s-topic", instance="inst-a", session_ms=10000)
    c = Member(bs, "gs", "s-topic", instance="inst-b", session_ms=10000)
    try:
        wait_for("static members balanced", lambda: balanced([a, c]), 30)
        time.sleep(1)
        before_a = a.assignment()
        events_c = len(c.events("ASSIGN")) + len(c.events("REVOKE"))
        a.stop()  # a static member's close sends no LeaveGroup
        a = Member(bs, "gs", "s-topic", instance="inst-a", session_ms=10000)
        wait_for("restarted static member assigned", lambda: a.assignment() is not None, 20)
        time.sleep(2)
        assert a.assignment() == before_a, (a.assignment(), before_a)
        assert len(c.events("ASSIGN")) + len(c.events("REVOKE")) == events_c, \
            "the other member rebalanced: %s" % c.lines
        d = describe(bs, "gs")
        assert len(d.members) == 2 and d.state == "Stable", (d.state, d.members)
        assert sorted(m.id.split("-")[0] for m in d.members) == ["inst"] * 2, \
            [m.id for m in d.members]
    finally:
        a.kill()
        c.kill()
    print("static membership: ok")


def test_cooperative(b):
    bs = b.addr
    create_topic(bs, "c-topic")
    ms = [Member(bs, "gc", "c-topic", strategy="cooperative-sticky") for _ in range(2)]
    try:
        wait_for("cooperative pair balanced", lambda: balanced(ms), 30)
        kept = [m.assignment() for m in ms]
        ms.append(Member(bs, "gc", "c-topic", strategy="cooperative-sticky"))
        wait_for("cooperative trio balanced", lambda: balanced(ms) and
                 all(m.assignment() for m in ms[:2]) and len(ms[2].assignment()) >= 1, 40)
        for m, k in zip(ms[:2], kept):
            revoked = set()
            for l in m.events("REVOKE"):
                revoked |= set(json.loads(l.split(" ")[2]))
            assert revoked != k and m.assignment() <= k, \
                "not incremental: had %s, revoked %s" % (k, revoked)
    finally:
        for m in ms:
            m.kill()
    print("cooperative-sticky: ok")


def test_at_least_once(b):
    bs = b.addr
    create_topic(bs, "a-topic")
    values = ["a%d" % i for i in range(200)]
    produce(bs, "a-topic", values)
    m = Member(bs, "ga", "a-topic")
    try:
        wait_for("some messages", lambda: len(m.messages()) >= 60, 30)
    finally:
        m.kill()
    first = m.messages()
    m2 = Member(bs, "ga", "a-topic")
    try:
        wait_for("the rest", lambda: {v for _, _, v in first + m2.messages()} >= set(values), 40)
        again = {(p, o) for p, o, _ in first} & {(p, o) for p, o, _ in m2.messages()}
        assert len(again) <= 8, "restarted far before the last commit: %d again" % len(again)
    finally:
        m2.stop()
    c = committed(bs, "ga", "a-topic")
    assert c == {p: 50 for p in range(4)}, c
    print("at-least-once after SIGKILL: ok (%d redelivered)" % len(again))


def test_two_groups(b):
    bs = b.addr
    create_topic(bs, "t-topic")
    produce(bs, "t-topic", ["t%d" % i for i in range(20)], partition=0)
    x = Member(bs, "gx", "t-topic")
    try:
        wait_for("gx read all", lambda: len(x.messages()) >= 20, 30)
    finally:
        x.stop()
    y = Member(bs, "gy", "t-topic")
    try:
        wait_for("gy read all", lambda: len(y.messages()) >= 20, 30)
    finally:
        y.stop()
    produce(bs, "t-topic", ["u%d" % i for i in range(10)], partition=0)
    x = Member(bs, "gx", "t-topic")
    try:
        wait_for("gx read the new ones", lambda: len(x.messages()) >= 10, 30)
        time.sleep(0.5)
        assert [v for _, _, v in x.messages()] == ["u%d" % i for i in range(10)], x.messages()
    finally:
        x.stop()
    cx = committed(bs, "gx", "t-topic")
    cy = committed(bs, "gy", "t-topic")
    assert cx[0] == 30 and cy[0] == 20, (cx, cy)
    print("two groups, independent offsets: ok")


def kafka_call(sock, key, ver, corr, body):
    """One request (header v1: non-flexible versions only) and its raw response body."""
    import struct
    cid = b"raw"
    frame = struct.pack(">hhih", key, ver, corr, len(cid)) + cid + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4:]


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def check_control_away(b):
    """With the control process gone, group requests answer COORDINATOR_NOT_AVAILABLE (15)
    at once, in each request's own shape: nothing hangs."""
    import struct

    def s(x):
        return struct.pack(">h", len(x)) + x

    sock = b.connect()
    try:
        r = kafka_call(sock, 10, 0, 1, s(b"gk"))  # FindCoordinator v0
        assert struct.unpack(">h", r[:2])[0] == 15, r
        # OffsetCommit v2: group, generation, member, retention, [topic [partition offset md]]
        body = (s(b"gk") + struct.pack(">i", -1) + s(b"") + struct.pack(">q", -1) +
                struct.pack(">i", 1) + s(b"k-topic") + struct.pack(">i", 2) +
                struct.pack(">iq", 0, 5) + s(b"") + struct.pack(">iq", 3, 6) + s(b""))
        r = kafka_call(sock, 8, 2, 2, body)
        # [topics: name, [partitions: index, error]]
        assert struct.unpack(">i", r[:4])[0] == 1
        off = 4 + 2 + len(b"k-topic")
        assert struct.unpack(">i", r[off:off + 4])[0] == 2
        parts = [struct.unpack(">ih", r[off + 4 + 6 * i:off + 10 + 6 * i]) for i in range(2)]
        assert parts == [(0, 15), (3, 15)], parts
        # Heartbeat v0: group, generation, member -> error
        r = kafka_call(sock, 12, 0, 3, s(b"gk") + struct.pack(">i", 1) + s(b"m"))
        assert struct.unpack(">h", r[:2])[0] == 15, r
        # ListGroups v0 -> error, []
        r = kafka_call(sock, 16, 0, 4, b"")
        assert struct.unpack(">hi", r[:6]) == (15, 0), r
    finally:
        sock.close()


def test_control_restart(b):
    bs = b.addr
    create_topic(bs, "k-topic")
    produce(bs, "k-topic", ["k%d" % i for i in range(40)])
    m = Member(bs, "gk", "k-topic", session_ms=10000)
    try:
        wait_for("first batch", lambda: len(m.messages()) >= 40, 30)
        time.sleep(1)
        before = committed(bs, "gk", "k-topic")
        assert sum(before.values()) == 40, before
        closed = b.text().count("control process channel")
        b.kill_control()
        wait_for("the dataplane to see the control process gone",
                 lambda: b.text().count("control process channel") > closed, 10)
        check_control_away(b)
        produce(bs, "k-topic", ["l%d" % i for i in range(40)])  # the dataplane serves alone
        time.sleep(1)
        b.start_control()
        wait_for("consumer carried on", lambda: len(m.messages()) >= 80, 40)
        wait_for("commits after the restart", lambda: sum(committed(
            bs, "gk", "k-topic").values()) == 80, 20)
    finally:
        m.stop()
    assert {v for _, _, v in m.messages()} >= {"l%d" % i for i in range(40)}
    print("control process SIGKILL and restart: ok")


def restart_dataplane(b, timeout=60):
    """Stop the dataplane alone (SIGTERM) and start it again on the same file; the
    control process keeps running and both reconnect."""
    assert b.stop_dataplane(20) == 0, "dataplane exit code"
    b.start_dataplane(timeout)


def test_dataplane_restart(b):
    """The dataplane restarts under a running control process: offsets kept, groups work."""
    bs = b.addr
    create_topic(bs, "d-topic")
    produce(bs, "d-topic", ["d%d" % i for i in range(20)])
    m = Member(bs, "gd", "d-topic")
    try:
        wait_for("gd read all", lambda: len(m.messages()) >= 20, 30)
    finally:
        m.stop()
    before = committed(bs, "gd", "d-topic")
    assert sum(before.values()) == 20, before
    restart_dataplane(b)
    bs = b.addr
    assert committed(bs, "gd", "d-topic") == before
    produce(bs, "d-topic", ["e%d" % i for i in range(20)])
    m = Member(bs, "gd", "d-topic")
    try:
        wait_for("gd read the new ones", lambda: len(m.messages()) >= 20, 30)
        time.sleep(0.5)
        assert sorted(v for _, _, v in m.messages()) == sorted("e%d" % i for i in range(20))
    finally:
        m.stop()
    assert sum(committed(bs, "gd", "d-topic").values()) == 40
    print("dataplane restart under a running control process: ok")


def test_kcat(b):
    kcat = shutil.which("kcat")
    if not kcat:
        print("SKIP kcat -G: kcat not installed")
        return
    bs = b.addr
    create_topic(bs, "kc-topic")
    produce(bs, "kc-topic", ["kc%d" % i for i in range(30)])
    r = subprocess.run([kcat, "-b", bs, "-G", "gkcat", "-X", "auto.offset.reset=earliest",
                        "-c", "30", "-f", "%s\n", "kc-topic"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted("kc%d" % i for i in range(30)), r.stdout
    c = wait_for("kcat's commit", lambda: sum(max(v, 0) for v in committed(
        bs, "gkcat", "kc-topic").values()) == 30, 20)
    print("kcat -G: ok")


def test_kafka_python(b):
    try:
        import kafka
    except ImportError:
        print("SKIP kafka-python: not installed")
        return
    bs = b.addr
    create_topic(bs, "kp-topic")
    produce(bs, "kp-topic", ["kp%d" % i for i in range(25)])
    c = kafka.KafkaConsumer("kp-topic", bootstrap_servers=bs, group_id="gkp",
                            auto_offset_reset="earliest", enable_auto_commit=False,
                            consumer_timeout_ms=8000, session_timeout_ms=6000,
                            heartbeat_interval_ms=500)
    got = []
    for msg in c:
        got.append(msg.value.decode())
        if len(got) == 25:
            break
    c.commit()
    c.close()
    assert sorted(got) == sorted("kp%d" % i for i in range(25)), got
    off = committed(bs, "gkp", "kp-topic")
    assert sum(off.values()) == 25, off
    print("kafka-python group: ok")


def test_kafkajs(b):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(HERE, "node_modules", "kafkajs")):
        print("SKIP kafkajs: node or kafkajs missing")
        return
    bs = b.addr
    create_topic(bs, "js-topic")
    produce(bs, "js-topic", ["js%d" % i for i in range(20)])
    r = subprocess.run([node, os.path.join(HERE, "control_kafkajs.js"), bs, "gjs", "js-topic",
                        "20"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    vals = sorted(json.loads(l)["value"] for l in r.stdout.splitlines())
    assert vals == sorted("js%d" % i for i in range(20)), vals
    off = committed(bs, "gjs", "js-topic")
    assert sum(off.values()) == 20, off
    print("kafkajs group: ok")


def main():
    import slp_broker
    slipstream = sys.argv[1]
    # The control binary: argv[2], else the build's (so scripts that pass only the
    # dataplane's path, like test_broker_dpdk.py, can run this one too).
    control = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("test_") else \
        os.path.join(os.path.dirname(os.path.abspath(slipstream)), "..", "control",
                     "slipstream-control")
    with slp_broker.TestRun("ctl-it-") as run:
        logdir = run.path("logs")
        b = run.broker(slipstream, CONFIG % logdir, control=control)
        only = [a for a in sys.argv[2:] if a.startswith("test_")]
        tests = [test_groups, test_static, test_cooperative, test_at_least_once,
                 test_two_groups, test_control_restart, test_dataplane_restart, test_kcat,
                 test_kafka_python, test_kafkajs]
        for t in tests:
            if not only or t.__name__ in only:
                t(b)
        # Both processes restarted on the same directory: offsets kept.
        before = {g: committed(b.addr, g, t) for g, t in (("ga", "a-topic"),
                  ("gx", "t-topic")) if not only or "test_at_least_once" in only}
        assert b.stop() == 0, "dataplane exit code"
        b = run.broker(slipstream, CONFIG % logdir, control=control)
        for g, off in before.items():
            t = {"ga": "a-topic", "gx": "t-topic"}[g]
            assert committed(b.addr, g, t) == off, (g, committed(b.addr, g, t), off)
        print("restart of both processes: offsets kept")
        assert b.stop() == 0
    print("OK")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--member":
        member_main(json.loads(sys.argv[2]))
    else:
        main()
