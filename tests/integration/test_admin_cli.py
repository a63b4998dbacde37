# SPDX-License-Identifier: Apache-2.0
"""slipstream-admin against a running broker, checked with confluent_kafka.

Starts `slipstream` on 127.0.0.1 (port picked by the kernel, own log
directory) and, when a slipstream-control binary is given, the control
process beside it (groups and committed offsets). Then:
- topics: create with partitions and a config (AdminClient sees both),
  TOPIC_ALREADY_EXISTS with exit 1, --if-not-exists, list, describe
  (kafka-topics.sh layout, the config set shown), alter to more partitions
  (AdminClient sees them) and to fewer (INVALID_PARTITIONS, exit 1), delete
  (gone for AdminClient), an unknown topic (exit 1), --if-exists;
- configs: incremental alter (SET two keys, DELETE one; AdminClient's
  DescribeConfigs agrees on values and sources), an unknown key
  (INVALID_CONFIG, exit 1), describe of the broker with --all;
- groups (with the control process): a confluent_kafka consumer commits part
  of three partitions and stays in the group; `groups describe` prints per
  partition the offset the consumer reports as committed, the log end offset
  confluent_kafka reports (high watermark), their difference as LAG and the
  consumer's member id, host and client id; reset-offsets is refused for the
  active group, dry run by default (nothing committed), --execute commits
  (the consumer sees the new offsets), --to-offset is held to the log,
  --to-datetime finds the first offset at or after a time; groups list;
  delete, and GROUP_ID_NOT_FOUND after;
- usage: --help of every action exits 0, bad options exit 2, no broker
  exits 3.

Usage: test_admin_cli.py SLIPSTREAM SLIPSTREAM_ADMIN [SLIPSTREAM_CONTROL]
(run with /usr/bin/python3). Exit 77 (skipped) without confluent_kafka.
"""
import os
import re
import subprocess
import sys
import time

import slp_broker

# The members' host as the broker sees it (over DPDK: the TAP's kernel side).
CLIENT_HOST = "198.18.0.1" if slp_broker.DPDK else "127.0.0.1"

