# SPDX-License-Identifier: Apache-2.0
"""The control process's start-up and a dataplane switching modes (issue 6).

argv: SLIPSTREAM SLIPSTREAM_CONTROL. Real clients (confluent-kafka's AdminClient,
kafka-python's KafkaAdminClient) and raw frames where the exact error code matters.

1. Start-up order: every start of the control process in this test leaves no
   "creating __consumer_offsets failed" line and no lost dataplane connection in
   its log (its store waits for the dataplane's channel, so the forwarded
   CreateTopics is never answered NOT_CONTROLLER).
2. Topics created in local mode after the one-time import: a dataplane alone
   (control.metadata=local) creates "late" (2 partitions, a config, 5 records)
   and the empty "late-empty"; started again with the control process they are
   kept and imported into the metadata log with their ids, partitions, configs
   and records; they survive a restart of the control process (so they are in
   its log) and "late" is deleted through it.
3. A dataplane that missed a deletion (its table and partition directory as they
   were before the DeleteTopics, restored while it was stopped) deletes the
   topic again at reconnection instead of importing it back.
4. A local topic holding records whose name the log gives to another topic: kept
   with its records, an error logged; nothing imported.
5. Alter then describe: after AlterConfigs (confluent-kafka, kafka-python) and
   IncrementalAlterConfigs (raw) return, DescribeConfigs answers the new value at
   once (no sleep), five values in a row each.
6. While the control process has not loaded __consumer_offsets (its store pointed
   at a socket that does not exist), JoinGroup, OffsetFetch, DescribeGroups and
   ListGroups answer COORDINATOR_LOAD_IN_PROGRESS (14), Heartbeat answers NONE as
   Kafka's coordinator does while loading, FindCoordinator names this broker;
   with the normal control process back, OffsetFetch answers NONE.
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import slp_broker  # noqa: E402 (beside this file)

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
storage.cache.chunks=48
log.dir=%s
log.segment.bytes=1048576
offsets.topic.num.partitions=2
control.metrics.listen=127.0.0.1:0
"""

LOAD_IN_PROGRESS = 14


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


def wait_for(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out: " + what)


# ---- raw frames -----------------------------------------------------------------------------

def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(b, api_key, version, body, timeout=15):
    """One request (header v1) on a new connection: the response body after the corr id."""
    s = b.connect()
    s.settimeout(timeout)
    try:
        frame = struct.pack(">hhi", api_key, version, 11) + kstr("modes-test") + body
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = slp_broker.recv_frame(s)
        assert struct.unpack(">i", data[:4])[0] == 11
        return data[4:]
    finally:
        s.close()


def incremental_alter_raw(b, topic, name, value):
    """IncrementalAlterConfigs v0, one SET on a topic: the resource's error code."""
    body = struct.pack(">i", 1) + struct.pack(">b", 2) + kstr(topic) + struct.pack(">i", 1)
    body += kstr(name) + struct.pack(">b", 0) + kstr(value) + struct.pack(">b", 0)
    resp = request(b, 44, 0, body)
    return struct.unpack(">h", resp[8:10])[0]


def join_group_v0(b, group):
    body = kstr(group) + struct.pack(">i", 10000) + kstr("") + kstr("consumer")
    body += struct.pack(">i", 1) + kstr("range") + struct.pack(">i", 0)
    return struct.unpack(">h", request(b, 11, 0, body)[:2])[0]


def heartbeat_v0(b, group):
    body = kstr(group) + struct.pack(">i", 1) + kstr("m-1")
    return struct.unpack(">h", request(b, 12, 0, body)[:2])[0]


def offset_fetch_v1(b, group, topic):
    """OffsetFetch v1 for partition 0 of @topic: (offset, error code)."""
    body = kstr(group) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">ii", 1, 0)
    resp = request(b, 9, 1, body)
    n = struct.unpack(">h", resp[4:6])[0]
    p = 6 + n + 4  # topic count, name, partition count
    _, offset = struct.unpack(">iq", resp[p:p + 12])
    ml = struct.unpack(">h", resp[p + 12:p + 14])[0]
    err = struct.unpack(">h", resp[p + 14 + max(ml, 0):p + 16 + max(ml, 0)])[0]
    return offset, err


def describe_groups_v0(b, group):
    resp = request(b, 15, 0, struct.pack(">i", 1) + kstr(group))
    return struct.unpack(">h", resp[4:6])[0]


def list_groups_v0(b):
    return struct.unpack(">h", request(b, 16, 0, b"")[:2])[0]


def find_coordinator_v0(b, group):
    resp = request(b, 10, 0, kstr(group))
    err, node = struct.unpack(">hi", resp[:6])
    return err, node


# ---- clients --------------------------------------------------------------------------------

def admin(b):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": b.addr})


def create(b, name, parts, config=None):
    from confluent_kafka.admin import NewTopic
    a = admin(b)
    a.create_topics([NewTopic(name, parts, 1, config=config or {})],
                    request_timeout=15)[name].result(30)


