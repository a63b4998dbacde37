# SPDX-License-Identifier: Apache-2.0
"""Malformed frames over TCP: the fuzz corpus and crafted bad frames from raw sockets.

Starts `slipstream` on 127.0.0.1 (kernel-picked port, own log directory,
socket.request.max.bytes=65536) and, from 6 connections at a time, sends:
- every file of tests/fuzz/corpus/request as one frame (size prefix + the
  file), followed by an ApiVersions v0 request on the same connection;
- crafted frames: negative, zero and tiny sizes, a size above
  socket.request.max.bytes (prefix only, and with the whole body sent), a
  size of 2^31-1, garbage headers, an unknown API key, a served API at an
  unknown version, ApiVersions at an unknown version (answered
  UNSUPPORTED_VERSION, as Kafka does), a truncated frame followed by EOF,
  a valid request followed by garbage on the same connection;
- 200 seeded random mutations (bit flips, truncations, size prefix
  mismatches) of corpus files.
Each connection must get responses (in order, the trailing ApiVersions
answered) or be closed by the broker within 10 s; a connection the broker
closed must have a "closing ADDRESS:PORT" line in its log. Meanwhile a
confluent-kafka producer (acks=all) and consumer on other connections keep
working: every message produced during the run is acknowledged and
consumed. At the end the broker is still running, serves a new client, and
exits 0 on SIGTERM.

Usage: test_broker_malformed.py PATH_TO_SLIPSTREAM (run with /usr/bin/python3).
Exit 77 (skipped) without confluent_kafka.
"""
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slp_broker  # noqa: E402

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:  # pragma: no cover
    Producer = None

SLIPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "build/dataplane/slipstream"
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus", "request")
MAX_REQ = 65536
CONFIG = """\
listeners=PLAINTEXT://127.0.0.1:0
dpdk.hugepages=off
dpdk.memory.mb=256
num.partitions=1
auto.create.topics.enable=true
socket.request.max.bytes=%d
log.dir=%%s
""" % MAX_REQ

PROBE_CORR = 0x5EED1234
# ApiVersions v0 with correlation id PROBE_CORR: header v1, empty body.
PROBE = struct.pack(">hhi", 18, 0, PROBE_CORR) + struct.pack(">h", 5) + b"probe"


def frame(body):
    return struct.pack(">i", len(body)) + body


def header(key, ver, corr=7, client=b"bad"):
    return struct.pack(">hhih", key, ver, corr, len(client)) + client


def run_case(b, name, data, eof=False):
    """Send @data then the probe (unless @eof); return (name, local port, outcome, detail).

    outcome: "answered" (the probe's response came back), "closed" (the
    broker closed the connection first). A hang raises.
    """
    s = b.connect()
    port = s.getsockname()[1]
    s.settimeout(10)
    try:
        s.sendall(data)
        if eof:
            s.shutdown(socket.SHUT_WR)
        else:
            s.sendall(frame(PROBE))
    except (BrokenPipeError, ConnectionResetError):
        s.close()
        return (name, port, "closed", "send failed")
    buf = b""
    frames = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return (name, port, "closed", "reset after %d responses" % len(frames))
            if not chunk:
                return (name, port, "closed", "eof after %d responses" % len(frames))
            buf += chunk
            while len(buf) >= 4:
                n = struct.unpack(">i", buf[:4])[0]
                assert 4 <= n <= 64 << 20, (name, "bad response size", n)
                if len(buf) < 4 + n:
                    break
                frames.append(buf[4:4 + n])
                buf = buf[4 + n:]
                if struct.unpack(">i", frames[-1][:4])[0] == PROBE_CORR:
                    return (name, port, "answered", frames)
        raise AssertionError("%s: neither answered nor closed within 10 s" % name)
    except socket.timeout:
        raise AssertionError("%s: neither answered nor closed within 10 s" % name)
    finally:
        s.close()


