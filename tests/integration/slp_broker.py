# SPDX-License-Identifier: Apache-2.0
"""A slipstream broker process for the integration tests.

Writes a configuration file into the test's temporary directory (the text
may name the file itself as @CONF@, e.g. for a log directory beside it),
starts the binary, waits for "listening on PLAINTEXT://HOST:PORT" and
"started;" in its log (30 s at most), and stops it with SIGTERM or kills it.

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
kill_control() restart it on its own; stop() and kill() stop both.
"""
import os
import re
import signal
import socket
import subprocess
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


class Broker:
    def __init__(self, slipstream, conf_text, tmp, control=None):
        self.tmp = tmp
        self.control = None
        self.control_bin = control
        self.control_runs = 0
        self.conf = os.path.join(tmp, "server-%d.properties" % time.monotonic_ns())
        if control is not None and not re.search(r"^\s*control\.metadata\s*[=:]", conf_text,
                                                 re.M):
            # Topics live in the control process's metadata log (as scripts/run runs it).
            conf_text = "control.metadata=controller\n" + conf_text
        with open(self.conf, "w") as f:
            f.write(transport_config(conf_text).replace("@CONF@", self.conf))
        self.log_path = self.conf + ".log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([slipstream, self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"listening on PLAINTEXT://(%s):(\d+)" % (
                re.escape(DPDK_HOST) if DPDK else r"127\.0\.0\.1"), self.text())
            if m and "started;" in self.text():
                self.host = m.group(1)
                self.port = int(m.group(2))
                self.addr = "%s:%d" % (self.host, self.port)
                if control is not None:
                    self.start_control()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("broker did not start:\n" + self.text())

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def connect(self):
        s = socket.create_connection((self.host, self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def control_text(self):
        with open(self.control_log_path) as f:
            return f.read()

    def start_control(self, timeout=30):
        """Start the control process; wait until the dataplane is connected to it."""
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

    def stop(self, timeout=15):
        """SIGTERM, then the exit code; killed (and re-raised) past @timeout seconds."""
        self.stop_control(timeout)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        self.kill_control()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