def delete(b, name):
    a = admin(b)
    a.delete_topics([name], request_timeout=15)[name].result(30)


def partitions_of(b, topic):
    md = admin(b).list_topics(timeout=15)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def config_of(b, topic, key):
    from confluent_kafka.admin import ConfigResource
    r = ConfigResource("topic", topic)
    a = admin(b)
    return a.describe_configs([r])[r].result(15)[key].value


def produce(b, topic, n, partition=0, tag="m"):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "message.timeout.ms": 30000})
    errs = []
    for i in range(n):
        p.produce(topic, value=("%s-%d" % (tag, i)).encode(), partition=partition,
                  on_delivery=lambda e, m: errs.append(e) if e else None)
    check(p.flush(45) == 0 and not errs, "produced %d to %s[%d]" % (n, topic, partition))


def consume(b, topic, partition, n):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "modes-unused",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        got = []
        deadline = time.monotonic() + 45
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        return got
    finally:
        c.close()


def table(logdir):
    """The dataplane's topic table file: {name: (id hex, partitions, configs)}."""
    out = {}
    with open(os.path.join(logdir, "__slipstream_topics")) as f:
        for line in f:
            w = line.split()
            if w:
                out[w[0]] = (w[1], int(w[2]), sorted(w[3:]))
    return out


def start_clean(b, what):
    """Item 1: the control process's start-up said nothing alarming."""
    t = b.control_text()
    check("creating __consumer_offsets failed" not in t and "error 41" not in t and
          "lost (" not in t,
          "%s: no failed __consumer_offsets creation, no lost connection at start" % what)


# ---- the test -------------------------------------------------------------------------------