def crafted_cases():
    out = []
    for n in (-1, -0x7FFFFFFF, 0):
        out.append(("size %d" % n, struct.pack(">i", n), False))
    out.append(("size 1", frame(b"\x00"), False))
    out.append(("size 3", frame(b"\x00\x12\x00"), False))
    out.append(("size above max, prefix only", struct.pack(">i", MAX_REQ + 1), False))
    out.append(("size 2^31-1", struct.pack(">i", 0x7FFFFFFF), False))
    big = header(3, 1) + b"\x00" * (MAX_REQ + 100)
    out.append(("whole frame above max", frame(big), False))
    rnd = random.Random(7)
    for i in range(4):
        out.append(("garbage header %d" % i, frame(bytes(rnd.randrange(256)
                                                         for _ in range(rnd.randrange(4, 40)))),
                    False))
    out.append(("negative client id length", frame(struct.pack(">hhih", 3, 1, 7, -5)), False))
    out.append(("client id past the end", frame(struct.pack(">hhih", 3, 1, 7, 200) + b"x"),
                False))
    out.append(("unknown api key 999", frame(header(999, 0)), False))
    out.append(("unknown api key -1", frame(header(-1, 0)), False))
    out.append(("Metadata v99", frame(header(3, 99) + b"\x00\x00\x00\x00"), False))
    out.append(("Produce v99", frame(header(0, 99) + b"\x00" * 10), False))
    out.append(("Fetch v-1", frame(header(1, -1) + b"\x00" * 10), False))
    out.append(("truncated frame then EOF", struct.pack(">i", 100) + header(3, 1), True))
    out.append(("valid then garbage", frame(header(18, 0, corr=1)) + frame(b"\xff" * 9), False))
    out.append(("Metadata v1 with trailing topic count 2^31-1",
                frame(header(3, 1) + struct.pack(">i", 0x7FFFFFFF)), False))
    return out


def corpus_cases():
    out = []
    for name in sorted(os.listdir(CORPUS)):
        with open(os.path.join(CORPUS, name), "rb") as f:
            out.append(("corpus " + name, frame(f.read()), False))
    return out


def mutated_cases(n):
    rnd = random.Random(20261125)
    files = []
    for name in sorted(os.listdir(CORPUS)):
        with open(os.path.join(CORPUS, name), "rb") as f:
            files.append((name, f.read()))
    out = []
    for i in range(n):
        name, data = rnd.choice(files)
        d = bytearray(data)
        kind = rnd.randrange(4)
        if kind == 0 and d:
            for _ in range(rnd.randrange(1, 8)):
                d[rnd.randrange(len(d))] ^= 1 << rnd.randrange(8)
            wire = frame(bytes(d))
        elif kind == 1:
            wire = frame(bytes(d[:rnd.randrange(len(d) + 1)]))
        elif kind == 2 and len(d) > 8:
            # keep the header, randomize the body
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
            wire = frame(bytes(d[:8]) + body)
        else:
            # the size prefix says less than what follows: the rest is a second, bad frame
            cut = rnd.randrange(len(d) + 1)
            wire = struct.pack(">i", cut) + bytes(d)
        out.append(("mutation %d of %s (kind %d)" % (i, name, kind), wire, False))
    return out


class GoodClient(threading.Thread):
    """Produces (acks=all) and consumes topic "good" until stopped; counts both."""

    def __init__(self, b):
        super().__init__(daemon=True)
        self.b = b
        self.stop_flag = threading.Event()
        self.acked = 0
        self.failed = []
        self.consumed = 0
        self.error = None

    def run(self):
        try:
            p = Producer({"bootstrap.servers": self.b.addr, "acks": "all", "linger.ms": 2,
                          "message.timeout.ms": 20000})
            c = Consumer({"bootstrap.servers": self.b.addr, "group.id": "malformed-it",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 100})
            c.assign([TopicPartition("good", 0, 0)])

            def dr(err, msg):
                if err is None:
                    self.acked += 1
                else:
                    self.failed.append(str(err))

            i = 0
            deadline = time.monotonic() + 120
            while not self.stop_flag.is_set() and time.monotonic() < deadline:
                p.produce("good", value=b"g%d" % i, on_delivery=dr)
                i += 1
                p.poll(0)
                m = c.poll(0.01)
                if m is not None and m.error() is None:
                    self.consumed += 1
            assert p.flush(30) == 0
            deadline = time.monotonic() + 30
            while self.consumed < self.acked and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    self.consumed += 1
            c.close()
        except Exception as e:  # reported by the main thread
            self.error = e


