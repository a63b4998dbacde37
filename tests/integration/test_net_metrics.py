# SPDX-License-Identifier: Apache-2.0
"""The DPDK TCP/IP stack's counters at slipstream-control's /metrics.

Creates a network namespace (slpdf-m-<random>) and runs itself inside it: the
broker on a net_tap port (slp_broker with SLP_TRANSPORT=dpdk: TAP slipstream0,
kernel side 198.18.0.1/24, broker 198.18.0.2:9092), metrics.shm.path in the
test's directory (slp_broker.TestRun), and slipstream-control beside it
(control.metadata=local) serving /metrics on 127.0.0.1 (control.metrics.listen).
Then, scraping /metrics:

- the slipstream_net_* and slipstream_dpdk_* families are there for
  port="net_tap0", worker="0";
- three raw TCP connections sending ApiVersions: the established gauge and
  the passive opens rise by three, request frames read in place rise by
  three, and the gauge goes back once they close;
- malformed frames written on the kernel side of the TAP with a packet
  socket (5 with a bad IPv4 header checksum, 7 with a bad TCP checksum, 3
  with a TCP data offset below 5 words): each counted exactly under its
  reason (ipv4_checksum, tcp_checksum, tcp_malformed), and the broker still
  answers;
- frames and bytes: the stack's transmit counters equal what the kernel
  counted on slipstream0's receive side (the kernel's own statistics);
- TSO (dataplane.port.tso=auto: net_tap offers it): a consumer reads 3 MiB
  it produced before; slipstream_net_tso_frames_total rises, the segments
  they made (slipstream_net_tso_segments_total) are at least two per frame,
  and the transmit counters (segments on the wire) still equal the kernel's
  receive counters;
- under 10 % random loss of the broker's frames (nftables, netdev ingress
  hook of slipstream0), the consumer reads the 3 MiB again: the
  retransmission counters (timeout, fast, sack, lost_retransmit, tail loss
  probes) and RACK's lost count (slipstream_net_tcp_rack_lost_total) rise,
  and every record comes back.
Every counter series must not go down between scrapes.

Needs root, /dev/net/tun, nft and confluent_kafka (/usr/bin/python3); exit 77
(skipped) otherwise. Bounded: every wait has a deadline, the whole run is
under two minutes on a quiet machine (inner run: 240 s at most).

Usage: test_net_metrics.py PATH_TO_SLIPSTREAM PATH_TO_SLIPSTREAM_CONTROL
"""
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
PYTHON = "/usr/bin/python3"
SLIPSTREAM, CONTROL = sys.argv[1], sys.argv[2]
TAP = "slipstream0"
PORT_LABEL = 'port="net_tap0",worker="0"'
TOPIC = "netm"
NFT_TABLE = "slpdfm"

# The control process only serves /metrics here: topics stay the dataplane's.
CONFIG = """
dpdk.hugepages=off
num.partitions=1
auto.create.topics.enable=true
control.metadata=local
log.dir=%s
"""


# ---- outside: the namespace ----

def outer():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("SKIP: needs root and /dev/net/tun")
        return 77
    if shutil.which("nft") is None or shutil.which("ip") is None:
        print("SKIP: needs ip and nft")
        return 77
    ns = "slpdf-m-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        env = dict(os.environ, SLP_TRANSPORT="dpdk", SLP_DPDK_PORT="tap", SLPDF_INNER="1")
        r = subprocess.run(["ip", "netns", "exec", ns, PYTHON, os.path.abspath(__file__),
                            SLIPSTREAM, CONTROL], env=env, timeout=240)
        return r.returncode
    except subprocess.TimeoutExpired:
        print("FAIL: timed out")
        return 1
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                              timeout=10).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "delete", ns], timeout=10)


# ---- inside ----

def parse(text):
    """{(name, labels text): value}; TYPE lines give {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
            assert m, line
            samples[(m.group(1), (m.group(2) or "")[1:-1])] = float(m.group(3))
    return samples, types


class Scraper:
    def __init__(self, url):
        self.url = url
        self.prev = {}
        self.types = {}

    def scrape(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            assert r.status == 200
            s, t = parse(r.read().decode())
        self.types.update(t)
        for key, v in s.items():
            if self.types.get(key[0]) == "counter" and key in self.prev:
                assert v >= self.prev[key], ("counter went down", key, self.prev[key], v)
        self.prev = s
        return s


def net(s, name, extra=""):
    labels = PORT_LABEL + ("," + extra if extra else "")
    return s.get((name, labels))


def wait_for(scraper, cond, what, seconds=20):
    deadline = time.monotonic() + seconds
    s = scraper.scrape()
    while not cond(s):
        if time.monotonic() > deadline:
            raise AssertionError("%s: not seen in %d s" % (what, seconds))
        time.sleep(0.1)
        s = scraper.scrape()
    return s


def api_versions(sock, corr):
    client = b"netm"
    body = struct.pack("!hhih", 18, 0, corr, len(client)) + client
    sock.sendall(struct.pack("!i", len(body)) + body)
    n = struct.unpack("!i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, n)
    assert struct.unpack("!i", resp[:4])[0] == corr
    assert struct.unpack("!h", resp[4:6])[0] == 0  # error_code NONE


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "connection closed"
        out += chunk
    return out


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def frame(dmac, smac, src, dst, sport, dport, ip_bad=False, tcp_bad=False, doff=5):
    """An Ethernet/IPv4/TCP SYN frame, optionally broken."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, doff << 4, 0x02, 65535, 0, 0)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(ph + tcp) ^ (0x0f0f if tcp_bad else 0)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 7, 0x4000, 64, 6, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    ic = csum(iph) ^ (0x1234 if ip_bad else 0)
    iph = iph[:10] + struct.pack("!H", ic) + iph[12:]
    return dmac + smac + b"\x08\x00" + iph + tcp


