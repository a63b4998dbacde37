# SPDX-License-Identifier: Apache-2.0
"""Burrow (LinkedIn's lag monitor, Debian package `burrow`) reads our __consumer_offsets.

Starts `slipstream` and `slipstream-control` on 127.0.0.1 (a port the kernel
picks), a ZooKeeper server (Debian package `zookeeper`, started here on a
free port of 127.0.0.1 with its own data directory: Burrow 1.2.1 refuses to start
without one, it keeps its own coordination there) and Burrow 1.2.1 with its
kafka cluster module (topic end offsets: Metadata, ListOffsets) and its kafka
consumer module (reads __consumer_offsets from the start with sarama's
consumer: Fetch, then decodes the OffsetCommit and GroupMetadata records
itself). Burrow's HTTP API listens on another free port of 127.0.0.1
(slp_broker.free_port() both).

Checked, for two groups on a 3-partition topic with known end offsets (one
committing through assign()-style commits, one a subscribed consumer group):
Burrow lists both groups, and per partition its committed offset equals the
group's OffsetFetch answer and its current lag equals our high watermark minus
that offset; its topic view equals our end offsets. Then more records and a
new commit: Burrow follows them (it consumes the topic live).

Burrow 1.2.1 decodes GroupMetadataValue versions 0 and 1 only and logs "failed
to decode ... value version" for the v2 and v3 records Apache Kafka 2.1+ writes
(and we by default): it then shows no owner for the partitions. So the broker
here runs with control.inter.broker.protocol.version=2.0 (Kafka 2.0 wrote
GroupMetadataValue v1 and OffsetCommitValue v1), a live subscribed member's
partitions show its host as their owner in Burrow, and Burrow's log has no
decoding failure.

Usage: test_control_burrow.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL
Exit 77 (skipped) when Burrow, ZooKeeper's jar, java or confluent_kafka is
missing. Every wait is bounded; it takes about half a minute.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slp_broker  # noqa: E402

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Consumer = None

ZK_PORT = slp_broker.free_port()
BURROW_PORT = ZK_PORT
while BURROW_PORT == ZK_PORT:
    BURROW_PORT = slp_broker.free_port()
ZK_JAR = "/usr/share/java/zookeeper.jar"
TOPIC = "burrow-lag"
PRODUCED = {0: 10, 1: 20, 2: 30}

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=3
storage.cache.chunks=48
log.dir=%s
log.segment.bytes=1048576
offsets.topic.num.partitions=4
group.initial.rebalance.delay.ms=0
control.metrics.listen=127.0.0.1:0
control.inter.broker.protocol.version=2.0
"""

BURROW_TOML = """
[general]
pidfile="{dir}/burrow.pid"

[logging]
level="info"

[zookeeper]
servers=["127.0.0.1:{zk}"]
timeout=6
root-path="/burrow-slipstream-test"

[client-profile.slp]
client-id="burrow-slipstream-test"
kafka-version="2.0.0"

[cluster.slp]
class-name="kafka"
servers=["{bs}"]
client-profile="slp"
topic-refresh=2
offset-refresh=1

[consumer.slp]
class-name="kafka"
cluster="slp"
servers=["{bs}"]
client-profile="slp"

[httpserver.default]
address="127.0.0.1:{http}"

[storage.default]
class-name="inmemory"
workers=2
intervals=10
min-distance=1

[evaluator.default]
class-name="caching"
expire-cache=1
"""


