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

Then the default (no configuration file, dataplane.transport=auto) in a
namespace of its own: the broker comes up on net_tap at 198.18.0.2:9092 and
prints the kcat line; a second broker there cannot have the TAP name and
falls back to kernel sockets with one line saying why; run as `nobody` it
falls back because it is not root; each stops with exit 0 on SIGTERM and the
TAP interface goes with the first.

With --only before the scripts, only the scripts run (no af_packet kcat
run, no default/fallback checks): the second meson test (broker_dpdk_more)
runs the remaining scripts that way, in parallel with the first.

Needs root (namespaces, TAP); prints SKIP and exits 77 otherwise (meson's
skip code). Bounded: each script runs at most 240 s (longer ones are named
in TIMEOUTS). Each script's time is printed, to keep the whole test command
within its budget.

Usage: test_broker_dpdk.py PATH_TO_SLIPSTREAM [--only] [SCRIPT[+ARG...]...]
(a script's own arguments after the slipstream path follow its name, joined
by "+", e.g. test_loadgen.py+build/tools/loadgen/slipstream-load).
SLP_NETNS_PREFIX overrides the namespaces' name prefix (default slp-dpdk-).
"""
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SLIPSTREAM = sys.argv[1]
ONLY = sys.argv[2:3] == ["--only"]
SCRIPTS = sys.argv[3 if ONLY else 2:] or ["test_broker_kcat.py", "test_broker_python.py"]
PYTHON = "/usr/bin/python3"  # the one that sees confluent_kafka and kafka-python
NETNS_PREFIX = os.environ.get("SLP_NETNS_PREFIX", "slp-dpdk-")
# Scripts that need more than the default 240 s over DPDK on a loaded machine.
TIMEOUTS = {"test_broker_writers.py": 600, "test_control_offsets.py": 420,
            "test_broker_scale.py": 420, "test_control_metadata.py": 420,
            "test_control_burrow.py": 360}


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, timeout=10)


def run_in_netns(script, port="tap"):
    ns = NETNS_PREFIX + secrets.token_hex(4)
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
        name, *args = script.split("+")
        print("=== %s in namespace %s (DPDK on net_%s)" % (name, ns, port), flush=True)
        t0 = time.monotonic()
        r = subprocess.run(["ip", "netns", "exec", ns, PYTHON, os.path.join(HERE, name),
                            SLIPSTREAM] + args, env=env, timeout=TIMEOUTS.get(name, 240))
        print("=== %s: exit %d after %.0f s" % (name, r.returncode, time.monotonic() - t0),
              flush=True)
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


def start(cmd, log_path, want, timeout=30):
    """Start @cmd logging to @log_path; wait for every regex in @want. (proc, text)."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with open(log_path) as f:
            text = f.read()
        if all(re.search(w, text) for w in want):
            return proc, text
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise AssertionError("%s: wanted %r\n%s" % (cmd, want, text))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(15)
    assert rc == 0, rc


def default_and_fallback():
    ns = NETNS_PREFIX + secrets.token_hex(4)
    tmp = tempfile.mkdtemp(prefix="slp-dpdk-default-")
    os.chmod(tmp, 0o777)  # the `nobody` run writes its logs here
    kcat = shutil.which("kcat")
    procs = []
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        base = ["ip", "netns", "exec", ns, SLIPSTREAM, "--override", "dpdk.hugepages=off",
                "--override", "dpdk.memory.mb=768"]
        # No file: DPDK on net_tap, the kernel side configured by the broker. Each broker
        # gets its own metrics segment (/dev/shm is not in the network namespace).
        a, text = start(base + ["--override", "log.dir=%s/a" % tmp, "--override",
                                "metrics.shm.path=%s/a.metrics" % tmp],
                        os.path.join(tmp, "a.log"),
                        [r"listening on PLAINTEXT://198\.18\.0\.2:9092 \(DPDK port net_tap0",
                         r"reach the broker with: kcat -b 198\.18\.0\.2:9092 -L", "started;"])
        procs.append(a)
        addr = subprocess.run(["ip", "-n", ns, "-4", "addr", "show", "slipstream0"],
                              capture_output=True, text=True, timeout=10).stdout
        assert "198.18.0.1/24" in addr and "UP" in addr, addr
        if kcat:
            out = subprocess.run(["ip", "netns", "exec", ns, kcat, "-b", "198.18.0.2:9092",
                                  "-L", "-m", "10"], capture_output=True, text=True,
                                 timeout=30).stdout
            assert "broker 1 at 198.18.0.2:9092" in out, out
        # The TAP name is taken: one line why, then kernel sockets on the listener.
        b, text = start(base + ["--override", "log.dir=%s/b" % tmp, "--override",
                                "metrics.shm.path=%s/b.metrics" % tmp, "--override",
                                "listeners=PLAINTEXT://127.0.0.1:19092"],
                        os.path.join(tmp, "b.log"),
                        [r"DPDK transport not started \(interface slipstream0 exists "
                         r"already .*\); serving kernel sockets on "
                         r"127\.0\.0\.1:19092 instead",
                         r"listening on PLAINTEXT://127\.0\.0\.1:19092", "started;"])
        procs.append(b)
        assert len(re.findall("DPDK transport not started", text)) == 1, text
        if kcat:
            out = subprocess.run(["ip", "netns", "exec", ns, kcat, "-b", "127.0.0.1:19092",
                                  "-L", "-m", "10"], capture_output=True, text=True,
                                 timeout=30).stdout
            assert "broker 1 at 127.0.0.1:19092" in out, out
        # Not root: the same fallback, for that reason.
        c, text = start(["ip", "netns", "exec", ns, "setpriv", "--reuid=nobody", "--regid=nogroup",
                         "--clear-groups", SLIPSTREAM,
                         "--override", "dpdk.hugepages=off", "--override", "dpdk.memory.mb=256",
                         "--override", "log.dir=%s/c" % tmp, "--override",
                         "metrics.shm.path=%s/c.metrics" % tmp, "--override",
                         "listeners=PLAINTEXT://127.0.0.1:19093"], os.path.join(tmp, "c.log"),
                        [r"DPDK transport not started \(not running as root\); serving kernel "
                         r"sockets on 127\.0\.0\.1:19093 instead", "started;"])
        procs.append(c)
        for p in reversed(procs):
            stop(p)
        procs = []
        links = subprocess.run(["ip", "-n", ns, "link"], capture_output=True, text=True,
                               timeout=10).stdout
        assert "slipstream0" not in links, links
        print("ok: default on net_tap, fallback when the TAP is taken and when not root")
        return 0
    except AssertionError as e:
        print("FAIL default_and_fallback: %s" % e, flush=True)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        subprocess.run(["ip", "netns", "delete", ns], timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("SKIP: the DPDK transport tests need root and /dev/net/tun")
        return 77
    failed = []
    runs = [(s, "tap") for s in SCRIPTS]
    if not ONLY:
        runs.append(("test_broker_kcat.py", "af_packet"))
    for script, port in runs:
        rc = run_in_netns(script, port)
        if rc == 77:
            print("%s: skipped" % script)
        elif rc != 0:
            failed.append("%s (net_%s)" % (script.split("+")[0], port))
    if not ONLY and default_and_fallback() != 0:
        failed.append("default_and_fallback")
    if failed:
        print("FAILED over DPDK: %s" % ", ".join(failed))
        return 1
    print("OK over DPDK: %s" % ", ".join("%s (net_%s)" % (s.split("+")[0], p) for s, p in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
