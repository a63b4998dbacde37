# SPDX-License-Identifier: Apache-2.0
"""/metrics under load: the dataplane's shared-memory counters over HTTP.

Starts `slipstream` (metrics.shm.path in the test's directory) and
`slipstream-metrics` reading that segment on 127.0.0.1 (port 0). A producer
thread writes a known number of records to three partitions with
confluent_kafka while the test scrapes /metrics every 50 ms. Every scrape is
parsed strictly (text format 0.0.4: HELP and TYPE before the samples, each
family once and contiguous, metric and label names, escapes, values;
histogram buckets cumulative, +Inf equal to _count) and every counter
series must never go down from one scrape to the next. With two CPUs (kernel
transport) the net worker and the storage writer run on different lcores, so
every request but ApiVersions hops between them: the hop counters
(slipstream_hop_*) must account for the Produce requests and settle with
every hopped request served; the storage writer's tail-cache gauges
(slipstream_storage_*) show storage.cache.chunks and the open logs, and
log.flush.interval.messages=2000 makes the writer fdatasync, counted with its
time (slipstream_storage_flushes_total, _flush_seconds_total). A new
topic's log end offsets appear before any client touches it. Afterwards the
partition counters must equal what was produced (records per partition,
log end offsets equal to confluent_kafka's high watermarks), a consumer's
reads show up in the records-out counters, request counters and latency
histograms cover Produce and Fetch, connections open and close, and the
storage write histogram counted the appends, and a consumer's Fetch parked at
the log end and woken by an append counts in the Fetch wake-up histogram
(slipstream_fetch_wakeup_duration_seconds). The server answers 404 for
another path and 405 for POST. When the Debian package prometheus is
installed, a real Prometheus server scrapes the endpoint and its query API
must return the produced record counts per partition.

With a slipstream-control binary, the control process serves the same
endpoint (control.metrics.listen=127.0.0.1:0 in a copy of the configuration
file that only it reads) and adds consumer lag: a
group commits part of each partition and slipstream_consumergroup_lag must
equal the high watermark minus the committed offset.

Usage: test_metrics_scrape.py SLIPSTREAM SLIPSTREAM_METRICS [SLIPSTREAM_CONTROL]
(run with /usr/bin/python3). Exit 77 (skipped) without confluent_kafka.
"""
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import slp_broker

