# SPDX-License-Identifier: Apache-2.0
"""slipstream-load against the broker: produce, consume, end to end.

Starts `slipstream` on 127.0.0.1 (port picked by the kernel, log directory
of its own), then with the load generator:
  1. produces exactly N records (--count) to a new 3-partition topic over 2
     connections with keys and lz4; the JSON report says N acknowledged, none
     failed, and the broker's log end offsets (kcat -Q, librdkafka) equal the
     acknowledged end offsets per partition and sum to N; every record read back
     (kcat) is in the partition Kafka's partitioner gives its key;
  2. consumes them back (--count N, from the earliest offsets): exactly N
     records, each partition read up to its log end offset;
  3. runs a short rate-limited end-to-end run (zstd, acks=all): every
     acknowledged record consumed once, an end-to-end histogram with one
     value per record whose buckets add up to its count, percentiles in
     order; the log end offsets again agree with the report;
  4. plots (PNG and SVG) when gnuplot is installed;
  5. bounded failures: a port nobody listens on and a missing topic with
     --no-create end quickly with exit status 1 and a message.

Usage: test_loadgen.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_LOAD.
Every subprocess has a timeout; the whole test takes about 10 seconds.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
LOAD = sys.argv[2]
KCAT = shutil.which("kcat")
N = 30000

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
storage.cache.chunks=16
dataplane.reactor.stall.log.us=20000
log.dir=%s
"""
BENCH_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                          "bench-tool")
STALL = re.compile(r"reactor: lcore \d+: an? [a-z ]+ of (\d+) us \(\d+ us at most\) ended at (\d+) ns")