def broker_mac():
    out = subprocess.run(["ip", "neigh", "show", "198.18.0.2", "dev", TAP], capture_output=True,
                         text=True, timeout=10).stdout
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    assert m, out
    return bytes.fromhex(m.group(1).replace(":", ""))


def kernel_rx():
    base = "/sys/class/net/%s/statistics/" % TAP
    return tuple(int(open(base + k).read()) for k in ("rx_packets", "rx_bytes"))


def tx_vs_kernel(sc):
    """The stack's transmit counters against the kernel's receive side of the TAP
    (equal once the connections are quiet: retried for 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        s = sc.scrape()
        kp, kb = kernel_rx()
        tp = net(s, "slipstream_net_tx_packets_total")
        tb = net(s, "slipstream_net_tx_bytes_total")
        if (tp, tb) == (kp, kb):
            break
        assert time.monotonic() < deadline, ("tx vs kernel rx", tp, tb, kp, kb)
        time.sleep(0.2)
    print("ok: stack tx = kernel rx on %s: %d frames, %d bytes" % (TAP, tp, tb))


def retransmits(s):
    total = 0
    for kind in ("timeout", "fast", "sack", "lost_retransmit"):
        total += net(s, "slipstream_net_tcp_retransmits_total", 'kind="%s"' % kind)
    return total + net(s, "slipstream_net_tcp_tail_loss_probes_total")


def read_back(b, Consumer, TopicPartition, n, value, group):
    """Read records 0..n-1 of TOPIC (each must be value); returns how many came
    within 120 s."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": group,
                  "enable.auto.commit": False, "fetch.max.bytes": 1048576,
                  "max.partition.fetch.bytes": 262144})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = 0
    deadline = time.monotonic() + 120
    while got < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        assert m.offset() == got and m.value() == value, (m.offset(), got)
        got += 1
    c.close()
    return got