def main():
    slp_broker.require("confluent_kafka", "kafka")
    slipstream, control = sys.argv[1], sys.argv[2]
    with slp_broker.TestRun("ctl-modes-it-") as run:
        tmp = run.tmp
        logdir = os.path.join(tmp, "logs")
        conf = CONFIG % logdir
        local = "control.metadata=local\n" + conf

        # A first start with the control process (the one-time import happens here), and a
        # topic "dup" that the log keeps.
        b = run.broker(slipstream, conf, control=control)
        start_clean(b, "first start")
        create(b, "dup", 1)
        check(partitions_of(b, "dup") == 1, "dup created through the control process")
        dup_log_id = table(logdir)["dup"][0]
        check(b.stop() == 0, "both stopped cleanly")

        # 2. and 4.: the dataplane alone, in local mode.
        b = run.broker(slipstream, local)
        create(b, "late", 2, {"retention.ms": "7654321"})
        create(b, "late-empty", 3)
        produce(b, "late", 5, partition=1, tag="late")
        delete(b, "dup")
        create(b, "dup", 1)
        produce(b, "dup", 3, tag="dup")
        ids = table(logdir)
        check(ids["dup"][0] != dup_log_id, "local mode: dup created again under another id")
        check(b.stop() == 0, "local dataplane stopped cleanly")

        b = run.broker(slipstream, conf, control=control)
        start_clean(b, "controller mode again")
        for name in ("late", "late-empty"):
            wait_for(lambda: ("topic %s imported into the metadata log" % name) in b.text(),
                     "%s imported" % name, 60)
        now = table(logdir)
        check(now["late"] == ids["late"] and now["late-empty"] == ids["late-empty"],
              "late and late-empty kept their ids, partitions and configs")
        check(partitions_of(b, "late") == 2, "late served with 2 partitions")
        check(config_of(b, "late", "retention.ms") == "7654321", "late's config kept")
        check(consume(b, "late", 1, 5) == ["late-%d" % i for i in range(5)],
              "late's records kept")
        check("holds records but the metadata log has another topic of that name" in b.text(),
              "dup (records, name taken in the log): the conflict logged as an error")
        check(now["dup"] == ids["dup"], "dup: the local topic kept")
        check(consume(b, "dup", 0, 3) == ["dup-%d" % i for i in range(3)],
              "dup's records kept")
        check("topic dup imported" not in b.text(), "dup not imported")

        # In the log: a restart of the control process alone keeps them.
        check(b.restart("control") == 0, "control process restarted")
        start_clean(b, "control restarted")
        check(partitions_of(b, "late") == 2 and partitions_of(b, "late-empty") == 3,
              "late and late-empty still there after a restart of the control process")
        check(table(logdir)["late"] == ids["late"], "... with the same id")
        delete(b, "late")
        wait_for(lambda: partitions_of(b, "late") is None, "late deleted", 30)
        # Renamed aside at once (late-<p>.<unique>-delete), emptied off the reactor.
        check(wait_for(lambda: not any(d.startswith("late-") and not d.startswith("late-empty")
                                       for d in os.listdir(logdir)),
                       "late's directories removed", 10),
              "late deleted through the control process (its directories removed)")

        # 3. A dataplane that missed a deletion.
        create(b, "gone", 1)
        produce(b, "gone", 2, tag="gone")
        saved = os.path.join(tmp, "saved")
        os.makedirs(saved)
        shutil.copy(os.path.join(logdir, "__slipstream_topics"), saved)
        shutil.copytree(os.path.join(logdir, "gone-0"), os.path.join(saved, "gone-0"))
        gone_id = table(logdir)["gone"][0]
        delete(b, "gone")
        wait_for(lambda: partitions_of(b, "gone") is None, "gone deleted", 30)
        check(b.stop_dataplane() == 0, "dataplane stopped")
        stale = table(os.path.join(saved))
        check(stale["gone"][0] == gone_id, "the saved table still has gone")
        shutil.copy(os.path.join(saved, "__slipstream_topics"), logdir)
        shutil.copytree(os.path.join(saved, "gone-0"), os.path.join(logdir, "gone-0"))
        b.start_dataplane(60)  # and reconnected to the control process
        wait_for(lambda: "gone" not in table(logdir), "gone deleted again at reconnection", 60)
        check(partitions_of(b, "gone") is None and "topic gone imported" not in b.text()
              and "topic gone is not in the metadata log" not in b.text(),
              "a topic deleted through the log while the dataplane was away is not imported")
        check(not os.path.exists(os.path.join(logdir, "gone-0")), "gone-0 removed")

        # 5. Alter, then describe at once.
        from kafka.admin import KafkaAdminClient, ConfigResource as KCR, ConfigResourceType
        create(b, "cfg", 1)
        a = admin(b)
        from confluent_kafka.admin import ConfigResource
        for i in range(5):
            v = str(600000 + i)
            r = ConfigResource("topic", "cfg", set_config={"retention.ms": v})
            a.alter_configs([r])[r].result(15)
            check(config_of(b, "cfg", "retention.ms") == v,
                  "confluent AlterConfigs retention.ms=%s, described at once" % v)
        ka = KafkaAdminClient(bootstrap_servers=b.addr, request_timeout_ms=15000)
        try:
            for i in range(5):
                v = str(700000 + i)
                ka.alter_configs([KCR(ConfigResourceType.TOPIC, "cfg",
                                      configs={"retention.ms": v})])
                resp = ka.describe_configs([KCR(ConfigResourceType.TOPIC, "cfg")])
                entries = {e[0]: e[1] for e in resp[0].resources[0][4]}
                check(entries.get("retention.ms") == v,
                      "kafka-python AlterConfigs retention.ms=%s, described at once" % v)
        finally:
            ka.close()
        for i in range(5):
            v = str(1048576 * (i + 1))
            check(incremental_alter_raw(b, "cfg", "segment.bytes", v) == 0,
                  "IncrementalAlterConfigs segment.bytes=%s" % v)
            check(config_of(b, "cfg", "segment.bytes") == v, "... described at once")

        # 6. Groups while __consumer_offsets is not loaded.
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": b.addr, "group.id": "g-modes",
                      "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition("cfg", 0, 0)], asynchronous=False)
        c.close()
        check(offset_fetch_v1(b, "g-modes", "cfg") == (0, 0), "g-modes committed offset 0")
        b.stop_control()
        connected = b.text().count("control process connected")
        held_log = open(os.path.join(tmp, "held-control.log"), "w")
        held = run.process(subprocess.Popen([control, b.conf, "--override",
                                 "control.dataplane.socket.path=%s" %
                                 os.path.join(tmp, "no-such.sock")],
                                stdin=subprocess.DEVNULL, stdout=held_log,
                                stderr=subprocess.STDOUT))
        try:
            wait_for(lambda: b.text().count("control process connected") > connected,
                     "the dataplane connected to the loading control process", 60)
            check(find_coordinator_v0(b, "g-modes")[0] == 0,
                  "FindCoordinator while loading: this broker")
            check(join_group_v0(b, "g-modes") == LOAD_IN_PROGRESS,
                  "JoinGroup while loading: COORDINATOR_LOAD_IN_PROGRESS")
            check(offset_fetch_v1(b, "g-modes", "cfg")[1] == LOAD_IN_PROGRESS,
                  "OffsetFetch while loading: COORDINATOR_LOAD_IN_PROGRESS")
            check(describe_groups_v0(b, "g-modes") == LOAD_IN_PROGRESS,
                  "DescribeGroups while loading: COORDINATOR_LOAD_IN_PROGRESS")
            check(list_groups_v0(b) == LOAD_IN_PROGRESS,
                  "ListGroups while loading: COORDINATOR_LOAD_IN_PROGRESS")
            check(heartbeat_v0(b, "g-modes") == 0, "Heartbeat while loading: NONE (as Kafka)")
            with open(os.path.join(tmp, "held-control.log")) as f:
                check("__consumer_offsets loaded" not in f.read(), "... it was still loading")
        finally:
            held.send_signal(signal.SIGTERM)
            held.wait(30)
            held_log.close()
        b.start_control()
        start_clean(b, "control started after the held one")
        check(offset_fetch_v1(b, "g-modes", "cfg") == (0, 0),
              "loaded: OffsetFetch answers the committed offset")
        check(b.stop() == 0, "both stopped cleanly")
    print("PASS")


if __name__ == "__main__":
    main()