def wait_for(what, fn, timeout, interval=0.2):
    """Poll fn() until it returns something true; its last value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def four_letter(port, word):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                d = s.recv(4096)
                if not d:
                    return out.decode(errors="replace")
                out += d
    except OSError:
        return ""


def start_zookeeper(tmp):
    zdir = os.path.join(tmp, "zookeeper")
    os.makedirs(os.path.join(zdir, "data"))
    cfg = os.path.join(zdir, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\nmaxClientCnxns=20\n"
                "4lw.commands.whitelist=srvr\n" % (os.path.join(zdir, "data"), ZK_PORT))
    log = open(os.path.join(zdir, "zookeeper.log"), "w")
    p = subprocess.Popen(["java", "-Xmx96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                          "-Dzookeeper.jmx.log4j.disable=true", "-cp", ZK_JAR,
                          "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def up():
        assert p.poll() is None, "zookeeper exited: " + open(log.name).read()[-2000:]
        # srvr answers "Mode: standalone" once the server serves sessions
        # (ruok's imok comes earlier, while sessions are still refused).
        return "Mode: standalone" in four_letter(ZK_PORT, "srvr")
    wait_for("zookeeper on 127.0.0.1:%d" % ZK_PORT, up, 60)
    return p


def http_json(path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (BURROW_PORT, path), timeout=5) as r:
        return json.loads(r.read().decode())


def start_burrow(tmp, bs):
    bdir = os.path.join(tmp, "burrow")
    os.makedirs(bdir)
    with open(os.path.join(bdir, "burrow.toml"), "w") as f:
        f.write(BURROW_TOML.format(dir=bdir, zk=ZK_PORT, bs=bs, http=BURROW_PORT))
    log_path = os.path.join(bdir, "burrow.out")
    p = subprocess.Popen(["Burrow", "--config-dir", bdir], stdin=subprocess.DEVNULL,
                         stdout=open(log_path, "w"), stderr=subprocess.STDOUT, cwd=bdir)

    def up():
        assert p.poll() is None, "Burrow exited:\n" + open(log_path).read()[-3000:]
        try:
            return "slp" in http_json("/v3/kafka")["clusters"]
        except OSError:
            return False
    wait_for("Burrow's HTTP API", up, 60)
    return p, log_path


def burrow_lag(group):
    """{partition: (offset, current_lag)} Burrow reports for group on TOPIC, or None."""
    try:
        st = http_json("/v3/kafka/slp/consumer/%s/lag" % group)
    except OSError:
        return None
    if st.get("error"):
        return None
    out = {}
    for p in st["status"]["partitions"]:
        if p["topic"] == TOPIC and p.get("end"):
            out[p["partition"]] = (p["end"]["offset"], p["current_lag"])
    return out


def burrow_owners(group):
    """{partition: (owner, client_id)} Burrow reports for group on TOPIC, or None."""
    try:
        st = http_json("/v3/kafka/slp/consumer/%s/lag" % group)
    except OSError:
        return None
    if st.get("error"):
        return None
    return {p["partition"]: (p.get("owner"), p.get("client_id"))
            for p in st["status"]["partitions"] if p["topic"] == TOPIC}


class LiveMember:
    """A subscribed member that reads everything, commits, and stays in the group (polling)
    until stop()."""

    def __init__(self, bs, group, client_id):
        self.c = Consumer({"bootstrap.servers": bs, "group.id": group,
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "client.id": client_id})
        self.c.subscribe([TOPIC])
        self.stop_flag = threading.Event()
        self.committed = threading.Event()
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            seen = 0
            deadline = time.monotonic() + 120
            while not self.stop_flag.is_set() and time.monotonic() < deadline:
                m = self.c.poll(0.2)
                if m is not None and not m.error():
                    seen += 1
                if seen >= sum(PRODUCED.values()) and not self.committed.is_set():
                    self.c.commit(asynchronous=False)
                    self.committed.set()
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stop_flag.set()
        self.t.join(30)
        self.c.close()
        assert self.error is None, self.error


def committed(bs, group):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(TOPIC, p) for p in PRODUCED], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def watermarks(bs):
    c = Consumer({"bootstrap.servers": bs, "group.id": "burrow-watermarks"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                for p in PRODUCED}
    finally:
        c.close()


def expect_burrow(bs, group, timeout=45):
    """Burrow's offsets and lags for group equal OffsetFetch and high watermark - offset."""
    ours = committed(bs, group)
    hw = watermarks(bs)
    want = {p: (ours[p], hw[p] - ours[p]) for p in PRODUCED}
    got = wait_for("Burrow's view of %s to be %s" % (group, want),
                   lambda: burrow_lag(group) == want and burrow_lag(group), timeout)
    print("burrow: %s offsets/lag per partition %s (ours %s, end offsets %s)" % (
        group, sorted(got.items()), ours, hw))


def subscribed_group(bs, group, commit_at):
    """A subscribed consumer reads everything, then commits commit_at and leaves."""
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "client.id": "burrow-test-member"})
    c.subscribe([TOPIC])
    seen, deadline = 0, time.monotonic() + 60
    while seen < sum(PRODUCED.values()) and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            seen += 1
    assert seen == sum(PRODUCED.values()), seen
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in commit_at.items()],
             asynchronous=False)
    c.close()


