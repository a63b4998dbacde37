# SPDX-License-Identifier: Apache-2.0
"""A slipstream broker process for the integration tests.

Writes a configuration file into the test's temporary directory (the text
may name the file itself as @CONF@, e.g. for a log directory beside it),
starts the binary, waits for "listening on PLAINTEXT://HOST:PORT" and
"started;" in its log (start_timeout, 30 s by default), and stops it with
SIGTERM or kills it.

Two transports. By default the kernel one, pinned with
dataplane.transport=kernel (the broker's own default tries DPDK first), on
loopback addresses only. With SLP_TRANSPORT=dpdk in the environment the
broker runs the DPDK transport on a net_tap port instead: the listener
becomes PLAINTEXT://198.18.0.2:9092 (several listeners keep their names and
fixed ports on 198.18.0.2) and the TAP's kernel side is 198.18.0.1/24 (with
SLP_DPDK_PORT=af_packet: net_af_packet on veth0, whose peer veth1 the caller
gave 198.18.0.1/24; the kernel's frames then carry partial checksums). That
mode expects to run inside a network namespace of its own (test_broker_dpdk.py
runs each test script under `ip netns exec slp-dpdk-...`), so the TAP
interface and addresses never meet another test's.

With control=PATH_TO_SLIPSTREAM_CONTROL the control process (consumer
groups, committed offsets, the topic metadata log: control.metadata=controller
unless the text sets it) runs beside the broker on the same configuration
file: started after it, ready once it has loaded __consumer_offsets and the
dataplane has connected to it. start_control(), stop_control() and
kill_control() restart it on its own; stop_dataplane(), kill_dataplane() and
start_dataplane() do the same for the dataplane (the control process, if
running, stays up and both reconnect); restart() stops and starts either or
both; stop() and kill() stop both.

Nothing is shared between brokers, so tests may run in parallel: unless the
text sets them, every Broker gets its own metrics.shm.path (beside its
configuration file, read by its control process from the same file) and
control.metrics.listen=127.0.0.1:0 (the dataplane ignores it). The control
sockets lie beside the test's log directory (every test sets log.dir or
log.dirs in its temporary directory); DPDK's file prefix is slipstream-<pid>.

TestRun (a context manager) owns a test's temporary directory and the brokers
and processes started in it: on an exception it prints the tail of each
broker's (and control process's) log to stderr; in any case it kills them and
removes the directory (kept with SLP_KEEP_TMP=1 in the environment).

Shared checks: Broker.bad_lines() (error/warning and sanitizer lines),
Broker.stop_clean() (SIGTERM, exit 0, every log closed cleanly, no bad line),
assign_read() (every record of a topic through a confluent_kafka assign() consumer).
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


DPDK = os.environ.get("SLP_TRANSPORT") == "dpdk"
# The DPDK port: "tap" (net_tap, the broker makes slipstream0) or "af_packet"
# (net_af_packet on veth0 of a veth pair the caller made, veth1 at 198.18.0.1/24).
DPDK_PORT_KIND = os.environ.get("SLP_DPDK_PORT", "tap")
DPDK_HOST = "198.18.0.2"
DPDK_PORT = 9092


def transport_config(conf_text):
    """Pin the transport: kernel, or DPDK on a TAP port (SLP_TRANSPORT=dpdk)."""
    if not DPDK:
        if "dataplane.transport" in conf_text:
            return conf_text
        return "dataplane.transport=kernel\n" + conf_text
    # One listener becomes PLAINTEXT://198.18.0.2:9092; several keep their names and
    # fixed ports on that address (a port 0 becomes 9092 + its index). A test's own
    # memory size stays when it is above the port's needs.
    listeners = "PLAINTEXT://%s:%d" % (DPDK_HOST, DPDK_PORT)
    memory_mb = 768  # the port's packet buffers on top of the kernel tests' 256
    for l in conf_text.split("\n"):
        m = re.match(r"\s*listeners\s*[=:]\s*(\S+,\S+)", l)
        if m:
            out = []
            for i, e in enumerate(m.group(1).split(",")):
                name, port = re.match(r"([A-Za-z0-9_]+)://.*:(\d+)$", e).groups()
                out.append("%s://%s:%d" % (name, DPDK_HOST, int(port) or DPDK_PORT + i))
            listeners = ",".join(out)
        m = re.match(r"\s*dpdk\.memory\.mb\s*[=:]\s*(\d+)", l)
        if m:
            memory_mb = max(memory_mb, int(m.group(1)))
    lines = [l for l in conf_text.split("\n")
             if not re.match(r"\s*(listeners|dataplane\.transport|dpdk\.memory\.mb)\s*[=:]", l)]
    return "\n".join([
        "dataplane.transport=dpdk",
        "listeners=" + listeners,
        "dataplane.port.device=%s" % ("net_af_packet0,iface=veth0"
                                      if DPDK_PORT_KIND == "af_packet"
                                      else "net_tap0,iface=slipstream0"),
        "dataplane.port.ipv4.address=%s" % DPDK_HOST,
        "dataplane.port.tap.address=198.18.0.1/24",
        "dpdk.memory.mb=%d" % memory_mb,
    ] + lines)


# A log line that a test expecting a quiet run fails on: the broker's error and warning
# levels, and what ASan/LSan/UBSan print in the sanitizer builds.
BAD_LINE = re.compile(r" slipstream (error|warn) |AddressSanitizer|LeakSanitizer|runtime error:")


def assign_read(b, topic, partitions, want=0, timeout=60, group="slp-assign"):
    """Every record of partitions 0..@partitions-1 of @topic on broker @b, read from
    offset 0 with a confluent_kafka consumer using assign(): until each partition is
    at its end and at least @want records came, @timeout seconds at most. Rows
    (partition, offset, key, value), bytes as they came; AssertionError on a consumer
    error or when the end was not reached in time."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": b.addr, "group.id": group,
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        rows = []
        eof = set()
        deadline = time.monotonic() + timeout
        while (len(eof) < partitions or len(rows) < want) and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                    continue
                raise AssertionError("assign() consumer: %s" % m.error())
            eof.discard(m.partition())
            rows.append((m.partition(), m.offset(), m.key(), m.value()))
    finally:
        c.close()
    if len(eof) < partitions or len(rows) < want:
        raise AssertionError("assign() consumer: not at the end of every partition in %d s "
                             "(%d records)" % (timeout, len(rows)))
    return rows