def main():
    if Producer is None:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("slp-malformed-") as run:
        tmp = run.tmp
        b = run.broker(SLIPSTREAM, CONFIG % os.path.join(tmp, "logs"))
        good = GoodClient(b)
        good.start()
        time.sleep(1.0)
        acked_before = good.acked
        cases = corpus_cases() + crafted_cases() + mutated_cases(200)
        # One pass of the bad traffic can end before the good producer's next
        # acknowledgement on a loaded machine (0.2 s seen in CI): replay it
        # until the good producer was served meanwhile (bounded: 10 passes
        # or 60 s), so "others keep being served" is what is checked.
        deadline = time.monotonic() + 60
        passes = 0
        with ThreadPoolExecutor(max_workers=6) as ex:
            while True:
                results = list(ex.map(lambda c: run_case(b, *c), cases))
                passes += 1
                if (good.acked > acked_before or passes >= 10 or
                        time.monotonic() > deadline or b.proc.poll() is not None):
                    break
        assert b.proc.poll() is None, "broker exited"
        progress = good.acked - acked_before
        print("bad traffic: %d pass(es) of %d cases; the good producer got %d acks meanwhile" %
              (passes, len(cases), progress))
        good.stop_flag.set()
        good.join(90)
        assert not good.is_alive(), "good client hung"
        if good.error is not None:
            raise good.error
        assert not good.failed, good.failed[:5]
        assert progress > 0, "the good producer made no progress during the bad traffic"
        assert good.acked > 0 and good.consumed == good.acked, (good.acked, good.consumed)

        by_name = {r[0]: r for r in results}
        closed = [r for r in results if r[2] == "closed"]
        answered = [r for r in results if r[2] == "answered"]
        print("%d cases: %d answered, %d closed; good client: %d acked, %d consumed"
              % (len(results), len(answered), len(closed), good.acked, good.consumed))
        # Frames the broker must refuse by closing.
        for name in ("size -1", "size 0", "size 1", "size above max, prefix only",
                     "size 2^31-1", "whole frame above max", "unknown api key 999",
                     "negative client id length", "Metadata v99", "Produce v99",
                     "truncated frame then EOF", "valid then garbage"):
            assert by_name[name][2] == "closed", by_name[name]
        # ApiVersions at an unknown version is answered (v0 response, UNSUPPORTED_VERSION).
        # (header v2 from ApiVersions v3 on, as Kafka parses an unknown newer version)
        r = run_case(b, "ApiVersions v99", frame(header(18, 99, corr=99) + b"\x00"))
        assert r[2] == "answered" and len(r[3]) == 2, r
        assert struct.unpack(">ih", r[3][0][:6]) == (99, 35), r[3][0][:6]
        # The valid request before the garbage was answered before the close.
        assert by_name["valid then garbage"][3].endswith(" after 1 responses"), \
            by_name["valid then garbage"]
        # Every connection the broker closed (not on EOF) left a line naming it.
        time.sleep(0.3)
        log = b.text()
        for name, port, outcome, detail in closed:
            if name == "truncated frame then EOF":
                continue
            assert re.search(r"closing [0-9.]+:%d\b" % port, log), (name, port, detail)
        # Still serving: a fresh client round trip.
        p = Producer({"bootstrap.servers": b.addr, "acks": "all"})
        got = []
        p.produce("after", value=b"x", on_delivery=lambda e, m: got.append(e))
        assert p.flush(15) == 0 and got == [None], got
        del p
        assert b.stop() == 0
        print("ok")
        return 0


if __name__ == "__main__":
    sys.exit(main())
