#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of tests/fuzz/fuzz_net_input.c.

Each file is a sequence of records [len u16 BE][ctl u8][Ethernet frame], as
that target documents. The frames come from the peer 198.18.0.2
(02:00:00:00:00:02) to the stack 198.18.0.1 (02:00:00:00:00:01) and walk it
through ARP, ICMP, IPv4 errors and the TCP states. Run from the repository
root: tests/unit/net/gen_net_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'fuzz', 'corpus', 'net_input')
US_MAC = bytes([2, 0, 0, 0, 0, 1])
PEER_MAC = bytes([2, 0, 0, 0, 0, 2])
US_IP = bytes([198, 18, 0, 1])
PEER_IP = bytes([198, 18, 0, 2])
FIX_ACK, SPLIT, CK_GOOD, TICK, APP_SEND, APP_CLOSE, FIX_SACK = 1, 2, 4, 8, 16, 32, 64
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def eth(payload, ethertype=0x0800, dst=US_MAC):
    return dst + PEER_MAC + struct.pack('!H', ethertype) + payload


def ipv4(proto, payload, frag=0x4000, ttl=64, bad=False):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, frag, ttl, proto, 0,
                    PEER_IP, US_IP)
    c = csum(h) ^ (0x1111 if bad else 0)
    return h[:10] + struct.pack('!H', c) + h[12:] + payload


def tcp(sport, dport, seq, ack, flags, win=65535, opts=b'', data=b''):
    off = (20 + len(opts)) // 4
    h = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, off << 4, flags, win, 0, 0) + opts
    ph = PEER_IP + US_IP + struct.pack('!BBH', 0, 6, len(h) + len(data))
    c = csum(ph + h + data)
    return h[:16] + struct.pack('!H', c) + h[18:] + data


def arp_request():
    a = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + PEER_MAC + PEER_IP + bytes(6) + US_IP
    return eth(a, 0x0806, b'\xff' * 6)


def icmp_echo(n=56):
    body = struct.pack('!BBHHH', 8, 0, 0, 0x1234, 1) + bytes(i & 0xff for i in range(n))
    c = csum(body)
    return ipv4(1, body[:2] + struct.pack('!H', c) + body[4:])


def rec(frame, ctl=0):
    return struct.pack('!HB', len(frame), ctl) + frame


SYN_OPTS = bytes([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])


def ts(val):
    return bytes([1, 1, 8, 10]) + struct.pack('!II', val, 0)


def handshake(sport=40000, opts=True):
    o = SYN_OPTS if opts else b''
    return [rec(arp_request()),
            rec(eth(ipv4(6, tcp(sport, 9092, 1000, 0, SYN, opts=o)))),
            rec(eth(ipv4(6, tcp(sport, 9092, 1001, 0, ACK, win=512,
                                    opts=ts(2) if opts else b''))), FIX_ACK)]


def data_seg(seq, data, flags=ACK | PSH, sport=40000, tsv=3, win=512, opts=True):
    return eth(ipv4(6, tcp(sport, 9092, seq, 0, flags, win=win,
                           opts=ts(tsv) if opts else b'', data=data)))


def sack_ack(blocks, ackoff, tsv, sport=40000):
    """ACK at last_end + ackoff with SACK blocks given as offsets from
    last_end (FIX_ACK | FIX_SACK makes them absolute)."""
    o = bytes([1, 1, 8, 10]) + struct.pack('!II', tsv, 0)
    o += bytes([1, 1, 5, 2 + 8 * len(blocks)])
    for l, r in blocks:
        o += struct.pack('!II', l & 0xffffffff, r & 0xffffffff)
    return eth(ipv4(6, tcp(sport, 9092, 1001, ackoff & 0xffffffff, ACK, win=512, opts=o)))