def free_port(host="127.0.0.1"):
    """A TCP port nothing is bound to on @host now, drawn at random below the kernel's
    ephemeral range (ip_local_port_range), so that neither another test's fixed choice
    nor a client's outgoing connection is likely to take it before the test binds it,
    also across restarts of the process listening there."""
    import random
    lo = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, max(lo, 20001))
        s = socket.socket()
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port found below %d" % lo)


def require(*modules):
    """Exit 77 (the test is skipped) unless every Python module named is importable."""
    import importlib
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            print("SKIP: %s missing" % name)
            sys.exit(77)


def _has_key(conf_text, key):
    return re.search(r"^\s*%s\s*[=:]" % re.escape(key), conf_text, re.M) is not None


class Broker:
    def __init__(self, slipstream, conf_text, tmp, control=None, start_timeout=30,
                 listen_host=None):
        self.tmp = tmp
        # The address the listening line names (a regex): the transport's by default;
        # a test giving its own DPDK port (memif) names the port's.
        self.listen_host = listen_host or (re.escape(DPDK_HOST) if DPDK else r"127\.0\.0\.1")
        self.slipstream = slipstream
        self.control = None
        self.control_bin = control
        self.control_runs = 0
        self.conf = os.path.join(tmp, "server-%d.properties" % time.monotonic_ns())
        if control is not None and not _has_key(conf_text, "control.metadata"):
            # Topics live in the control process's metadata log (as scripts/run runs it).
            conf_text = "control.metadata=controller\n" + conf_text
        if not _has_key(conf_text, "metrics.shm.path"):
            # Not /dev/shm/slipstream-metrics-<node.id>, which every test would share.
            conf_text = "metrics.shm.path=%s.metrics\n" % self.conf + conf_text
        if not _has_key(conf_text, "control.metrics.listen"):
            # Not the fixed 127.0.0.1:9644 another test's control process may hold (the
            # dataplane leaves the control process's keys to it).
            conf_text = "control.metrics.listen=127.0.0.1:0\n" + conf_text
        with open(self.conf, "w") as f:
            f.write(transport_config(conf_text).replace("@CONF@", self.conf))
        self.log_path = self.conf + ".log"
        self.log = open(self.log_path, "w+")
        self.proc = None
        self.port = None
        self.start_dataplane(start_timeout)
        if control is not None:
            self.start_control()

    def start_dataplane(self, timeout=30):
        """Start the dataplane on this broker's file (again, after stop_dataplane() or
        kill_dataplane()); wait until it listens and has started, up to @timeout s,
        and, with the control process running, until both have reconnected. Sets
        host, port and addr (port 0 listeners get a new port). Kills both and raises
        RuntimeError if it does not start."""
        before = self.text()
        started = before.count("started;")
        connected = before.count("control process connected")
        control_up = self.control is not None and self.control.poll() is None
        back = self.control_text().count("dataplane connection back") if control_up else 0
        loaded = control_up and "__consumer_offsets loaded" in self.control_text()
        self.proc = subprocess.Popen([self.slipstream, self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        host = self.listen_host
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            m = re.findall(r"listening on PLAINTEXT://(%s):(\d+)" % host, text[len(before):])
            if m and text.count("started;") > started and (not control_up or (
                    text.count("control process connected") > connected and
                    (not loaded or
                     self.control_text().count("dataplane connection back") > back))):
                self.host = m[-1][0]
                self.port = int(m[-1][1])
                self.addr = "%s:%d" % (self.host, self.port)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        text = self.text()
        self.kill()
        raise RuntimeError("broker did not start:\n" + text[len(before):][-6000:])

    def stop_dataplane(self, timeout=30):
        """SIGTERM to the dataplane alone (the control process keeps running): its exit
        code; killed (and re-raised) past @timeout seconds."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_dataplane()
            raise

    def kill_dataplane(self):
        """SIGKILL to the dataplane alone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def connect(self):
        s = socket.create_connection((self.host, self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def control_metrics_url(self):
        """The /metrics address the running control process logged (None if none)."""
        m = re.search(r"metrics on (http://[^ ]+/metrics)", self.control_text())
        return m.group(1) if m else None

    def control_text(self):
        """The log of the last control process started ("" before the first)."""
        if self.control_runs == 0:
            return ""
        with open(self.control_log_path) as f:
            return f.read()

    def bad_lines(self, allow=None):
        """The dataplane log's error and warning lines and sanitizer reports (a test
        that expects none fails on them), but those matching the regex @allow."""
        return [l for l in self.text().splitlines()
                if BAD_LINE.search(l) and (allow is None or not re.search(allow, l))]

    def stop_clean(self, what, timeout=15, allow=None):
        """SIGTERM (stop()); AssertionError naming @what unless the exit code is 0, the
        log says "every log closed cleanly" and it has no bad_lines(@allow)."""
        rc = self.stop(timeout)
        if rc != 0 or "storage: every log closed cleanly" not in self.text():
            raise AssertionError("%s: exit code %s, or no clean shutdown" % (what, rc))
        bad = self.bad_lines(allow)
        if bad:
            raise AssertionError("%s: error/warning lines:\n%s" % (what, "\n".join(bad[:10])))

    def tail(self, n=6000):
        """The ends of the dataplane's and the control process's logs, for a failure."""
        out = "--- broker log (tail) ---\n" + self.text()[-n:]
        if self.control_runs > 0:
            out += "\n--- control log (tail) ---\n" + self.control_text()[-n:]
        return out
    def start_control(self, timeout=30, control=None):
        """Start the control process (@control: its binary, for a Broker made without
        one; the topics then stay where the file says, in local mode by default); wait
        until it is ready and the dataplane is connected to it."""
        if control is not None:
            self.control_bin = control
        self.control_runs += 1
        self.control_log_path = "%s.control-%d.log" % (self.conf, self.control_runs)
        connected = self.text().count("control process connected")
        with open(self.control_log_path, "w") as log:
            self.control = subprocess.Popen([self.control_bin, self.conf],
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ("control: ready" in self.control_text() and
                    self.text().count("control process connected") > connected):
                return
            if self.control.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("control process did not start:\n" + self.control_text() +
                           "\n--- broker ---\n" + self.text()[-3000:])

    def stop_control(self, timeout=15):
        """SIGTERM to the control process; its exit code."""
        if self.control is None or self.control.poll() is not None:
            return None
        self.control.send_signal(signal.SIGTERM)
        try:
            return self.control.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_control()
            raise

    def kill_control(self):
        if self.control is not None and self.control.poll() is None:
            self.control.kill()
            self.control.wait(5)

    def restart(self, which="both", kill=False, stop_timeout=15, start_timeout=30):
        """Stop @which ("dataplane", "control" or "both": the control process, if
        running, then the dataplane) with SIGTERM, or SIGKILL with @kill, each within
        @stop_timeout s, and start it again (the dataplane first), each within
        @start_timeout s, until ready and connected as start_dataplane() and
        start_control() wait. @return the exit code of the stop (the dataplane's for
        "both"; None after a kill)."""
        control = which in ("control", "both") and self.control_bin is not None
        rc = None
        if control:
            if kill:
                self.kill_control()
            else:
                rc = self.stop_control(stop_timeout)
        if which in ("dataplane", "both"):
            if kill:
                self.kill_dataplane()
            else:
                rc = self.stop_dataplane(stop_timeout)
            self.start_dataplane(start_timeout)
        if control:
            self.start_control(start_timeout)
        return rc

    def stop(self, timeout=15):
        """SIGTERM, then the exit code; killed (and re-raised) past @timeout seconds."""
        self.stop_control(timeout)
        try:
            return self.stop_dataplane(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        self.kill_control()
        self.kill_dataplane()


def recv_frame(sock):
    """One size-prefixed Kafka frame read from @sock: the bytes after the size.
    ConnectionError if the peer closes first (the socket's timeout applies)."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        return buf
    return exact(struct.unpack(">i", exact(4))[0])


def incremental_alter_configs(b, topic, ops, validate_only=False):
    """IncrementalAlterConfigs v0 (raw) on topic @topic of Broker @b:
    ops = [(name, op, value or None)], op 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT.
    Returns the resource's error code."""
    s = b.connect()
    body = struct.pack(">ib", 1, 2) + struct.pack(">h", len(topic)) + topic.encode()
    body += struct.pack(">i", len(ops))
    for name, op, value in ops:
        body += struct.pack(">h", len(name)) + name.encode() + struct.pack(">b", op)
        body += struct.pack(">h", -1) if value is None else \
            struct.pack(">h", len(value)) + value.encode()
    body += struct.pack(">b", 1 if validate_only else 0)
    hdr = struct.pack(">hhih", 44, 0, 7, 2) + b"it"
    s.sendall(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    r = recv_frame(s)
    s.close()
    corr, throttle, n, err = struct.unpack(">iiih", r[:14])
    assert corr == 7 and n == 1, r
    return err


def start_metrics_server(binary, shm, timeout=30):
    """slipstream-metrics (@binary) serving the segment @shm on 127.0.0.1, port 0: its
    Popen and the /metrics URL it logged. Kills it and raises RuntimeError if it does
    not say where it listens within @timeout seconds."""
    log = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([binary, "--shm", shm, "--listen", "127.0.0.1:0"],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+/metrics)", log.read())
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    p.wait(5)
    log.seek(0)
    raise RuntimeError("slipstream-metrics did not start: " + log.read())


class TestRun:
    """A test's temporary directory (self.tmp, prefix @prefix) and the brokers and
    processes started in it, as a context manager:

        with slp_broker.TestRun("slp-foo-") as run:
            b = run.broker(SLIPSTREAM, CONFIG % run.path("logs"))
            ...

    On an exception (not SystemExit) it writes the log tails of the brokers that
    are still running, and of the last one started, to stderr, then lets the
    exception go on; in any case it kills them, and the processes given to
    process(), and removes the directory (unless SLP_KEEP_TMP=1)."""

    def __init__(self, prefix, tail=6000, dir=None):
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir=dir)
        self.brokers = []
        self.procs = []
        self.tail = tail

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def broker(self, slipstream, conf_text, control=None, **kw):
        """A Broker in this run's directory (see Broker)."""
        b = Broker(slipstream, conf_text, self.tmp, control=control, **kw)
        self.brokers.append(b)
        return b

    def process(self, proc):
        """Kill the Popen @proc (if still running) when the run ends; returns it."""
        self.procs.append(proc)
        return proc

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        try:
            if etype is not None and not issubclass(etype, SystemExit):
                for b in self.brokers:
                    if b is self.brokers[-1] or (b.proc is not None and
                                                 b.proc.poll() is None):
                        sys.stderr.write(b.tail(self.tail) + "\n")
                sys.stderr.flush()
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
            for b in self.brokers:
                b.kill()
            if os.environ.get("SLP_KEEP_TMP") == "1":
                sys.stderr.write("kept %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return False
