# SPDX-License-Identifier: Apache-2.0
"""The broker on two lcores: net workers and the storage writer placed apart.

Two layouts, each on the first two CPUs this process may use (a, b):
- "apart": both net workers on lcore a, the storage writer (the broker:
  engine, logs, handlers) on lcore b, so every request but ApiVersions hops
  between lcores (dataplane/dp_hop.h);
- "shared": net worker 0 and the storage writer share lcore a, net worker 1
  is on lcore b: connections on worker 0 are served by direct calls, those on
  worker 1 hop.

For each: an AdminClient creates a topic with 4 partitions; six kcat
producers (keyed, one of them gzip, one lz4) and a confluent_kafka producer
(acks=all, zstd) write concurrently while an admin thread keeps asking for
metadata, configs and new topics; every record is then read back with kcat
and with a confluent_kafka consumer using assign(), checked present exactly
once, and in order per key. Connections must have landed on both workers
(debug log). SIGTERM then exits 0, with "every log closed cleanly", and the
log has no error or warning line.

Usage: test_broker_lcores.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without kcat or confluent_kafka, or with fewer than 2 CPUs.
Bounded: every client call has a timeout, loops have counts.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import slp_broker

SLIPSTREAM = sys.argv[1]
KCAT = shutil.which("kcat")
try:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
except ImportError:
    Producer = None

TOPIC = "lanes"
PARTITIONS = 4
KCAT_PRODUCERS = 6
PER_KCAT = 400
PY_MESSAGES = 600

CONFIG = """
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=768
dataplane.lcores={a},{b}
dataplane.net.workers=2
dataplane.net.lcores={net}
dataplane.storage.writers=1
dataplane.storage.lcores={storage}
dataplane.max.connections=64
dataplane.response.buffers=64
dataplane.frame.large.bytes=2097152
dataplane.log.level=debug
num.partitions=2
storage.cache.chunks=48
log.dir={logs}
"""


def fail(b, msg):
    """The test fails (slp_broker.TestRun prints @b's log tail)."""
    raise AssertionError(msg)


def kcat(b, *args, stdin=None, timeout=60):
    r = subprocess.run([KCAT, "-b", b.addr] + list(args), input=stdin, capture_output=True,
                       timeout=timeout)
    if r.returncode != 0:
        fail(b, "kcat %s: rc %d\n%s" % (" ".join(args), r.returncode,
                                         r.stderr.decode(errors="replace")))
    return r.stdout


def kcat_producer(b, i, errors):
    # One connection per producer (plus the bootstrap one): keys k<i>-<n % 7>.
    lines = "".join("k%d-%d\tv%d-%d\n" % (i, n % 7, i, n) for n in range(PER_KCAT))
    codec = ["none", "gzip", "lz4", "none", "snappy", "none"][i % 6]
    try:
        # Small batches: many Produce requests in flight across the hop.
        kcat(b, "-P", "-t", TOPIC, "-K", "\t", "-z", codec, "-X", "acks=all",
             "-X", "batch.num.messages=10", "-X", "linger.ms=0", stdin=lines.encode())
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append("kcat producer %d: %s" % (i, e))


def py_producer(b, errors):
    delivered = []
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "compression.type": "zstd",
                  "linger.ms": 0, "batch.num.messages": 20, "message.timeout.ms": 30000})

    def cb(err, msg):
        if err is not None:
            errors.append("confluent delivery: %s" % err)
        else:
            delivered.append((msg.partition(), msg.offset(), msg.value()))

    for n in range(PY_MESSAGES):
        p.produce(TOPIC, key=b"py-%d" % (n % 5), value=b"py-%d" % n, callback=cb)
        if n % 100 == 0:
            p.poll(0)
    left = p.flush(30)
    if left != 0:
        errors.append("confluent producer: %d messages not delivered" % left)
    if len(delivered) != PY_MESSAGES:
        errors.append("confluent producer: %d delivery reports" % len(delivered))


def admin_loop(b, stop, errors, counts):
    a = AdminClient({"bootstrap.servers": b.addr})
    n = 0
    deadline = time.monotonic() + 60
    while not stop.is_set() and n < 40 and time.monotonic() < deadline:
        try:
            md = a.list_topics(timeout=10)
            if TOPIC not in md.topics:
                errors.append("admin: %s missing from metadata" % TOPIC)
            res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
            for f in a.describe_configs([res], request_timeout=10).values():
                f.result(timeout=10)
            if n < 8:  # each partition holds a storage cache chunk: a few topics only
                name = "side-%d" % n
                for f in a.create_topics([NewTopic(name, 1, 1)],
                                         request_timeout=10).values():
                    f.result(timeout=10)
            n += 1
        except Exception as e:  # noqa: BLE001
            errors.append("admin round %d: %s" % (n, e))
            return
    counts["admin"] = n


def expected_values():
    want = {}
    for i in range(KCAT_PRODUCERS):
        for n in range(PER_KCAT):
            want["v%d-%d" % (i, n)] = "k%d-%d" % (i, n % 7)
    for n in range(PY_MESSAGES):
        want["py-%d" % n] = "py-%d" % (n % 5)
    return want


