# SPDX-License-Identifier: Apache-2.0
"""A slipstream broker process for the integration tests.

Writes a configuration file into the test's temporary directory (the text
may name the file itself as @CONF@, e.g. for a log directory beside it),
starts the binary, waits for "listening on PLAINTEXT://127.0.0.1:PORT" and
"started;" in its log (30 s at most), and stops it with SIGTERM or kills it.
Only loopback addresses are used.
"""
import os
import re
import signal
import socket
import subprocess
import time


class Broker:
    def __init__(self, slipstream, conf_text, tmp):
        self.tmp = tmp
        self.conf = os.path.join(tmp, "server-%d.properties" % time.monotonic_ns())
        with open(self.conf, "w") as f:
            f.write(conf_text.replace("@CONF@", self.conf))
        self.log_path = self.conf + ".log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([slipstream, self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"listening on PLAINTEXT://127\.0\.0\.1:(\d+)", self.text())
            if m and "started;" in self.text():
                self.port = int(m.group(1))
                self.addr = "127.0.0.1:%d" % self.port
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
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self, timeout=15):
        """SIGTERM, then the exit code; killed (and re-raised) past @timeout seconds."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