SLIPSTREAM, ADMIN = sys.argv[1], sys.argv[2]
CONTROL = sys.argv[3] if len(sys.argv) > 3 else None
try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
auto.create.topics.enable=false
storage.cache.chunks=24
log.segment.bytes=1048576
log.dir=%s
offsets.topic.num.partitions=2
group.initial.rebalance.delay.ms=100
group.min.session.timeout.ms=1000
metrics.shm.path=%s
"""


def run(*args, ok=(0,), timeout=60):
    """slipstream-admin ARGS; returns (exit code, stdout, stderr)."""
    p = subprocess.run([ADMIN] + list(args), capture_output=True, text=True, timeout=timeout)
    if p.returncode not in ok:
        raise AssertionError("slipstream-admin %s: exit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def usage_checks(bs):
    actions = [("topics", "list"), ("topics", "describe"), ("topics", "create"),
               ("topics", "alter"), ("topics", "delete"), ("configs", "describe"),
               ("configs", "alter"), ("groups", "list"), ("groups", "describe"),
               ("groups", "reset-offsets"), ("groups", "delete")]
    for cmd, action in actions:
        rc, out, _ = run(cmd, action, "--help")
        assert out.startswith("usage: slipstream-admin %s %s" % (cmd, action)), out
        assert "--bootstrap-server" in out
    rc, out, _ = run("--help")
    assert "Exit codes" in out
    run(ok=(2,))
    run("topics", ok=(2,))
    run("nonsense", "list", ok=(2,))
    run("topics", "create", "--bootstrap-server", bs, ok=(2,))  # no --topic
    run("topics", "create", "--bootstrap-server", bs, "--topic", "x", "--partitions", "0",
        ok=(2,))
    run("topics", "list", "--bogus", ok=(2,))
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "g", "--all-topics",
        ok=(2,))  # no --to-*
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "g", "--all-topics",
        "--to-datetime", "yesterday", ok=(2,))
    # A port nobody listens on: a connection error, exit 3.
    rc, _, err = run("topics", "list", "--bootstrap-server", "127.0.0.1:1", ok=(3,))
    assert "cannot connect" in err
    rc, _, err = run("topics", "list", "--bootstrap-server", "nohostport", ok=(3,))


def topic_checks(bs, admin):
    rc, out, _ = run("topics", "create", "--bootstrap-server", bs, "--topic", "adm-t",
                     "--partitions", "3", "--config", "retention.ms=3600000")
    assert out.strip() == "Created topic adm-t."
    md = admin.list_topics(timeout=10)
    assert len(md.topics["adm-t"].partitions) == 3
    rc, _, err = run("topics", "create", "--bootstrap-server", bs, "--topic", "adm-t",
                     ok=(1,))
    assert "TOPIC_ALREADY_EXISTS (36)" in err, err
    run("topics", "create", "--bootstrap-server", bs, "--topic", "adm-t", "--if-not-exists")
    run("topics", "create", "--bootstrap-server", bs, "--topic", "adm-v", "--validate-only")
    assert "adm-v" not in admin.list_topics(timeout=10).topics

    rc, out, _ = run("topics", "list", "--bootstrap-server", bs)
    assert "adm-t" in out.split("\n")
    rc, out, _ = run("topics", "describe", "--bootstrap-server", bs, "--topic", "adm-t")
    lines = out.strip().split("\n")
    head = dict(f.split(": ", 1) for f in lines[0].split("\t"))
    assert head["Topic"] == "adm-t" and head["PartitionCount"] == "3", head
    assert head["ReplicationFactor"] == "1"
    assert head["Configs"] == "retention.ms=3600000", head
    assert len(head["TopicId"]) == 22
    parts = [dict(f.split(": ", 1) for f in l.strip().split("\t")) for l in lines[1:]]
    assert [p["Partition"] for p in parts] == ["0", "1", "2"]
    assert all(p["Leader"] == "1" and p["Replicas"] == "1" and p["Isr"] == "1" for p in parts)

    run("topics", "alter", "--bootstrap-server", bs, "--topic", "adm-t", "--partitions", "5")
    assert len(admin.list_topics(timeout=10).topics["adm-t"].partitions) == 5
    rc, _, err = run("topics", "alter", "--bootstrap-server", bs, "--topic", "adm-t",
                     "--partitions", "2", ok=(1,))
    assert "INVALID_PARTITIONS (37)" in err
    rc, _, err = run("topics", "describe", "--bootstrap-server", bs, "--topic", "adm-none",
                     ok=(1,))
    assert "UNKNOWN_TOPIC_OR_PARTITION (3)" in err


def config_checks(bs, admin):
    run("configs", "alter", "--bootstrap-server", bs, "--entity-type", "topics",
        "--entity-name", "adm-t", "--add-config", "segment.bytes=1048576,retention.bytes=9000000",
        "--delete-config", "retention.ms")
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-t")
    cfg = admin.describe_configs([res])[res].result(timeout=10)
    assert cfg["segment.bytes"].value == "1048576"
    assert cfg["segment.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, \
        cfg["segment.bytes"].source
    assert cfg["retention.bytes"].value == "9000000"
    assert cfg["retention.ms"].is_default, cfg["retention.ms"]
    rc, out, _ = run("configs", "describe", "--bootstrap-server", bs, "--entity-type",
                     "topics", "--entity-name", "adm-t")
    lines = out.strip().split("\n")
    assert lines[0] == "Dynamic configs for topic adm-t are:"
    shown = sorted(l.strip().split(" ")[0] for l in lines[1:])
    assert shown == ["retention.bytes=9000000", "segment.bytes=1048576"], shown
    rc, _, err = run("configs", "alter", "--bootstrap-server", bs, "--entity-type", "topics",
                     "--entity-name", "adm-t", "--add-config", "no.such.key=1", ok=(1,))
    assert "INVALID_CONFIG (40)" in err
    rc, out, _ = run("configs", "describe", "--bootstrap-server", bs, "--entity-type",
                     "brokers", "--entity-name", "1", "--all")
    assert out.startswith("All configs for broker 1 are:")
    assert re.search(r"^  num\.partitions=1 sensitive=false", out, re.M), out


def delete_checks(bs, admin):
    rc, out, _ = run("topics", "delete", "--bootstrap-server", bs, "--topic", "adm-t")
    assert out.strip() == "Deleted topic adm-t."
    deadline = time.monotonic() + 10
    while "adm-t" in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "adm-t" not in admin.list_topics(timeout=10).topics
    rc, _, err = run("topics", "delete", "--bootstrap-server", bs, "--topic", "adm-t", ok=(1,))
    assert "UNKNOWN_TOPIC_OR_PARTITION" in err
    run("topics", "delete", "--bootstrap-server", bs, "--topic", "adm-t", "--if-exists")


def describe_rows(bs, group):
    rc, out, _ = run("groups", "describe", "--bootstrap-server", bs, "--group", group)
    lines = [l for l in out.split("\n") if l.strip()]
    hdr = [i for i, l in enumerate(lines) if l.startswith("GROUP ")][0]
    cols = lines[hdr].split()
    assert cols == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                    "CONSUMER-ID", "HOST", "CLIENT-ID"], cols
    rows = {}
    for l in lines[hdr + 1:]:
        f = l.split()
        rows[(f[1], int(f[2]))] = dict(zip(cols, f))
    return out, rows


def committed(bs, group, topic, n):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)
        return [tp.offset for tp in got]
    finally:
        c.close()


def group_checks(bs, admin):
    from confluent_kafka.admin import NewTopic
    fs = admin.create_topics([NewTopic("adm-g", num_partitions=3, replication_factor=1)])
    fs["adm-g"].result(timeout=10)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    t_before = None
    for part, n in ((0, 10), (1, 20), (2, 30)):
        for i in range(n):
            if part == 2 and i == 15:
                p.flush(10)
                time.sleep(0.05)
                t_before = int(time.time() * 1000)
                time.sleep(0.05)
            p.produce("adm-g", value=b"v%d" % i, partition=part)
    p.flush(10)

    c = Consumer({"bootstrap.servers": bs, "group.id": "adm-grp", "client.id": "adm-client",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000})
    c.subscribe(["adm-g"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 40 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 40, got
    c.commit(asynchronous=False)
    mine = {tp.partition: tp.offset for tp in
            c.committed([TopicPartition("adm-g", i) for i in range(3)], timeout=10)}
    marks = {i: c.get_watermark_offsets(TopicPartition("adm-g", i), timeout=10)[1]
             for i in range(3)}
    out, rows = describe_rows(bs, "adm-grp")
    assert "no active members" not in out
    for i in range(3):
        r = rows[("adm-g", i)]
        want_cur = str(mine[i]) if mine[i] >= 0 else "-"
        assert r["CURRENT-OFFSET"] == want_cur, (r, mine)
        assert r["LOG-END-OFFSET"] == str(marks[i]), (r, marks)
        if mine[i] >= 0:
            assert r["LAG"] == str(marks[i] - mine[i]), r
        # confluent_kafka 1.7 has no memberid(); Kafka's member ids are client.id + "-" + uuid.
        assert re.fullmatch(r"adm-client-[0-9a-f-]{36}", r["CONSUMER-ID"]), r
        assert r["CLIENT-ID"] == "adm-client" and r["HOST"].endswith(CLIENT_HOST), r
    assert sum(marks.values()) == 60
    assert len({rows[("adm-g", i)]["CONSUMER-ID"] for i in range(3)}) == 1  # the one member

    rc, out, _ = run("groups", "list", "--bootstrap-server", bs, "--state")
    assert re.search(r"^adm-grp\s+Stable$", out, re.M), out
    rc, _, err = run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
                     "--all-topics", "--to-earliest", "--execute", ok=(1,))
    assert "inactive" in err and "Stable" in err, err
    c.close()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out, rows = describe_rows(bs, "adm-grp")
        if "no active members" in out:
            break
        time.sleep(0.2)
    assert "no active members" in out
    before = committed(bs, "adm-grp", "adm-g", 3)
    rc, out, err = run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
                       "--topic", "adm-g", "--to-earliest")
    assert "Dry run" in err
    assert [l.split()[3] for l in out.strip().split("\n")[1:]] == ["0", "0", "0"], out
    assert committed(bs, "adm-grp", "adm-g", 3) == before  # nothing committed
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
        "--topic", "adm-g", "--to-earliest", "--execute")
    assert committed(bs, "adm-grp", "adm-g", 3) == [0, 0, 0]
    # --to-offset is held to each partition's log: 25 -> 10, 20, 25.
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
        "--topic", "adm-g", "--to-offset", "25", "--execute")
    assert committed(bs, "adm-grp", "adm-g", 3) == [10, 20, 25]
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
        "--topic", "adm-g:1", "--to-latest", "--execute")
    assert committed(bs, "adm-grp", "adm-g", 3) == [10, 20, 25]
    run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
        "--topic", "adm-g:0,1", "--to-earliest", "--execute")
    assert committed(bs, "adm-grp", "adm-g", 3) == [0, 0, 25]
    # The first record of partition 2 at or after t_before is its 16th (offset 15).
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_before / 1000)) + \
        ".%03dZ" % (t_before % 1000)
    rc, out, _ = run("groups", "reset-offsets", "--bootstrap-server", bs, "--group", "adm-grp",
                     "--topic", "adm-g:2", "--to-datetime", stamp, "--execute")
    assert committed(bs, "adm-grp", "adm-g", 3)[2] == 15, out
    out, rows = describe_rows(bs, "adm-grp")
    assert rows[("adm-g", 2)]["LAG"] == "15" and rows[("adm-g", 0)]["LAG"] == "10", out

    rc, out, _ = run("groups", "delete", "--bootstrap-server", bs, "--group", "adm-grp")
    assert out.strip() == "Deleted consumer group 'adm-grp'."
    rc, _, err = run("groups", "delete", "--bootstrap-server", bs, "--group", "adm-grp",
                     ok=(1,))
    assert "GROUP_ID_NOT_FOUND (69)" in err, err
    rc, _, err = run("groups", "describe", "--bootstrap-server", bs, "--group", "adm-grp",
                     ok=(1,))
    assert "does not exist" in err


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("ops-admin-") as test_run:
        b = test_run.broker(SLIPSTREAM, CONFIG % (test_run.path("logs"), test_run.path("metrics")))
        bs = b.addr
        admin = AdminClient({"bootstrap.servers": bs})
        usage_checks(bs)
        topic_checks(bs, admin)
        config_checks(bs, admin)
        delete_checks(bs, admin)
        if CONTROL is None or not os.path.exists(CONTROL):
            print("groups: no slipstream-control given; group commands not checked")
        elif "listening on unix:" not in b.text():
            # A dataplane without the control process's channel (main.c not wired yet).
            print("groups: this dataplane opens no channel for the control process; "
                  "group commands not checked")
        else:
            b.start_control(control=CONTROL)
            group_checks(bs, admin)
        print("OK")
        return 0


if __name__ == "__main__":
    sys.exit(main())