def check_records(b, rows, how):
    """rows: (partition, offset, key, value). Each value once; per key in order."""
    want = expected_values()
    seen = {}
    for part, off, key, val in rows:
        if val in seen:
            fail(b, "%s: %s read twice" % (how, val))
        if val not in want:
            fail(b, "%s: unexpected record %r" % (how, val))
        if want[val] != key:
            fail(b, "%s: %s has key %r, not %r" % (how, val, key, want[val]))
        seen[val] = (part, off)
    missing = [v for v in want if v not in seen]
    if missing:
        fail(b, "%s: %d records missing, e.g. %s" % (how, len(missing), missing[:5]))
    # Per key: one partition, values in the order they were produced.
    by_key = {}
    for part, off, key, val in sorted(rows, key=lambda r: (r[0], r[1])):
        by_key.setdefault(key, []).append((part, int(val.rsplit("-", 1)[1])))
    for key, lst in by_key.items():
        if len({p for p, _ in lst}) != 1:
            fail(b, "%s: key %s in several partitions" % (how, key))
        seq = [s for _, s in lst]
        if seq != sorted(seq):
            fail(b, "%s: key %s out of order" % (how, key))


def consume_kcat(b):
    out = kcat(b, "-C", "-t", TOPIC, "-o", "beginning", "-e", "-f", "%p\t%o\t%k\t%s\n")
    rows = []
    for line in out.decode().splitlines():
        p, o, k, v = line.split("\t")
        rows.append((int(p), int(o), k, v))
    return rows


def consume_assign(b):
    return [(p, o, k.decode(), v.decode())
            for p, o, k, v in slp_broker.assign_read(b, TOPIC, PARTITIONS, group="lcores-assign")]


def run_clients(b, name, threads, adm, stop, errors, counts, timeout, adm_timeout,
                fail_fn=None):
    """Run the client @threads and the admin thread @adm (stopped through @stop once
    the clients are done), each joined within its timeout in seconds; the test fails
    (@fail_fn, else fail) if one is still running, reported @errors, or @counts shows
    no admin round."""
    fail_fn = fail_fn or fail
    for t in threads + [adm]:
        t.start()
    for t in threads:
        t.join(timeout)
    stop.set()
    adm.join(adm_timeout)
    if any(t.is_alive() for t in threads + [adm]):
        fail_fn(b, "%s: a client thread did not finish" % name)
    if errors:
        fail_fn(b, "%s: %s" % (name, "\n".join(errors[:10])))
    if counts.get("admin", 0) < 1:
        fail_fn(b, "%s: no admin round completed" % name)


def run_layout(name, a, b_cpu, net, storage, run):
    logs = run.path(name, "logs")
    os.makedirs(logs)
    conf = CONFIG.format(a=a, b=b_cpu, net=net, storage=storage, logs=logs)
    b = run.broker(SLIPSTREAM, conf)
    text = b.text()
    if "requests hop from" not in text:
        fail(b, "%s: no request hop set up" % name)
    admin = AdminClient({"bootstrap.servers": b.addr})
    for f in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)],
                                 request_timeout=15).values():
        f.result(timeout=15)

    errors = []
    counts = {}
    stop = threading.Event()
    threads = [threading.Thread(target=kcat_producer, args=(b, i, errors))
               for i in range(KCAT_PRODUCERS)]
    threads.append(threading.Thread(target=py_producer, args=(b, errors)))
    adm = threading.Thread(target=admin_loop, args=(b, stop, errors, counts))
    run_clients(b, name, threads, adm, stop, errors, counts, 120, 60)

    check_records(b, consume_kcat(b), name + " kcat")
    check_records(b, consume_assign(b), name + " assign()")

    workers = re.findall(r"connection from \S+ on worker (\d+)", b.text())
    per = {w: workers.count(w) for w in set(workers)}
    if set(per) != {"0", "1"}:
        fail(b, "%s: connections did not reach both workers: %s" % (name, per))
    print("%s: %d records, admin rounds %d, connections per worker %s" % (
        name, len(expected_values()), counts["admin"], per))
    # SIGTERM while a consumer's long-poll fetches are parked on the broker lcore and a
    # producer is writing: the drain waits for them across the hop, then exit 0.
    tail = subprocess.Popen([KCAT, "-b", b.addr, "-C", "-t", TOPIC, "-o", "end", "-q",
                             "-X", "fetch.wait.max.ms=1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feed = subprocess.Popen([KCAT, "-b", b.addr, "-P", "-t", TOPIC, "-X", "acks=all"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for n in range(20):
            feed.stdin.write(b"late-%d\n" % n)
            feed.stdin.flush()
            time.sleep(0.05)
        time.sleep(1.0)
        b.stop_clean(name)
    finally:
        for p in (tail, feed):
            p.kill()
            p.wait(5)
    text = b.text()
    if "stopped cleanly" not in text:
        fail(b, "%s: no clean shutdown" % name)
    hops = re.findall(r"hop from lcore \d+: (\d+) request\(s\) hopped.*", text)
    # Over DPDK on net_tap the kernel picks each connection's queue (worker) by its own
    # flow hash: in "shared" only worker 1's connections hop, and it may get few of them.
    least = 1 if slp_broker.DPDK and name == "shared" else 100
    if not hops or int(hops[0]) < least:
        fail(b, "%s: too few requests hopped between lcores: %s" % (name, hops))
    for l in re.findall(r"hop (?:from|to) lcore .*", text):
        print("%s: %s" % (name, l))


def main():
    if KCAT is None or Producer is None:
        print("SKIP: needs kcat and confluent_kafka")
        return 77
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("SKIP: needs two CPUs")
        return 77
    a, b_cpu = cpus[0], cpus[1]
    with slp_broker.TestRun("mc-lcores-") as run:
        run_layout("apart", a, b_cpu, "%d,%d" % (a, a), "%d" % b_cpu, run)
        run_layout("shared", a, b_cpu, "%d,%d" % (a, b_cpu), "%d" % a, run)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
