# SPDX-License-Identifier: Apache-2.0
"""Scale measurements of a running broker, shared by scripts/bench-scale and
test_broker_scale.py: many idle connections (each answering ApiVersions),
many partitions, and the broker's memory split into the configured pools
and everything beyond them.

Memory comes from /proc/PID/smaps. The configured pools are DPDK's memory:
hugepage mappings (rtemap_* files; hugetlb pages are not in Rss anyway) or,
with dpdk.hugepages=off, the one mapping of dpdk.memory.mb that the EAL
makes for --no-huge (a memfd named "nohuge", or anonymous). Everything else resident (heap, stacks,
libraries' data, other anonymous mappings) is "beyond the pools". The pool's
own resident pages are reported too: with --no-huge they are the pool pages
touched.
"""
import os
import selectors
import socket
import struct
import time


def smaps_split(pid, pool_mb):
    """(beyond_pools_kb, pool_resident_kb) of process @pid."""
    beyond = pool = 0
    in_pool = False
    pool_kb = pool_mb * 1024
    size_kb = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split()
                path = parts[5] if len(parts) > 5 else ""
                lo, hi = (int(x, 16) for x in first.split("-"))
                size_kb = (hi - lo) // 1024
                in_pool = ("rtemap_" in path or "hugepages" in path or
                           "memfd:nohuge" in path or (path == "" and size_kb == pool_kb))
                continue
            if first == "Rss:":
                kb = int(line.split()[1])
                if in_pool:
                    pool += kb
                else:
                    beyond += kb
    return beyond, pool


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def api_versions_frame(corr):
    body = struct.pack(">hhih", 18, 0, corr, 5) + b"scale"
    return struct.pack(">i", len(body)) + body


def open_idle_connections(host, port, n, timeout=120.0, batch=500):
    """Open @n connections, each sending ApiVersions v0 and reading its
    answer (error code 0, correlation id echoed). Returns the sockets, left
    open and idle. Raises on any failure."""
    socks = []
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    try:
        for start in range(0, n, batch):
            group = []
            for i in range(start, min(n, start + batch)):
                s = socket.create_connection((host, port), timeout=30)
                s.setblocking(False)
                s.sendall(api_versions_frame(i))
                group.append(s)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, [i, b""])
            pending = len(group)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d connections of %d answered no ApiVersions"
                                       % (pending, len(group)))
                for key, _ in sel.select(min(left, 5.0)):
                    st = key.data
                    chunk = key.fileobj.recv(65536)
                    if not chunk:
                        raise ConnectionError("connection %d closed before its answer" % st[0])
                    st[1] += chunk
                    if len(st[1]) >= 4:
                        size = struct.unpack(">i", st[1][:4])[0]
                        if len(st[1]) >= 4 + size:
                            corr, err = struct.unpack(">ih", st[1][4:10])
                            if corr != st[0] or err != 0:
                                raise AssertionError("connection %d: ApiVersions corr %d error %d"
                                                     % (st[0], corr, err))
                            sel.unregister(key.fileobj)
                            pending -= 1
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()
    return socks


def ping_all(socks, timeout=120.0):
    """ApiVersions again on every (idle) connection: all still served."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for i, s in enumerate(socks):
        s.sendall(api_versions_frame(100000 + i))
        bufs[s] = [100000 + i, b""]
        sel.register(s, selectors.EVENT_READ, bufs[s])
    pending = len(socks)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("%d idle connections did not answer" % pending)
            for key, _ in sel.select(min(left, 5.0)):
                st = key.data
                chunk = key.fileobj.recv(65536)
                if not chunk:
                    raise ConnectionError("an idle connection was closed")
                st[1] += chunk
                if len(st[1]) >= 4 and len(st[1]) >= 4 + struct.unpack(">i", st[1][:4])[0]:
                    corr, err = struct.unpack(">ih", st[1][4:10])
                    if corr != st[0] or err != 0:
                        raise AssertionError("ApiVersions corr %d error %d" % (corr, err))
                    sel.unregister(key.fileobj)
                    pending -= 1
    finally:
        sel.close()


def create_topics(bootstrap, names, partitions, timeout_s=300, configs=None):
    """CreateTopics through kafka-python (one request per 20 topics). The
    default topic config turns preallocation off: every partition written
    would otherwise reserve segment.bytes of disk (the topic config keeps
    this independent of the broker's log.preallocate)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    if configs is None:
        configs = {"preallocate": "false"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_s * 1000,
                             api_version_auto_timeout_ms=30000)
    try:
        for i in range(0, len(names), 20):
            admin.create_topics([NewTopic(n, partitions, 1, topic_configs=configs)
                                 for n in names[i:i + 20]], timeout_ms=timeout_s * 1000)
    finally:
        admin.close()


def raise_nofile(want):
    """Soft (and, as root, hard) RLIMIT_NOFILE for this process's sockets."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