def syn(sport, seq):
    return rec(eth(ipv4(6, tcp(sport, 9092, seq, 0, SYN, opts=SYN_OPTS))))


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {
        'arp_request': [rec(arp_request())],
        'icmp_echo': [rec(arp_request()), rec(eth(icmp_echo()))],
        'icmp_echo_split': [rec(arp_request()), rec(eth(icmp_echo(400)), SPLIT)],
        'ipv4_errors': [rec(arp_request()),
                        rec(eth(ipv4(1, b'x' * 20, bad=True))),
                        rec(eth(ipv4(6, b'y' * 40, frag=0x2000))),
                        rec(eth(ipv4(17, b'z' * 8))),
                        rec(eth(ipv4(1, b'w' * 8, ttl=0)))],
        'syn_closed_port': [rec(arp_request()),
                            rec(eth(ipv4(6, tcp(40000, 81, 5, 0, SYN)))),
                            rec(eth(ipv4(6, tcp(40000, 81, 5, 9, ACK))))],
        'handshake_data_close': handshake() + [
            rec(data_seg(1001, b'hello kafka' * 10), FIX_ACK | APP_SEND),
            rec(data_seg(1111, b'', ACK, tsv=4), FIX_ACK | TICK),
            rec(data_seg(1111, b'', ACK | FIN, tsv=5), FIX_ACK | APP_CLOSE),
            rec(data_seg(1112, b'', ACK, tsv=6), FIX_ACK)],
        'handshake_ooo': handshake() + [
            rec(data_seg(1101, b'B' * 100), FIX_ACK),
            rec(data_seg(1301, b'D' * 100), FIX_ACK),
            rec(data_seg(1001, b'A' * 100), FIX_ACK),
            rec(data_seg(1201, b'C' * 100, ACK | FIN), FIX_ACK)],
        'handshake_rst': handshake() + [
            rec(data_seg(1050, b'', RST), FIX_ACK),
            rec(data_seg(1001, b'', SYN), FIX_ACK),
            rec(data_seg(1001, b'', RST), FIX_ACK)],
        'handshake_split_noopts': handshake(opts=False) + [
            rec(data_seg(1001, b'S' * 700, opts=False), FIX_ACK | SPLIT),
            rec(data_seg(1701, b'', ACK | FIN, opts=False), FIX_ACK | SPLIT)],
        'zero_window': handshake() + [
            rec(data_seg(1001, b'', ACK, win=0), FIX_ACK | APP_SEND),
            rec(data_seg(1001, b'', ACK, win=0), FIX_ACK | TICK),
            rec(data_seg(1001, b'', ACK, win=0), FIX_ACK | TICK),
            rec(data_seg(1001, b'', ACK, win=64), FIX_ACK | TICK)],
        'active_close_peer_silent': handshake() + [
            rec(data_seg(1001, b'x', ACK), FIX_ACK | APP_SEND | APP_CLOSE),
            rec(data_seg(1002, b'', ACK, tsv=9), TICK),
            rec(data_seg(1002, b'', ACK, tsv=9), TICK | CK_GOOD)],
        # 3000 bytes out (1448 + 1448 + 104); the first segment is SACKed
        # missing three times (recovery), then a bogus block, then all acked.
        'sack_recovery': handshake() + [
            rec(data_seg(1001, b'', ACK, tsv=3), FIX_ACK | APP_SEND),
            rec(sack_ack([(-1552, -104)], -3000, 4), FIX_ACK | FIX_SACK),
            rec(sack_ack([(-1552, 0)], -3000, 5), FIX_ACK | FIX_SACK),
            rec(sack_ack([(-1552, 0), (-9000, -8000)], -3000, 6), FIX_ACK | FIX_SACK),
            rec(sack_ack([(-2000, 0)], -3000, 7), FIX_ACK | FIX_SACK | TICK),
            rec(sack_ack([], 0, 8), FIX_ACK)],
        # Backlog 4 full: the fifth SYN gets a cookie; its ACK (with data)
        # makes the connection; a forged cookie ACK is reset.
        'syncookie': [rec(arp_request())] + [syn(41000 + k, 7000 * k) for k in range(5)] + [
            rec(eth(ipv4(6, tcp(41004, 9092, 28001, 0, ACK | PSH, win=512, opts=ts(2),
                                data=b'cookie'))), FIX_ACK),
            rec(eth(ipv4(6, tcp(41009, 9092, 5, 77, ACK, win=512, opts=ts(2))))),
            rec(data_seg(28007, b'', ACK, sport=41004, tsv=3), FIX_ACK | APP_CLOSE)],
    }
    for name, recs in files.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(b''.join(recs))


if __name__ == '__main__':
    main()