def inner():
    import slp_broker
    try:
        from confluent_kafka import Consumer, Producer, TopicPartition
    except ImportError:
        print("SKIP: needs confluent_kafka (/usr/bin/python3)")
        return 77
    with slp_broker.TestRun("slpdf-netm-") as run:
        b = run.broker(SLIPSTREAM, CONFIG % run.path("logs"), control=CONTROL,
                       start_timeout=60)
        assert slp_broker.DPDK, "run inside the namespace with SLP_TRANSPORT=dpdk"
        url = b.control_metrics_url()
        assert url is not None, "no /metrics address in the control process's log"
        sc = Scraper(url)
        s = wait_for(sc, lambda s: net(s, "slipstream_net_rx_packets_total") is not None,
                     "slipstream_net_rx_packets_total for net_tap0 worker 0")
        for fam, kind in (("slipstream_net_rx_dropped_total", "counter"),
                          ("slipstream_net_tcp_connections", "gauge"),
                          ("slipstream_net_tcp_retransmits_total", "counter"),
                          ("slipstream_net_tcp_rack_lost_total", "counter"),
                          ("slipstream_net_tcp_rack_reordering_timeouts_total", "counter"),
                          ("slipstream_net_tso_frames_total", "counter"),
                          ("slipstream_net_tso_segments_total", "counter"),
                          ("slipstream_dpdk_request_frames_total", "counter")):
            assert sc.types.get(fam) == kind, (fam, sc.types.get(fam))
        print("ok: slipstream_net_* at %s" % url)

        # Connections: three raw ones, ApiVersions on each.
        est0 = net(s, "slipstream_net_tcp_connections", 'state="established"')
        opens0 = net(s, "slipstream_net_tcp_opens_total", 'side="passive"')
        inplace0 = net(s, "slipstream_dpdk_request_frames_total", 'path="in_place"')
        socks = [b.connect() for _ in range(3)]
        for i, so in enumerate(socks):
            api_versions(so, 100 + i)
        s = wait_for(sc, lambda s: net(s, "slipstream_net_tcp_connections",
                                       'state="established"') >= est0 + 3,
                     "three more established connections")
        assert net(s, "slipstream_net_tcp_opens_total", 'side="passive"') >= opens0 + 3
        assert net(s, "slipstream_dpdk_request_frames_total", 'path="in_place"') >= inplace0 + 3
        for so in socks:
            so.close()
        wait_for(sc, lambda s: net(s, "slipstream_net_tcp_connections",
                                   'state="established"') <= est0,
                 "the established gauge back after the close")
        print("ok: connection gauge and opens follow three connections")

        # Malformed frames from the kernel side of the TAP.
        dmac = broker_mac()
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        raw.bind((TAP, 0))
        smac = raw.getsockname()[4]
        s = sc.scrape()
        before = {r: net(s, "slipstream_net_rx_dropped_total", 'reason="%s"' % r)
                  for r in ("ipv4_checksum", "tcp_checksum", "tcp_malformed", "ipv4_malformed")}
        sent = {"ipv4_checksum": 5, "tcp_checksum": 7, "tcp_malformed": 3}
        for k in range(sent["ipv4_checksum"]):
            raw.send(frame(dmac, smac, "198.18.0.1", "198.18.0.2", 41000 + k, 9092, ip_bad=True))
        for k in range(sent["tcp_checksum"]):
            raw.send(frame(dmac, smac, "198.18.0.1", "198.18.0.2", 42000 + k, 9092,
                           tcp_bad=True))
        for k in range(sent["tcp_malformed"]):
            raw.send(frame(dmac, smac, "198.18.0.1", "198.18.0.2", 43000 + k, 9092, doff=3))
        raw.close()

        def counted(s):
            return all(net(s, "slipstream_net_rx_dropped_total", 'reason="%s"' % r) -
                       before[r] >= n for r, n in sent.items())
        s = wait_for(sc, counted, "malformed frames counted")
        time.sleep(0.3)
        s = sc.scrape()
        for r, n in sent.items():
            got = net(s, "slipstream_net_rx_dropped_total", 'reason="%s"' % r) - before[r]
            assert got == n, (r, got, n)
        assert net(s, "slipstream_net_rx_dropped_total", 'reason="ipv4_malformed"') == \
            before["ipv4_malformed"]
        so = b.connect()
        api_versions(so, 7)
        so.close()
        print("ok: malformed frames counted by reason: %s" % sent)

        tx_vs_kernel(sc)

        # Loss of the broker's frames: retransmissions counted, data intact.
        p = Producer({"bootstrap.servers": b.addr, "linger.ms": 5, "acks": "all"})
        value = b"x" * 1000
        n = 3 * 1024
        for i in range(n):
            while True:
                try:
                    p.produce(TOPIC, key=b"%d" % i, value=value)
                    break
                except BufferError:
                    p.poll(0.05)
        assert p.flush(60) == 0

        # TSO (dataplane.port.tso=auto; net_tap offers it): a consumer reads the
        # 3 MiB back without loss; the broker sent part of it as TSO frames,
        # each cut into several segments on the wire.
        s = sc.scrape()
        tso_f0 = net(s, "slipstream_net_tso_frames_total")
        tso_s0 = net(s, "slipstream_net_tso_segments_total")
        assert read_back(b, Consumer, TopicPartition, n, value, "netm-tso") == n
        s = wait_for(sc, lambda s: net(s, "slipstream_net_tso_frames_total") > tso_f0,
                     "TSO frames")
        tso_f = net(s, "slipstream_net_tso_frames_total") - tso_f0
        tso_s = net(s, "slipstream_net_tso_segments_total") - tso_s0
        assert tso_s >= 2 * tso_f, ("segments per TSO frame", tso_f, tso_s)
        print("ok: %d records read back; %d TSO frames made %d segments" % (n, tso_f, tso_s))
        # The segments are counted as the frames the kernel receives.
        tx_vs_kernel(sc)

        s = sc.scrape()
        rtx0 = retransmits(s)
        rack0 = net(s, "slipstream_net_tcp_rack_lost_total")
        nft = ("table netdev %s {\n  chain in { type filter hook ingress device %s priority 0; "
               "policy accept; numgen random mod 100 < 10 drop; }\n}\n" % (NFT_TABLE, TAP))
        r = subprocess.run(["nft", "-f", "-"], input=nft, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        try:
            got = read_back(b, Consumer, TopicPartition, n, value, "netm")
            assert got == n, ("records read under loss", got, n)
        finally:
            subprocess.run(["nft", "delete", "table", "netdev", NFT_TABLE], timeout=30)
        s = wait_for(sc, lambda s: retransmits(s) > rtx0, "retransmissions under loss")
        # Some 10 % of about 2,200 segments lost: RACK finds some of them.
        s = wait_for(sc, lambda s: net(s, "slipstream_net_tcp_rack_lost_total") > rack0,
                     "RACK's lost count under loss")
        print("ok: %d records read under 10%% loss; retransmits %d -> %d (rto expiries %d, "
              "sack recoveries %d, RACK lost %d -> %d, reordering timeouts %d)"
              % (n, rtx0, retransmits(s), net(s, "slipstream_net_tcp_rto_expiries_total"),
                 net(s, "slipstream_net_tcp_sack_recoveries_total"), rack0,
                 net(s, "slipstream_net_tcp_rack_lost_total"),
                 net(s, "slipstream_net_tcp_rack_reordering_timeouts_total")))
        assert b.stop() == 0
        print("ok")
        return 0

if __name__ == "__main__":
    sys.exit(inner() if os.environ.get("SLPDF_INNER") == "1" else outer())