def main():
    if len(sys.argv) < 3:
        print("usage: test_control_burrow.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL")
        return 2
    missing = [what for what, ok in (
        ("confluent_kafka (/usr/bin/python3)", Consumer is not None),
        ("Burrow (Debian package burrow)", shutil.which("Burrow") is not None),
        ("java", shutil.which("java") is not None),
        (ZK_JAR + " (Debian package zookeeper)", os.path.exists(ZK_JAR))) if not ok]
    if missing:
        print("SKIP: needs " + ", ".join(missing))
        return 77
    with slp_broker.TestRun("burrow-test-") as run:
        tmp = run.tmp
        b = run.broker(sys.argv[1], CONFIG % run.path("logs"), control=sys.argv[2])
        zk = burrow = None
        burrow_log = None
        try:
            bs = b.addr
            zk = start_zookeeper(tmp)
            admin = AdminClient({"bootstrap.servers": bs})
            admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[
                TOPIC].result(timeout=15)
            p = Producer({"bootstrap.servers": bs})
            for part, n in PRODUCED.items():
                for i in range(n):
                    p.produce(TOPIC, value=b"v%d" % i, partition=part)
            assert p.flush(30) == 0
            assert watermarks(bs) == PRODUCED

            # Group 1: offsets committed outside any generation (assign()/admin style).
            c = Consumer({"bootstrap.servers": bs, "group.id": "burrow-assign",
                          "enable.auto.commit": False})
            c.commit(offsets=[TopicPartition(TOPIC, 0, 4), TopicPartition(TOPIC, 1, 15),
                              TopicPartition(TOPIC, 2, 30)], asynchronous=False)
            c.close()
            # Group 2: a subscribed member (JoinGroup/SyncGroup: GroupMetadata records too).
            subscribed_group(bs, "burrow-sub", {0: 10, 1: 12, 2: 25})
            assert committed(bs, "burrow-assign") == {0: 4, 1: 15, 2: 30}
            assert committed(bs, "burrow-sub") == {0: 10, 1: 12, 2: 25}

            burrow, burrow_log = start_burrow(tmp, bs)
            consumers = wait_for("Burrow to list both groups", lambda: set(
                http_json("/v3/kafka/slp/consumer")["consumers"]) >= {"burrow-assign",
                                                                      "burrow-sub"} and True, 45)
            assert consumers
            expect_burrow(bs, "burrow-assign")
            expect_burrow(bs, "burrow-sub")
            topic = wait_for("Burrow's topic offsets", lambda: http_json(
                "/v3/kafka/slp/topic/" + TOPIC).get("offsets") == [10, 20, 30] and True, 30)
            assert topic

            # Live: five more records on partition 0 and a new commit of group 1.
            for i in range(5):
                p.produce(TOPIC, value=b"more%d" % i, partition=0)
            assert p.flush(30) == 0
            c = Consumer({"bootstrap.servers": bs, "group.id": "burrow-assign",
                          "enable.auto.commit": False})
            c.commit(offsets=[TopicPartition(TOPIC, 0, 12)], asynchronous=False)
            c.close()
            expect_burrow(bs, "burrow-assign")
            assert burrow_lag("burrow-assign")[0] == (12, 3)
            expect_burrow(bs, "burrow-sub")
            assert burrow_lag("burrow-sub")[0] == (10, 5)

            # Owners: a live member's partitions, from GroupMetadataValue v1 (IBP 2.0). Burrow
            # keeps an owner only for partitions the group has offsets for when it reads the
            # group's record: a first member commits and leaves, a second joins (a new
            # generation's record, after the offsets).
            first = LiveMember(bs, "burrow-live", "burrow-live-1")
            try:
                assert first.committed.wait(60), "the live member did not read everything"
            finally:
                first.stop()
            live = LiveMember(bs, "burrow-live", "burrow-live-2")
            try:
                # Burrow 1.2.1 keeps the member's host as the owner (its client id column
                # stays empty: that version does not store it). Over DPDK the member
                # comes from the TAP's kernel side.
                host = "198.18.0.1" if slp_broker.DPDK else "127.0.0.1"
                want = {p: "/" + host for p in PRODUCED}
                seen = []

                def owners_ok():
                    o = burrow_owners("burrow-live")
                    seen[:] = [o]
                    o = {p: v[0] for p, v in o.items()} if o else o
                    return o == want

                try:
                    wait_for("Burrow's owners of burrow-live to be %s" % want, owners_ok, 45)
                except AssertionError:
                    print("burrow: owners of burrow-live seen last: %r" % (seen,))
                    raise
                print("burrow: burrow-live owners %s" %
                      sorted(burrow_owners("burrow-live").items()))
            finally:
                live.stop()
            text = open(burrow_log).read()
            assert "value version" not in text, "Burrow failed to decode a record version"
            del p, admin  # their connections go before the broker does
            print("OK")
            return 0
        except BaseException:
            if burrow_log is not None:
                sys.stderr.write("--- Burrow log (tail) ---\n" + open(burrow_log).read()[-3000:])
            raise
        finally:
            for proc in (burrow, zk):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
