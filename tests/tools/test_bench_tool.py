# SPDX-License-Identifier: Apache-2.0
"""scripts/bench-tool, the arithmetic of scripts/bench, on inputs whose answers are known.

  series      the e2e rows' per-window p99 summary leaves out the windows of the
              load generator's warm-up (config.warmup_s), and says how many it used;
  hiccups     the machine's floor from gap files: count over 200 us, longest, the
              share of time a record would wait over 200 us, an empty machine's zeros;
  fiogaps     fio's per-write latency log to stalls: overlapping slow writes merge;
  schedwatch  a thread that shares its CPU with a busy one is runnable but not
              running about half the time; a sleeping one almost never;
  row/render/doc/merge  rows into the tables between the markers of a document, a
              --rows rerun replacing only its own rows, an unknown key refused;
  prom        a family summed over its label sets, filtered by a label, scaled.

Usage: test_bench_tool.py PATH_TO_BENCH_TOOL. Takes about 3 seconds.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

TOOL = sys.argv[1]


def tool(*args, env=None, check=True):
    r = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                       timeout=60, env=env)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def test_series(tmp):
    # windows ending at 0.25 .. 3.0 s; the first second (the warm-up) has huge p99s
    ts = [{"t_s": 0.25 * (i + 1), "e2e_p99_ns": (9000000 if 0.25 * (i + 1) <= 1.0 else
                                                  (100 + i) * 1000)} for i in range(12)]
    ts.append({"t_s": 3.05, "e2e_p99_ns": 0})  # the last, empty window
    p = os.path.join(tmp, "run.json")
    json.dump({"config": {"warmup_s": 1.0}, "timeseries": ts}, open(p, "w"))
    med, worst, at, n = tool("series", p).stdout.split()
    assert n == "8", n  # 1.25 .. 3.0 s
    assert worst == "111" and at == "3.00", (worst, at)  # (100 + 11) us, the last
    assert med == "108", med  # sorted 104..111: the upper median
    # Without a warm-up every window counts, the warm-up's 9 ms worst among them.
    json.dump({"config": {}, "timeseries": ts}, open(p, "w"))
    med, worst, at, n = tool("series", p).stdout.split()
    assert n == "12" and worst == "9000" and at == "0.25", (n, worst, at)


def test_hiccups(tmp):
    a, b = os.path.join(tmp, "gaps-0.txt"), os.path.join(tmp, "gaps-1.txt")
    open(a, "w").write("150000\n1000000\n")  # ns: 150 us, 1 ms
    open(b, "w").write("3000000\n")  # 3 ms
    p99, p999, share, longest, n = tool("hiccups", "1", a, b).stdout.split()
    assert n == "2" and longest == "3.00", (n, longest)  # two gaps over 200 us
    # Over 200 us a record waits (g - 200) + (g - 400) per gap (the catch-up doubles it):
    # 1 ms -> 800 + 600, 3 ms -> 2800 + 2600 us, 6.8 ms in 1 s.
    assert share == "0.680", share
    # The floor for 1% (10 ms of 1 s): even at f = 0 the gaps make records wait only
    # 2 x (0.15 + 1 + 3) = 8.3 ms, under 1%: the floor is 0.
    assert p99 == "0", p99
    assert int(p999) > 0, p999  # 0.1% (1 ms) is reached: a positive floor
    open(a, "w").write("")
    open(b, "w").write("")
    assert tool("hiccups", "1", a, b).stdout.split() == ["0", "0", "0.000", "0.00", "0"]


def test_fiogaps(tmp):
    log = os.path.join(tmp, "lat.log")
    # completion ms, latency ns: two slow writes overlapping (merged), one alone, fast ones
    open(log, "w").write("10, 50000, 1, 8192, 0\n"
                         "20, 5000000, 1, 8192, 0\n"   # [15, 20] ms
                         "22, 4000000, 1, 8192, 0\n"   # [18, 22] ms: merges -> [15, 22]
                         "40, 300000, 1, 8192, 0\n"    # [39.7, 40] ms alone
                         "41, 100000, 1, 8192, 0\n")
    out = os.path.join(tmp, "stalls.txt")
    count, longest = tool("fiogaps", log, out).stdout.split()
    assert count == "2" and longest == "7.00", (count, longest)
    assert sorted(int(x) for x in open(out).read().split()) == [300000, 7000000]


def test_schedwatch(tmp):
    # Two busy loops on one CPU wait for each other; a sleeper does not wait.
    busy = "import os,time\nos.sched_setaffinity(0,{0})\nt=time.time()+3\nwhile time.time()<t: pass\n"
    ps = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(2)]
    sl = subprocess.Popen(["sleep", "3"])
    try:
        time.sleep(0.3)
        out = tool("schedwatch", "1.5", str(ps[0].pid), str(sl.pid)).stdout.splitlines()
    finally:
        for p in ps + [sl]:
            p.kill()
            p.wait()
    f0, f1 = out[0].split(), out[1].split()
    assert int(f0[0]) == ps[0].pid and int(f1[0]) == sl.pid, out
    assert float(f0[2]) > 20, out  # about 50% runnable but not running
    assert float(f0[3]) > 20, out  # ms of waiting within some 100 ms
    assert float(f1[2]) < 5, out


def test_tables(tmp):
    rows = os.path.join(tmp, "rows.jsonl")
    env = dict(os.environ, BENCH_ROW="alpha", BENCH_RUN="run 1")
    tool("row", rows, "group=throughput", "name=alpha row", "value=10 MB/s", "verdict=MET",
         "note=a|b", env=env)
    env["BENCH_ROW"] = "beta"
    tool("row", rows, "group=latency", "name=beta row", "value=5 us", "verdict=MISSED", env=env)
    r = tool("row", rows, "nosuchkey=1", check=False)
    assert r.returncode != 0 and "unknown key" in r.stderr, r.stderr
    head = os.path.join(tmp, "head.txt")
    open(head, "w").write("command: test\n")
    md = os.path.join(tmp, "tables.md")
    tool("render", rows, head, md)
    text = open(md).read()
    assert "| alpha row | 10 MB/s |" in text and "**MET**" in text and "a\\|b" in text, text
    assert "#### Latency" in text and "**MISSED**" in text, text
    doc = os.path.join(tmp, "doc.md")
    open(doc, "w").write("# Doc\n\nbefore\n\n<!-- bench:begin (generated by scripts/bench; "
                         "edit outside the markers) -->\nold\n<!-- bench:end -->\n\nafter\n")
    tool("doc", doc, md)
    d = open(doc).read()
    assert d.startswith("# Doc\n\nbefore\n") and d.rstrip().endswith("after"), d
    assert "old\n" not in d and "| beta row | 5 us |" in d, d
    # --rows alpha: the new alpha row replaces the old one, beta stays from run 1
    rows2 = os.path.join(tmp, "rows2.jsonl")
    env["BENCH_ROW"] = "alpha"
    env["BENCH_RUN"] = "run 2"
    tool("row", rows2, "group=throughput", "name=alpha row", "value=20 MB/s", "verdict=MET",
         env=env)
    out = tool("merge", doc, rows2, "alpha").stdout
    merged = [json.loads(l) for l in open(rows2)]
    assert [(m["row"], m["value"]) for m in merged] == [("alpha", "20 MB/s"), ("beta", "5 us")]
    assert "beta from the run of run 1" in out, out


def test_prom(tmp):
    p = os.path.join(tmp, "m.prom")
    with open(p, "w") as f:
        f.write("# HELP x y\n"
                "slipstream_storage_flush_seconds_total{lcore=\"0\"} 0.250000000\n"
                "slipstream_storage_flush_seconds_total{lcore=\"1\"} 1.000000000\n"
                "slipstream_storage_flushes_total{lcore=\"0\"} 7\n")
    assert tool("prom", p, "slipstream_storage_flushes_total").stdout.strip() == "7"
    # rounded as is, or scaled first (seconds to ms), over every lcore or one
    assert tool("prom", p, "slipstream_storage_flush_seconds_total").stdout.strip() == "1"
    assert tool("prom", p, "slipstream_storage_flush_seconds_total",
                "--scale=1000").stdout.strip() == "1250"
    assert tool("prom", p, "slipstream_storage_flush_seconds_total", "lcore=0",
                "--scale=1000").stdout.strip() == "250"
    assert tool("prom", p, "no_such_family").stdout.strip() == "0"


def main():
    with tempfile.TemporaryDirectory(prefix="bench-tool-") as tmp:
        for t in (test_series, test_hiccups, test_fiogaps, test_schedwatch, test_tables,
                  test_prom):
            t(tmp)
            print("ok", t.__name__)


if __name__ == "__main__":
    main()