def load(b, *args, expect=0, timeout=60):
    r = subprocess.run([LOAD, "-b", b.addr if b else "127.0.0.1:9", "-q"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == expect, "slipstream-load %s: rc %d\n%s\n%s\n--- broker ---\n%s" % (
        " ".join(args), r.returncode, r.stdout, r.stderr[-3000:],
        b.text()[-3000:] if b else "")
    return r


def end_offsets(b, topic, n):
    args = [KCAT, "-b", b.addr, "-Q"]
    for p in range(n):
        args += ["-t", "%s:%d:-1" % (topic, p)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    offs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+) \[(\d+)\] offset (-?\d+)", line)
        if m and m.group(1) == topic:
            offs[int(m.group(2))] = int(m.group(3))
    assert sorted(offs) == list(range(n)), r.stdout
    return offs


def check_hist(h):
    buckets = h["buckets"]
    assert sum(c for _, _, c in buckets) == h["count"], h["count"]
    lows = [lo for lo, _, _ in buckets]
    assert lows == sorted(lows) and all(lo <= hi for lo, hi, _ in buckets)
    if h["count"]:
        pct = [h["percentiles"][k] for k in ("50", "90", "99", "99.9", "99.99", "100")]
        assert pct == sorted(pct), pct
        assert h["min"] <= pct[0] and pct[-1] == h["max"]


def main():
    if KCAT is None:
        print("SKIP: no kcat")
        sys.exit(77)
    with slp_broker.TestRun("loadgen-it-") as test_run:
        b = test_run.broker(SLIPSTREAM, CONFIG % test_run.path("logs"))
        run(b, test_run.tmp)
    print("ok")


def run(b, tmp):
    # 1. produce exactly N
    rep = os.path.join(tmp, "produce.json")
    load(b, "-t", "lg", "-p", "3", "-c", "2", "-n", str(N), "-s", "200", "--batch-size", "4096",
         "-k", "50", "-z", "lz4", "-i", "8", "--json", rep)
    r = json.load(open(rep))
    assert r["result"]["acked_records"] == N, r["result"]
    assert r["result"]["sent_records"] == N and r["result"]["failed_records"] == 0
    assert r["result"]["errors"] == 0 and r["result"]["acked_bytes"] == N * (200 + 8)
    check_hist(r["latency"]["produce_ack"])
    assert r["latency"]["produce_ack"]["count"] == r["result"]["produce_requests"]
    offs = end_offsets(b, "lg", 3)
    assert sum(offs.values()) == N, offs
    for p in r["partitions"]:
        assert p["start_offset"] == 0
        assert p["acked_end_offset"] == offs[p["partition"]], (p, offs)
    # 1b. keyed records are where Kafka's default partitioner puts their keys: read
    # back with kcat (librdkafka), hashed with kafka-python's murmur2 (its port of the
    # Java client's), 50 keys over 3 partitions
    from kafka.partitioner.default import murmur2
    out = subprocess.run([KCAT, "-b", b.addr, "-C", "-t", "lg", "-e", "-q", "-f", "%p %k\n"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = {}
    for line in out.stdout.splitlines():
        part, key = line.split()
        assert (murmur2(key.encode()) & 0x7fffffff) % 3 == int(part), (part, key)
        seen.setdefault(int(part), set()).add(key)
    assert sum(len(v) for v in seen.values()) == 50 and sorted(seen) == [0, 1, 2], seen
    assert sum(1 for _ in out.stdout.splitlines()) == N

    # 2. consume them back
    rep = os.path.join(tmp, "consume.json")
    load(b, "--mode", "consume", "-t", "lg", "-n", str(N), "-d", "20", "--json", rep)
    r = json.load(open(rep))
    assert r["result"]["consumed_records"] == N, r["result"]
    assert r["result"]["consumed_bytes"] == N * (200 + 8)
    for p in r["partitions"]:
        assert p["consumed_end_offset"] == offs[p["partition"]], (p, offs)
        assert p["consumed_records"] == offs[p["partition"]]
    assert r["latency"]["e2e"]["count"] == 0  # old records: no latency

    # 2b. a Fetch asking for more than a response buffer holds (8 MiB over 8
    # partitions of 1 MiB each, as clients' defaults do): the broker answers
    # what fits and the consumer still reads everything (it once closed the
    # connection: "cannot encode the response").
    big = 8 * 1400
    load(b, "-t", "lg8", "-p", "8", "-n", str(big), "-s", "1024", "--batch-size", "16384")
    rep = os.path.join(tmp, "consume8.json")
    load(b, "--mode", "consume", "-t", "lg8", "-n", str(big), "-d", "20",
         "--fetch-max-bytes", str(8 << 20), "--partition-max-bytes", str(1 << 20), "--json", rep)
    r = json.load(open(rep))
    assert r["result"]["consumed_records"] == big and r["result"]["errors"] == 0, r["result"]
    assert "cannot encode" not in b.text()

    # 3. end to end, rate limited
    rep = os.path.join(tmp, "e2e.json")
    plots = os.path.join(tmp, "plots")
    out = load(b, "--mode", "e2e", "-t", "lg2", "-p", "2", "-d", "2", "-r", "4000", "-s", "100",
               "-z", "zstd", "-a", "all", "--linger-ms", "2", "--interval-ms", "250",
               "--tail-us", "1", "--json", rep, "--plot", plots)
    assert "MISSING" not in out.stdout, out.stdout
    r = json.load(open(rep))
    res = r["result"]
    assert res["acked_records"] > 4000, res  # about 8000 in 2 s
    assert res["consumed_records"] == res["acked_records"], res
    assert r["config"]["consumer_connections"] == 1 and r["partitions"][1]["partition"] == 1
    e2e = r["latency"]["e2e"]
    assert e2e["count"] == res["consumed_records"]
    check_hist(e2e)
    check_hist(r["latency"]["produce_ack"])
    # The send lag: one per request built (retries are not), never below the linger
    # unless its batch filled first (4000/s over 2 partitions: 40 records in 2 ms).
    lag = r["latency"]["send_lag"]
    check_hist(lag)
    assert 0 < lag["count"] <= res["produce_requests"], (lag["count"], res)
    # Per record: one per record sent, and the oldest record of a request is never
    # less late than the request's figure says (the median record waits about half
    # the linger of 2 ms).
    rlag = r["latency"]["record_send_lag"]
    check_hist(rlag)
    assert rlag["count"] >= res["acked_records"], (rlag["count"], res)
    assert rlag["max"] >= lag["max"] > 0, (rlag, lag)
    # The consumer's Fetch round trips (queued to response): every Fetch answered.
    frtt = r["latency"]["fetch_rtt"]
    check_hist(frtt)
    assert 0 < frtt["count"] <= res["fetch_requests"], (frtt["count"], res)
    assert lag["percentiles"]["50"] >= 1000000, lag  # ns: a record waits for its batch
    # --tail-us 1: every record is "late", and each one's trip splits into its legs
    # (waiting to be sent, Produce to its answer, answer to receipt), found by offset among
    # its partition's acknowledged requests; they add up to its end-to-end latency.
    assert r["config"]["tail_us"] == 1 and res["tail_records"] == e2e["count"], res
    # One thread produces and consumes: a request is not found only when 256 newer ones of
    # its partition were answered before its records came back.
    assert res["tail_unmatched"] == 0, res
    legs = [r["latency"][k] for k in ("tail_send_wait", "tail_produce_ack", "tail_after_ack")]
    matched = res["tail_records"] - res["tail_before_ack"] - res["tail_unmatched"]
    assert all(g["count"] == matched for g in legs), (legs, res)
    # Records that come back before their Produce answer have no legs (over DPDK and a TAP
    # device nearly all did: the woken Fetch's answer left the broker a few microseconds
    # before the Produce's).
    total = sum(g["mean"] * g["count"] for g in legs)
    e2e_total = e2e["mean"] * e2e["count"]
    assert e2e_total - res["tail_before_ack"] * e2e["max"] - 1 <= total <= e2e_total * 1.000001, \
        (total, e2e_total, res)
    assert matched == 0 or legs[0]["percentiles"]["50"] >= 500000, legs[0]  # the 2 ms linger
    assert "  tail " in out.stdout and "waiting to be sent" in out.stdout, out.stdout
    # --interval-ms 250: a point every quarter second (at least 4 in 2 s on a loaded machine,
    # where the sampling thread may wake late; 2-3 with the default step of 1 s).
    ts = [p["t_s"] for p in r["timeseries"]]
    assert len(ts) >= 4 and min(b - a for a, b in zip(ts, ts[1:])) < 0.6, ts
    offs = end_offsets(b, "lg2", 2)
    assert sum(offs.values()) == res["acked_records"], (offs, res)
    for p in r["partitions"]:
        assert p["acked_end_offset"] == offs[p["partition"]]
        assert p["consumed_end_offset"] == offs[p["partition"]]
    # 3b. a warm-up: produced and consumed like the rest, left out of the latency totals
    rep = os.path.join(tmp, "warm.json")
    out = load(b, "--mode", "e2e", "-t", "lg3", "-p", "2", "-d", "1", "--warmup", "1",
               "-r", "4000", "-s", "100", "--linger-ms", "0", "--interval-ms", "250",
               "--json", rep)
    assert "after a warm-up of 1.00 s" in out.stdout, out.stdout
    r = json.load(open(rep))
    res = r["result"]
    assert r["config"]["warmup_s"] == 1 and r["config"]["duration_s"] == 1, r["config"]
    # 2 s of producing at 4000/s: about 8000 records, all consumed; about half of
    # them consumed after the warm-up, and only those carry an end-to-end latency.
    assert res["acked_records"] > 6000 and res["consumed_records"] == res["acked_records"], res
    n = r["latency"]["e2e"]["count"]
    assert 0.3 * res["consumed_records"] < n < 0.7 * res["consumed_records"], (n, res)
    assert 0.3 * res["produce_requests"] < r["latency"]["produce_ack"]["count"] \
        < 0.7 * res["produce_requests"], (r["latency"]["produce_ack"], res)
    assert r["timeseries"][-1]["t_s"] > 1.5, r["timeseries"]  # the series spans both
    offs = end_offsets(b, "lg3", 2)
    assert sum(offs.values()) == res["acked_records"], (offs, res)
    r = subprocess.run([LOAD, "-b", "127.0.0.1:1", "-n", "10", "--warmup", "1", "-q"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--warmup needs a --duration" in r.stderr, r.stderr

    # 3c. a stall lined up with the late records it made: the broker stopped (SIGSTOP) for
    # 300 ms in a 2 s run logs a reactor stall spanning it (dataplane.reactor.stall.log.us,
    # 20 ms here), the records due meanwhile come 5 ms or more late (--tail-us 5000) in the
    # milliseconds after it (the report's tail_timeline, on the same CLOCK_MONOTONIC), and
    # bench-tool stalls puts them on the broker.
    rep = os.path.join(tmp, "stall.json")
    log_at = len(b.text())
    p = subprocess.Popen([LOAD, "-b", b.addr, "-q", "--mode", "e2e", "-t", "lg4", "-p", "2",
                          "-d", "2", "-r", "4000", "-s", "100", "--linger-ms", "0",
                          "--tail-us", "5000", "--json", rep],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        t_stop = time.monotonic_ns()
        b.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    t_cont = time.monotonic_ns()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (p.returncode, out, err[-2000:])
    r = json.load(open(rep))
    tl = r["tail_timeline"]
    t0 = tl["t0_mono_ns"]
    stop_ms, cont_ms = (t_stop - t0) / 1e6, (t_cont - t0) / 1e6
    late = tl["late_per_ms"]
    n_late = sum(n for _, n in late)
    n_in = sum(n for ms, n in late if stop_ms <= ms <= cont_ms + 300)
    # (A loaded machine may add late records of its own elsewhere in the run.)
    assert n_late == r["result"]["tail_records"] and n_in >= 500 and n_in >= 0.5 * n_late, \
        (stop_ms, cont_ms, n_in, late[:20])
    stalls = [(int(us), int(end)) for us, end in STALL.findall(b.text()[log_at:])]
    assert any(us >= 250000 and t_cont - 5000000 <= end <= t_cont + 100000000
               for us, end in stalls), (t_stop, t_cont, stalls)
    share = subprocess.run(["/usr/bin/python3", BENCH_TOOL, "stalls", rep, b.log_path],
                           capture_output=True, text=True, timeout=30)
    assert share.returncode == 0, share.stderr
    late_n, both, broker, loadgen, none = share.stdout.split()[:5]
    # Every late record of the stop's window on the broker, and no more than all of them.
    assert int(late_n) == n_late, (share.stdout, n_late)
    assert 100.0 * n_in / n_late - 2 <= float(broker) + float(both), (share.stdout, n_in, late)

    # 4. plots
    if shutil.which("gnuplot"):
        for name in ("throughput", "latency"):
            with open(os.path.join(plots, name + ".png"), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
            with open(os.path.join(plots, name + ".svg")) as f:
                assert "<svg" in f.read()

    # 5. bounded failures
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    r = subprocess.run([LOAD, "-b", "127.0.0.1:%d" % port, "-q", "-d", "1",
                        "--request-timeout-ms", "2000"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "slipstream-load:" in r.stderr, (r.returncode, r.stderr)
    r = load(b, "--mode", "consume", "-t", "nosuchtopic", "--no-create", "-d", "1", expect=1)
    assert "does not exist" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
