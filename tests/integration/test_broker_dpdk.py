# SPDX-License-Identifier: Apache-2.0
"""The broker's integration tests again, over the DPDK transport.

For each test script named on the command line (default: the kcat and the
confluent-kafka ones), creates a network namespace `slp-dpdk-<random>`,
brings its loopback up and runs the script inside it with SLP_TRANSPORT=dpdk:
slp_broker.Broker then starts the broker on a net_tap port (TAP interface
slipstream0, kernel side 198.18.0.1/24, broker 198.18.0.2:9092) and the
script's clients (kcat, confluent_kafka, raw sockets) reach it through the
kernel's TCP over that TAP, all inside the namespace. Then the kcat script
once more over net_af_packet on a veth pair in a fresh namespace (veth1 at
198.18.0.1/24 with checksum offload on, so the broker receives the partial
checksums a veth peer sends). The namespace is deleted afterwards, also when
the script fails or times out.

Needs root (namespaces, TAP); prints SKIP and exits 77 otherwise (meson's
skip code). Bounded: each script runs at most 240 s.

Usage: test_broker_dpdk.py PATH_TO_SLIPSTREAM [SCRIPT...]
"""
import os
import secrets
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SLIPSTREAM = sys.argv[1]
SCRIPTS = sys.argv[2:] or ["test_broker_kcat.py", "test_broker_python.py"]
PYTHON = "/usr/bin/python3"  # the one that sees confluent_kafka and kafka-python


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, timeout=10)


def run_in_netns(script, port="tap"):
    ns = "slp-dpdk-" + secrets.token_hex(4)
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        if port == "af_packet":
            ip("-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
            # No TSO/GSO super-frames from the kernel side: af_packet's ring frames
            # (2 KiB) would truncate them (docs/dataplane.md).
            ip("-n", ns, "link", "set", "veth1", "gso_max_segs", "1")
            ip("-n", ns, "addr", "add", "198.18.0.1/24", "dev", "veth1")
            ip("-n", ns, "link", "set", "veth0", "up")
            ip("-n", ns, "link", "set", "veth1", "up")
        env = dict(os.environ, SLP_TRANSPORT="dpdk", SLP_DPDK_PORT=port)
        print("=== %s in namespace %s (DPDK on net_%s)" % (script, ns, port), flush=True)
        r = subprocess.run(["ip", "netns", "exec", ns, PYTHON, os.path.join(HERE, script),
                            SLIPSTREAM], env=env, timeout=240)
        return r.returncode
    except subprocess.TimeoutExpired:
        print("%s: timed out" % script, flush=True)
        return 1
    finally:
        # Kill whatever the script left in the namespace (only its own processes).
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                              timeout=10).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "delete", ns], timeout=10)


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("SKIP: the DPDK transport tests need root and /dev/net/tun")
        return 77
    failed = []
    runs = [(s, "tap") for s in SCRIPTS] + [("test_broker_kcat.py", "af_packet")]
    for script, port in runs:
        rc = run_in_netns(script, port)
        if rc == 77:
            print("%s: skipped" % script)
        elif rc != 0:
            failed.append("%s (net_%s)" % (script, port))
    if failed:
        print("FAILED over DPDK: %s" % ", ".join(failed))
        return 1
    print("OK over DPDK: %s" % ", ".join("%s (net_%s)" % r for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
