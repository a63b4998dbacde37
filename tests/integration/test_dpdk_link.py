# SPDX-License-Identifier: Apache-2.0
"""The DPDK transport watches its port's link: down and up from the kernel side.

Runs inside the network namespace test_broker_dpdk.py makes for it
(SLP_TRANSPORT=dpdk, net_tap port: TAP slipstream0 on the kernel side at
198.18.0.1/24, the broker at 198.18.0.2:9092), with slipstream-control
serving /metrics on 127.0.0.1 (control.metrics.listen):

1. slipstream_dpdk_link_up{port="net_tap0"} is 1 and the broker logged the
   link up; a topic is created and a record produced (confluent_kafka).
2. On one raw connection (kept open throughout), a Fetch at the log end
   with MaxWaitMs=2000 is sent, then `ip link set slipstream0 down`: the
   gauge goes to 0, the broker logs "link down", and the frames it tries to
   send meanwhile (the Fetch response, then TCP's retransmissions of it:
   nothing acknowledges them) are counted in
   slipstream_net_tx_dropped_total{reason="link_down"}.
3. `ip link set slipstream0 up`: the gauge goes back to 1, the broker logs
   the link up, the same connection receives its Fetch response (the stack
   resent it) and then answers ApiVersions; a new producer and consumer
   work; SIGTERM exits 0.

Every wait is on an event (a gauge value, a counter, a log line, bytes on
the socket) with a deadline; none is a sleep standing in for one.

Usage (through test_broker_dpdk.py, which sets SLP_TRANSPORT=dpdk):
  test_dpdk_link.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL
Exit 77 (skipped) outside a DPDK net_tap run or without confluent_kafka.
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import kwire  # noqa: E402
import slp_broker  # noqa: E402

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

TAP = "slipstream0"
PORT = 'port="net_tap0"'
TOPIC = "linkflap"

CONFIG = """
dpdk.hugepages=off
num.partitions=1
log.dir=%s
metrics.shm.path=%s
control.metrics.listen=127.0.0.1:0
"""


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def value(text, series):
    """The value of one series (exact name and labels), or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
    return float(m.group(1)) if m else None


def link_drops(text):
    """slipstream_net_tx_dropped_total{reason="link_down"} over every net worker."""
    total = 0.0
    for m in re.finditer(r'^slipstream_net_tx_dropped_total\{%s,worker="\d+",'
                         r'reason="link_down"\} (\S+)$' % re.escape(PORT), text, re.M):
        total += float(m.group(1))
    return total


def wait_for(what, fn, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def response(s, key, ver, corr):
    n = struct.unpack(">i", recv_exact(s, 4))[0]
    r = kwire.Reader(recv_exact(s, n))
    assert r.int32() == corr
    flex = kwire.is_flexible(key, ver)
    if flex and key != 18:
        kwire.skip_tagged(r)
    return kwire.read_struct(r, kwire.API[key]["resp"], ver, flex)


def fetch_request(corr, offset, max_wait_ms):
    body = {"ReplicaId": -1, "MaxWaitMs": max_wait_ms, "MinBytes": 1, "MaxBytes": 1 << 20,
            "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
            "Topics": [{"Topic": TOPIC, "Partitions": [
                {"Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": offset,
                 "LastFetchedEpoch": -1, "LogStartOffset": -1, "PartitionMaxBytes": 65536}]}],
            "ForgottenTopicsData": [], "RackId": ""}
    return kwire.encode_request(1, 12, corr, "link-it", body)


def produce(bs, values):
    p = Producer({"bootstrap.servers": bs, "acks": "all", "message.timeout.ms": 30000})
    for v in values:
        p.produce(TOPIC, value=v, partition=0)
    assert p.flush(45) == 0, "records not acknowledged"


def consume(bs, n):
    c = Consumer({"bootstrap.servers": bs, "group.id": "link-unused",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    deadline = time.monotonic() + 45
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert m.error() is None, m.error()
            got.append(m.value())
    c.close()
    return got


def ip_link(state):
    subprocess.run(["ip", "link", "set", TAP, state], check=True, timeout=10)


def main():
    if not slp_broker.DPDK or slp_broker.DPDK_PORT_KIND != "tap":
        print("SKIP: run through test_broker_dpdk.py (the DPDK transport on net_tap)")
        return 77
    if Producer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    tmp = tempfile.mkdtemp(prefix="dpdk-link-")
    b = None
    try:
        b = slp_broker.Broker(sys.argv[1], CONFIG % (os.path.join(tmp, "logs"),
                                                     os.path.join(tmp, "metrics.shm")),
                              tmp, control=sys.argv[2])
        url = wait_for("the control process's metrics address", lambda: re.search(
            r"metrics on (http://127\.0\.0\.1:\d+/metrics)", b.control_text())).group(1)
        up = "slipstream_dpdk_link_up{%s}" % PORT
        wait_for("link_up 1", lambda: value(scrape(url), up) == 1)
        assert re.search(r"port net_tap0: Link up", b.text()), b.text()[-2000:]
        admin = AdminClient({"bootstrap.servers": b.addr})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(15)
        produce(b.addr, [b"before"])
        drops0 = link_drops(scrape(url))

        s = b.connect()
        s.settimeout(60)
        s.sendall(fetch_request(1, 1, 2000))  # at the log end: parked up to 2 s
        ip_link("down")
        t_down = time.monotonic()
        wait_for("link_up 0", lambda: value(scrape(url), up) == 0)
        wait_for("the link-down log line", lambda: "port net_tap0: link down" in b.text())
        wait_for("frames dropped while down", lambda: link_drops(scrape(url)) > drops0)
        drops = link_drops(scrape(url))
        print("link down: gauge 0 after %.1f s, %d frame(s) dropped while down" % (
            time.monotonic() - t_down, drops - drops0))

        ip_link("up")
        wait_for("link_up 1 again", lambda: value(scrape(url), up) == 1)
        wait_for("the link-up log line",
                 lambda: len(re.findall(r"port net_tap0: Link up", b.text())) >= 2)
        r = response(s, 1, 12, 1)  # the parked Fetch's answer, resent by TCP
        assert r["ErrorCode"] == 0, r
        part = r["Responses"][0]["Partitions"][0]
        assert part["ErrorCode"] == 0 and part["HighWatermark"] == 1, part
        s.sendall(kwire.encode_request(18, 0, 2, "link-it", {}))
        assert response(s, 18, 0, 2)["ErrorCode"] == 0
        s.close()
        print("link up: the connection from before got its Fetch response and answers "
              "ApiVersions")
        produce(b.addr, [b"after-%d" % i for i in range(10)])
        got = consume(b.addr, 11)
        assert got == [b"before"] + [b"after-%d" % i for i in range(10)], got
        rc = b.stop()
        assert rc == 0, "exit code %s" % rc
        b = None
        print("OK")
        return 0
    except BaseException:
        if b is not None:
            sys.stderr.write("--- broker log (tail) ---\n" + b.text()[-3000:])
        raise
    finally:
        if b is not None:
            b.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