SLIPSTREAM, METRICS = sys.argv[1], sys.argv[2]
CONTROL = sys.argv[3] if len(sys.argv) > 3 else None
try:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:
    Producer = None

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=%d
num.partitions=1
storage.cache.chunks=24
log.segment.bytes=4194304
log.flush.interval.messages=2000
log.dir=%s
offsets.topic.num.partitions=2
group.initial.rebalance.delay.ms=100
group.min.session.timeout.ms=1000
metrics.shm.path=%s
%s
"""

N_RECORDS = 20000
TOPIC = "load"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
LABEL_ONE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse(text):
    """Strict text-format parse: {(name, (label pairs)): value}, and {family: type}."""
    assert text.endswith("\n"), "exposition must end with a newline"
    types, helps, samples, done = {}, set(), {}, set()
    cur = None
    hist = {}
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert len(parts) == 4 and re.fullmatch(NAME, parts[2]), line
            fam = parts[2]
            if fam != cur:
                assert fam not in done, "family %s declared twice" % fam
                if cur is not None:
                    done.add(cur)
                cur = fam
            if parts[1] == "HELP":
                assert fam not in helps
                helps.add(fam)
            else:
                assert fam not in types and parts[3] in ("counter", "gauge", "histogram"), line
                types[fam] = parts[3]
            continue
        assert line and not line.startswith("#"), "unexpected line %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        if name not in types:
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                    fam = name[:-len(suf)]
        assert fam in types, "sample before its TYPE: %r" % line
        assert fam == cur, "sample outside its family's block: %r" % line
        pairs = tuple(LABEL_ONE.findall(labels))
        v = float(value)
        assert not math.isnan(v)
        key = (name, pairs)
        assert key not in samples, "duplicate series %r" % (key,)
        samples[key] = v
        if types[fam] == "counter":
            assert v >= 0, line
        if types[fam] == "histogram":
            rest = tuple(p for p in pairs if p[0] != "le")
            h = hist.setdefault((fam, rest), {"buckets": [], "count": None})
            if name.endswith("_bucket"):
                le = dict(pairs)["le"]
                h["buckets"].append((float(le), v))
            elif name.endswith("_count"):
                h["count"] = v
    for fam in types:
        assert fam in helps, "no HELP for %s" % fam
    for (fam, rest), h in hist.items():
        b = h["buckets"]
        assert b and b[-1][0] == float("inf"), (fam, rest)
        assert all(b[i][0] < b[i + 1][0] and b[i][1] <= b[i + 1][1] for i in range(len(b) - 1))
        assert b[-1][1] == h["count"], (fam, rest, b[-1], h["count"])
    return samples, types


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def get(samples, name, **labels):
    want = tuple(sorted(labels.items()))
    for (n, pairs), v in samples.items():
        if n == name and tuple(sorted(pairs)) == want:
            return v
    return None


def check_monotonic(prev, cur, types):
    for key, v in cur.items():
        name = key[0]
        fam = name
        for suf in ("_bucket", "_sum", "_count", "_total"):
            if name.endswith(suf) and name[:-len(suf)] in types:
                fam = name[:-len(suf)]
        kind = types.get(name) or types.get(fam)
        if kind in ("counter", "histogram") and key in prev:
            assert v >= prev[key], "counter went down: %r %s -> %s" % (key, prev[key], v)


def start_metrics(shm):
    return slp_broker.start_metrics_server(METRICS, shm)


def http_status(url, method):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def load_and_scrape(bs, url):
    produced = {0: 0, 1: 0, 2: 0}
    errors = []

    def produce():
        try:
            p = Producer({"bootstrap.servers": bs, "linger.ms": 2, "batch.num.messages": 200})
            for i in range(N_RECORDS):
                part = i % 3
                p.produce(TOPIC, value=b"x" * (10 + i % 90), key=b"%d" % i, partition=part)
                produced[part] += 1
                if i % 500 == 499:
                    p.flush(30)
                    time.sleep(0.02)  # spread the load over many scrapes
            assert p.flush(30) == 0
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=produce)
    t.start()
    prev, types, scrapes = {}, {}, 0
    deadline = time.monotonic() + 60
    while (t.is_alive() or scrapes < 5) and time.monotonic() < deadline:
        cur, types = parse(scrape(url))
        check_monotonic(prev, cur, types)
        prev = cur
        scrapes += 1
        time.sleep(0.05)
    t.join(60)
    assert not t.is_alive() and not errors, errors
    assert scrapes >= 5
    return produced, prev, scrapes


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("ops-metrics-") as run:
        tmp = run.tmp
        shm = run.path("metrics")
        cpus = sorted(os.sched_getaffinity(0))
        net_lc, stor_lc = cpus[0], cpus[0]
        layout = ""
        if len(cpus) >= 2 and not slp_broker.DPDK:
            # Requests hop from the net worker's lcore to the storage writer's.
            net_lc, stor_lc = cpus[0], cpus[1]
            layout = ("dataplane.lcores=%d,%d\ndataplane.net.lcores=%d\n"
                      "dataplane.storage.lcores=%d" % (net_lc, stor_lc, net_lc, stor_lc))
        # The hop's buffers want more than the 256 MiB of one lcore.
        conf = CONFIG % (768 if layout else 256, os.path.join(tmp, "logs"), shm, layout)
        b = run.broker(SLIPSTREAM, conf)
        bs = b.addr
        mp, url = start_metrics(shm)
        run.process(mp)
        s0, types = parse(scrape(url))
        assert get(s0, "slipstream_dataplane_up") == 1
        lc0 = "0" if not layout else str(net_lc)
        if get(s0, "slipstream_lcore_busy_ratio", lcore=lc0) is None:
            lc0 = str(cpus[0])  # the dataplane's first lcore is the first CPU it may use
        assert 0 <= get(s0, "slipstream_lcore_busy_ratio", lcore=lc0) <= 1
        assert http_status(url.replace("/metrics", "/other"), "GET")[0] == 404
        st, hdrs = http_status(url, "POST")
        assert st == 405 and hdrs.get("Allow") == "GET, HEAD", (st, hdrs)

        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[
            TOPIC].result(timeout=10)
        # Log end offsets of open partitions are published (every second)
        # before any client produces to or fetches from them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s, _ = parse(scrape(url))
            leos = [get(s, "slipstream_partition_log_end_offset", topic=TOPIC, partition=str(p))
                    for p in range(3)]
            if leos == [0, 0, 0]:
                break
            time.sleep(0.2)
        assert leos == [0, 0, 0], leos
        assert get(s, "slipstream_partition_records_in_total", topic=TOPIC, partition="0") == 0
        produced, last, scrapes = load_and_scrape(bs, url)
        time.sleep(0.3)
        s1, types = parse(scrape(url))
        check_monotonic(last, s1, types)
        c = Consumer({"bootstrap.servers": bs, "group.id": "metrics-reader",
                      "enable.auto.commit": False})
        total_in = 0
        for part in range(3):
            rin = get(s1, "slipstream_partition_records_in_total", topic=TOPIC,
                      partition=str(part))
            assert rin == produced[part], (part, rin, produced[part])
            total_in += rin
            hw = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)[1]
            assert hw == produced[part]
            assert get(s1, "slipstream_partition_log_end_offset", topic=TOPIC,
                       partition=str(part)) == hw
            assert get(s1, "slipstream_partition_bytes_in_total", topic=TOPIC,
                       partition=str(part)) > 10 * produced[part]
        assert total_in == N_RECORDS
        assert get(s1, "slipstream_requests_total", api="Produce") >= 1
        assert get(s1, "slipstream_request_duration_seconds_count", api="Produce") == \
            get(s1, "slipstream_requests_total", api="Produce")
        assert get(s1, "slipstream_storage_write_duration_seconds_count") >= 1
        assert get(s1, "slipstream_connections_accepted_total") >= 2
        assert get(s1, "slipstream_connections_open") >= 1  # the consumer's and admin's
        busy = get(s1, "slipstream_lcore_busy_seconds_total", lcore=lc0)
        assert busy > get(s0, "slipstream_lcore_busy_seconds_total", lcore=lc0)
        # The thread's own CPU time: it ran, and not for longer than the lcore's wall time
        # (busy + idle, updated in the same poll) plus the 100 ms between updates.
        cpu = get(s1, "slipstream_lcore_cpu_seconds_total", lcore=lc0)
        assert cpu is not None and cpu > get(s0, "slipstream_lcore_cpu_seconds_total", lcore=lc0)
        assert cpu <= busy + get(s1, "slipstream_lcore_idle_seconds_total", lcore=lc0) + 0.2
        # Long iterations: counted from 100 us, 1 ms, 10 ms (each count within the one
        # before it), their time at least 100 us each.
        longs = [get(s1, "slipstream_lcore_long_iterations_total", lcore=lc0, over=o)
                 for o in ("0.0001", "0.001", "0.01")]
        assert None not in longs and longs[0] >= longs[1] >= longs[2] >= 0, longs
        long_s = get(s1, "slipstream_lcore_long_iteration_seconds_total", lcore=lc0)
        assert long_s is not None and long_s >= 1e-4 * longs[0]
        assert long_s <= busy + get(s1, "slipstream_lcore_idle_seconds_total", lcore=lc0)
        hop_and_storage_checks(url, layout != "", str(net_lc), str(stor_lc))

        # Read everything back: records out cover the records in.
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(3)])
        got, deadline = 0, time.monotonic() + 30
        while got < N_RECORDS and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        assert got == N_RECORDS
        s2, types = parse(scrape(url))
        check_monotonic(s1, s2, types)
        out = sum(get(s2, "slipstream_partition_records_out_total", topic=TOPIC,
                      partition=str(p)) for p in range(3))
        assert out >= N_RECORDS, out
        assert get(s2, "slipstream_requests_total", api="Fetch") >= 1
        c.close()
        reads_checks(url, s1, str(stor_lc))

        # Per-API error counters: every ErrorCode in a response, NONE included.
        assert get(s2, "slipstream_requests_errors_total", api="Produce", error="NONE") >= 1
        unknown = dict(api="ListOffsets", error="UNKNOWN_TOPIC_OR_PARTITION")
        before = get(s2, "slipstream_requests_errors_total", **unknown) or 0
        assert list_offsets_raw(b, TOPIC, 99) == 3  # a partition the topic does not have
        s3, types = parse(scrape(url))
        check_monotonic(s2, s3, types)
        assert get(s3, "slipstream_requests_errors_total", **unknown) == before + 1, \
            (before, get(s3, "slipstream_requests_errors_total", **unknown))

        fetch_wakeup_checks(bs, url, s3)
        prometheus_checks(tmp, url, {p: produced[p] for p in range(3)})
        if CONTROL is None or not os.path.exists(CONTROL):
            print("lag: no slipstream-control given; consumer lag not checked")
        elif "listening on unix:" not in b.text():
            print("lag: this dataplane opens no channel for the control process; "
                  "consumer lag not checked")
        else:
            lag_checks(b, bs)
        print("OK (%d scrapes under load)" % scrapes)
        return 0


def list_offsets_raw(b, topic, partition):
    """ListOffsets v1 (latest) for one partition on a new connection: its error code."""
    name = topic.encode()
    body = struct.pack(">ii", -1, 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">iiq", 1, partition, -1)
    frame = struct.pack(">hhih", 2, 1, 5, 7) + b"metrics" + body
    s = b.connect()
    try:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "closed"
            data += chunk
    finally:
        s.close()
    # size, correlation id, topic count, name, partition count, partition, error code
    return struct.unpack(">h", data[4 + 4 + 4 + 2 + len(name) + 4 + 4:][:2])[0]


def hop_and_storage_checks(url, apart, net_lc, stor_lc):
    """The request hop's and the storage writer's counters after the load."""
    # Published every 100 ms: wait until the hop has settled (nothing pending, every
    # hopped request served) and the storage gauges show the open logs.
    deadline = time.monotonic() + 20
    while True:
        s, _ = parse(scrape(url))
        chunks = get(s, "slipstream_storage_cache_chunks", lcore=stor_lc, state="total")
        logs = get(s, "slipstream_storage_logs_open", lcore=stor_lc)
        hopped = get(s, "slipstream_hop_requests_total", lcore=net_lc, path="hopped")
        served = get(s, "slipstream_hop_served_total", lcore=stor_lc)
        pending = get(s, "slipstream_hop_pending", lcore=net_lc)
        settled = logs is not None and logs >= 3 and (
            not apart or (pending == 0 and hopped is not None and hopped == served))
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert chunks == 24, chunks  # storage.cache.chunks
    free = get(s, "slipstream_storage_cache_chunks", lcore=stor_lc, state="free")
    assert free is not None and 0 <= free < 24, free  # three partitions hold chunks
    assert logs is not None and logs >= 3, logs
    assert get(s, "slipstream_storage_files_open", lcore=stor_lc) >= 3
    # 20,000 records over three partitions with a flush every 2,000 messages: at least
    # a few fdatasyncs, each taking some time; no roll at 4 MiB segments.
    assert get(s, "slipstream_storage_flushes_total", lcore=stor_lc) >= 3
    assert get(s, "slipstream_storage_flush_seconds_total", lcore=stor_lc) > 0
    assert get(s, "slipstream_storage_segments_rolled_total", lcore=stor_lc) == 0
    if not apart:
        assert hopped is None, "hop counters without a hop"
        print("hop: one lcore, no hop counters (checked absent); storage: %d chunks" % chunks)
        return
    produce = get(s, "slipstream_requests_total", api="Produce")
    assert pending == 0 and hopped == served, (pending, hopped, served)
    assert hopped >= produce, (hopped, produce)  # every Produce hopped
    # ApiVersions is answered on the net worker lcore.
    assert get(s, "slipstream_hop_requests_total", lcore=net_lc, path="local") >= 1
    assert get(s, "slipstream_hop_round_trip_seconds_total", lcore=net_lc) > 0
    assert get(s, "slipstream_hop_queued", lcore=stor_lc) == 0
    print("hop: %d requests hopped and served (%d Produce); storage: %d chunks, %d logs" % (
        hopped, produce, chunks, logs))


def reads_checks(url, s_before, stor_lc):
    """The read-back of records just produced was served from the tail cache: its reads
    (one per partition with data per Fetch) count in slipstream_storage_reads_total
    {from="cache"}, published every 100 ms; reads from segment files stay a counter."""
    def reads(s, src):
        return get(s, "slipstream_storage_reads_total", lcore=stor_lc, **{"from": src})
    c0 = reads(s_before, "cache")
    assert c0 is not None and reads(s_before, "file") is not None
    deadline = time.monotonic() + 5
    while True:
        s, _ = parse(scrape(url))
        c1, f1 = reads(s, "cache"), reads(s, "file")
        if c1 - c0 >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert c1 - c0 >= 3, (c0, c1)  # three partitions read back, from the cache
    assert f1 >= reads(s_before, "file")
    print("reads: %d from the tail cache, %d from segment files" % (c1 - c0, f1))


PROMETHEUS_PORT = slp_broker.free_port()


def fetch_wakeup_checks(bs, url, s_before):
    """A consumer's Fetch parked at the log end and woken by an append counts in
    slipstream_fetch_wakeup_duration_seconds. Its own topic, so the load topic's
    counts stay as produced. librdkafka keeps a Fetch parked (fetch.wait.max.ms)
    while it has nothing; a record produced while the consumer is caught up then
    wakes it. A produce that beats the Fetch to the broker is answered without
    parking, so try again (at most 10 records, each bounded)."""
    wake = "wake"
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(wake, num_partitions=1, replication_factor=1)])[
        wake].result(timeout=10)
    c = Consumer({"bootstrap.servers": bs, "group.id": "metrics-wake",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5000})
    c.assign([TopicPartition(wake, 0, 0)])
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0})
    p.list_topics(wake, timeout=10)  # metadata first: no second-long unknown-topic wait
    n0 = get(s_before, "slipstream_fetch_wakeup_duration_seconds_count") or 0
    n, got = n0, 0
    try:
        for i in range(10):
            c.poll(0.5)  # caught up: its next Fetch waits in the broker
            p.produce(wake, value=b"wake %d" % i, partition=0)
            assert p.flush(10) == 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    got += 1
                    break
            assert got == i + 1, (i, got)
            s, _ = parse(scrape(url))
            n = get(s, "slipstream_fetch_wakeup_duration_seconds_count") or 0
            if n > n0:
                break
    finally:
        c.close()
    assert n > n0, "no parked Fetch was woken by an append in %d tries" % got
    # Woken and answered within the run (a wake-up is microseconds; 60 s bounds a bad clock).
    assert 0 < get(s, "slipstream_fetch_wakeup_duration_seconds_sum") < 60 * n
    print("fetch wake-up: %d counted after %d record(s)" % (n - n0, got))


def prometheus_checks(tmp, url, produced):
    """A real Prometheus server (Debian package prometheus) scrapes the endpoint."""
    prom = shutil.which("prometheus")
    if prom is None:
        print("prometheus: not installed; real-server scrape not checked")
        return
    target = url[len("http://"):-len("/metrics")]
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: slipstream\n    static_configs:\n"
                "      - targets: ['%s']\n" % target)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    p = subprocess.Popen([prom, "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(tmp, "prom-data"),
                          "--web.listen-address=127.0.0.1:%d" % PROMETHEUS_PORT],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    api = "http://127.0.0.1:%d/api/v1/query?query=" % PROMETHEUS_PORT
    try:
        deadline = time.monotonic() + 40
        got = None
        while time.monotonic() < deadline:
            assert p.poll() is None, open(os.path.join(tmp, "prometheus.log")).read()
            try:
                with urllib.request.urlopen(api + "up", timeout=5) as r:
                    up = json.loads(r.read())["data"]["result"]
                q = urllib.request.quote('slipstream_partition_records_in_total{topic="%s"}' %
                                         TOPIC)
                with urllib.request.urlopen(api + q, timeout=5) as r:
                    got = json.loads(r.read())["data"]["result"]
                if up and up[0]["value"][1] == "1" and len(got) == 3:
                    break
            except (urllib.error.URLError, ConnectionError, KeyError):
                pass
            time.sleep(0.5)
        assert got is not None and len(got) == 3, got
        vals = {int(r["metric"]["partition"]): float(r["value"][1]) for r in got}
        assert vals == {k: float(v) for k, v in produced.items()}, (vals, produced)
        print("prometheus: scraped, %d partitions as produced" % len(vals))
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def lag_checks(b, bs):
    """The control process's /metrics: lag = high watermark - committed, per partition."""
    b.start_control(control=CONTROL)
    url = b.control_metrics_url()
    assert url, b.control_text()
    c = Consumer({"bootstrap.servers": bs, "group.id": "lagging", "enable.auto.commit": False})
    want = {0: 7, 1: 100, 2: 1500}
    c.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in want.items()],
             asynchronous=False)
    his = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in want}
    c.close()
    s, _ = parse(scrape(url))
    assert get(s, "slipstream_dataplane_up") == 1
    for p, o in want.items():
        assert get(s, "slipstream_consumergroup_committed_offset", group="lagging", topic=TOPIC,
                   partition=str(p)) == o
        lag = get(s, "slipstream_consumergroup_lag", group="lagging", topic=TOPIC,
                  partition=str(p))
        assert lag == his[p] - o, (p, lag, his[p], o)
    # The control process's own responses join the error counters (its OffsetCommit).
    assert get(s, "slipstream_requests_errors_total", api="OffsetCommit", error="NONE") >= 3


if __name__ == "__main__":
    sys.exit(main())
