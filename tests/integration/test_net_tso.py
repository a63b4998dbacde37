# SPDX-License-Identifier: Apache-2.0
"""TCP segmentation offload over net_tap against Linux's TCP.

slipstream-netperf --tso serves on a net_tap port inside a namespace this test
creates (slpoff-tso-<pid>; TAP offtso<pid>, kernel side 198.18.31.1/24, stack
198.18.31.2); the test moves into the namespace and talks to it with Python
sockets, every byte checked against np.h's pattern:

- 32 MiB from the stack to Linux (the stack's frames of up to 64 KiB, cut by
  net_tap's librte_gso into 1434-byte segments);
- 32 MiB from Linux to the stack's checked sink;
- an echo of 200 messages of 60,000 bytes (both ways on one connection);
- 8 MiB from the stack under 10 % random loss of its segments (nftables on
  the TAP's ingress): the resends of lost TSO segments (a resend once
  reached past SND.MAX and stalled the connection);
then the server's counters: TSO frames sent, at least two segments each,
none of the checks failed, and the stack's transmitted frames equal to what
the kernel counted on the TAP's receive side (before the loss phase).

Needs root, /dev/net/tun, ip and nft; exit 77 (skipped) otherwise. Every wait
is bounded (socket timeouts 60 s; the whole run well under a minute here).

Usage: test_net_tso.py PATH_TO_SLIPSTREAM_NETPERF
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from netperf_wire import (MIB, REPORT, ECHO, SINK, SOURCE, pattern, hdr, recv_exact,
                          enter_netns)

NETPERF = sys.argv[1] if len(sys.argv) > 1 else ""
PID = os.getpid()
NS = "slpoff-tso-%d" % PID
TAP = "offtso%d" % (PID % 100000)
IP_LX, IP_DP, PORT = "198.18.31.1", "198.18.31.2", 5201
NFT_TABLE = "slpofftso"


def sh(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect((IP_DP, PORT))
    return s


def from_stack(nbytes):
    s = connect()
    s.sendall(hdr(SOURCE, nbytes=nbytes))
    off = 0
    while True:
        d = s.recv(MIB)
        if not d:
            break
        if d != pattern(off, len(d)):
            raise RuntimeError("byte mismatch near offset %d" % off)
        off += len(d)
    s.close()
    if off != nbytes:
        raise RuntimeError("received %d of %d bytes" % (off, nbytes))


def to_stack(nbytes):
    s = connect()
    s.sendall(hdr(SINK, nbytes=nbytes))
    off = 0
    while off < nbytes:
        n = min(4 * MIB, nbytes - off)
        s.sendall(pattern(off, n))
        off += n
    magic, status, ok = struct.unpack("!IIQ", recv_exact(s, 16))
    if magic != REPORT or status != 0 or ok != nbytes:
        raise RuntimeError("sink report %x status %d bytes %d of %d" % (magic, status, ok, nbytes))
    s.close()


def echo(count, size):
    s = connect()
    s.sendall(hdr(ECHO))
    for i in range(count):
        msg = pattern(i * size, size)
        s.sendall(msg)
        if recv_exact(s, size) != msg:
            raise RuntimeError("echo %d differs" % i)
    s.close()


def kernel_rx_packets():
    """Frames the kernel received on the TAP (this namespace's view; /sys shows
    the namespace it was mounted in)."""
    j = json.loads(sh(["ip", "-j", "-s", "link", "show", "dev", TAP]).stdout)
    return int(j[0]["stats64"]["rx"]["packets"])


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("test_net_tso: needs root and /dev/net/tun; skipped")
        return 77
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            print("test_net_tso: %s not installed; skipped" % tool)
            return 77
    if not os.path.exists(NETPERF):
        print("test_net_tso: %s not built; skipped" % NETPERF)
        return 77
    sh(["ip", "netns", "add", NS])
    srv = None
    try:
        args = ["ip", "netns", "exec", NS, NETPERF, "--no-huge", "-m", "768", "--no-pci",
                "--file-prefix", "offtso%d" % PID, "--log-level=error", "--no-telemetry",
                "-l", "0", "--vdev=net_tap0,iface=%s" % TAP, "--", "--server", "--ip", IP_DP,
                "--port", str(PORT), "--mbufs", "32767", "--idle-us", "20", "--tso",
                "--duration", "600"]
        srv = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = srv.stdout.readline()
        if not line.startswith("READY"):
            err = srv.stderr.read() if srv.poll() is not None else ""
            print("test_net_tso: netperf on net_tap did not start (%r %s); skipped"
                  % (line, err.strip()[-500:]))
            return 77
        enter_netns(NS)
        sh(["ip", "addr", "add", IP_LX + "/24", "dev", TAP])
        sh(["ip", "link", "set", TAP, "up"])
        sh(["ip", "link", "set", "lo", "up"])
        t = time.time()
        from_stack(32 * MIB)
        print("ok: 32 MiB stack -> Linux checked (%.1f s)" % (time.time() - t), flush=True)
        t = time.time()
        to_stack(32 * MIB)
        print("ok: 32 MiB Linux -> stack checked (%.1f s)" % (time.time() - t), flush=True)
        t = time.time()
        echo(200, 60000)
        print("ok: 200 echoes of 60,000 bytes (%.1f s)" % (time.time() - t), flush=True)
        rx_before_loss = kernel_rx_packets()
        nft = ("table netdev %s {\n  chain in { type filter hook ingress device %s priority 0; "
               "policy accept; numgen random mod 100 < 10 drop; }\n}\n" % (NFT_TABLE, TAP))
        r = subprocess.run(["nft", "-f", "-"], input=nft, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        t = time.time()
        from_stack(8 * MIB)
        print("ok: 8 MiB stack -> Linux under 10%% loss checked (%.1f s)" % (time.time() - t),
              flush=True)
        sh(["nft", "delete", "table", "netdev", NFT_TABLE])

        srv.send_signal(signal.SIGINT)
        out, err = srv.communicate(timeout=30)
        lines = [x for x in out.splitlines() if x.startswith("{")]
        assert lines, ("no stats from the server", err[-1000:])
        st = json.loads(lines[-1])
        s = st["stack"]
        print("server: TSO frames %d, segments %d, fallbacks %d, tx frames %d, "
              "sack resends %d, rto expiries %d, RACK lost %d"
              % (s["tcp_tso_frames"], s["tcp_tso_segments"], s["tcp_tso_fallbacks"],
                 s["tx_frames"], s["tcp_sack_retransmits"], s["tcp_rto_expiries"],
                 s["tcp_rack_lost"]))
        assert st["ok"] and not st["bad_data"] and not st["sink_bad"], st
        assert s["tcp_tso_frames"] > 100, s
        assert s["tcp_tso_segments"] >= 2 * s["tcp_tso_frames"], s
        # Wire frames: what the kernel counted before the loss phase is at most
        # what the stack counted overall (nft drops after the kernel's count).
        assert rx_before_loss <= s["tx_frames"], (rx_before_loss, s["tx_frames"])
        assert rx_before_loss > s["tcp_tso_segments"] // 2, (rx_before_loss, s)
        print("ok")
        return 0
    finally:
        if srv is not None and srv.poll() is None:
            srv.kill()
            srv.wait(10)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30)


if __name__ == "__main__":
    sys.exit(main())
