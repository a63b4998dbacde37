# SPDX-License-Identifier: Apache-2.0
"""slipstream-netperf's wire protocol (tools/netperf), for the scripts that
drive it from Linux sockets (test_net_linux.py, test_net_tso.py): the request
header, its modes and flags, the byte pattern the tool sends and checks
(np_pattern), exact reads, and entering a network namespace by name."""

import ctypes
import os
import struct

MIB = 1 << 20
MAGIC, REPORT = 0x534e5031, 0x534e5052
ECHO, SINK, SOURCE = 1, 2, 3
F_RST, F_HALF = 1, 2

PERIOD = 65521
_BLOCK = bytes(((j * 2654435761) & 0xffffffff) >> 24 for j in range(PERIOD))
_TILE = _BLOCK * ((8 * MIB) // PERIOD + 2)


def pattern(off, n):
    """np_pattern bytes [off, off + n)."""
    out = []
    while n > 0:
        k = off % PERIOD
        take = min(n, len(_TILE) - k)
        out.append(_TILE[k:k + take])
        off += take
        n -= take
    return b"".join(out)


def hdr(mode, flags=0, pause_ms=0, nbytes=0):
    """The request header: magic, mode, flags, pause (ms), byte count."""
    return struct.pack("!IBBHQ", MAGIC, mode, flags, pause_ms, nbytes)


def recv_exact(s, n):
    """Exactly n bytes from socket s (RuntimeError at EOF)."""
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(n - len(buf), MIB))
        if not d:
            raise RuntimeError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def enter_netns(name):
    """Move this process (one thread so far) into network namespace `name`."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
