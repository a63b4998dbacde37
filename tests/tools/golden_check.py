#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Sanity checks of the golden vectors, independent of Slipstream's C code.

For every tests/data/golden/<client>/<NN>_<Api>_v<ver>[_desc].bin:
  - the request header parses (api key, version, correlation id, client id)
    and agrees with the file name;
  - for the APIs tests/tools/kwire.py knows, the whole body decodes with no
    byte left over.
For every line of tests/data/batches/MANIFEST (<file> <codec> <count>):
  - the file is one whole magic-2 batch (12 + batchLength bytes);
  - its CRC-32C (computed here in Python) matches the header;
  - the compression bits match <codec>, recordsCount and lastOffsetDelta
    match <count>;
  - the records, decompressed with the Python codec modules when installed
    (gzip is stdlib; python3-snappy, python3-lz4, python3-zstandard), parse
    into exactly <count> records with key "key-<i>", value "value-<i>" and
    the header app=slipstream-golden.
Exit status 0 only if every check passed; a codec module that is missing
turns its content check into a reported skip, not a pass.
"""

import argparse
import gzip
import os
import re
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kwire  # noqa: E402

NAME_RE = re.compile(r"^(\d+)_([A-Za-z]+)_v(\d+)(?:_(.+))?\.bin$")
XERIAL_MAGIC = b"\x82SNAPPY\x00"


class Skip(Exception):
    pass


def snappy_decompress(data):
    try:
        import snappy
    except ImportError:
        raise Skip("python3-snappy not installed")
    if data.startswith(XERIAL_MAGIC):
        # xerial snappy-java framing: 8-byte magic, version, compatible
        # version, then blocks of int32 length + raw snappy data.
        out = bytearray()
        pos = 16
        while pos < len(data):
            (n,) = struct.unpack_from(">i", data, pos)
            pos += 4
            out += snappy.uncompress(data[pos:pos + n])
            pos += n
        return bytes(out)
    return snappy.uncompress(data)


def lz4_decompress(data):
    try:
        import lz4.frame
    except ImportError:
        raise Skip("python3-lz4 not installed")
    return lz4.frame.decompress(data)


def zstd_decompress(data):
    try:
        import zstandard
    except ImportError:
        raise Skip("python3-zstandard not installed")
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


DECOMPRESS = {
    "none": lambda d: d,
    "gzip": gzip.decompress,
    "snappy": snappy_decompress,
    "lz4": lz4_decompress,
    "zstd": zstd_decompress,
}


def check_frame(path):
    with open(path, "rb") as fh:
        frame = fh.read()
    m = NAME_RE.match(os.path.basename(path))
    if not m:
        raise AssertionError("file name does not match NN_Api_vN[_desc].bin")
    hdr, _ = kwire.parse_request_header(frame)
    if kwire.api_name(hdr["api_key"]) != m.group(2):
        raise AssertionError("api key %d is not %s" % (hdr["api_key"], m.group(2)))
    if hdr["api_version"] != int(m.group(3)):
        raise AssertionError("version %d is not v%s" % (hdr["api_version"], m.group(3)))
    if hdr["client_id"] is None or hdr["correlation_id"] < 0:
        raise AssertionError("odd header %r" % hdr)
    decoded = hdr["api_key"] in kwire.API
    if decoded:
        kwire.decode_request(frame)
    return hdr, decoded


def check_batch(path, codec, count):
    with open(path, "rb") as fh:
        b = fh.read()
    h = kwire.batch_header(b)
    if h["magic"] != 2:
        raise AssertionError("magic %d" % h["magic"])
    if len(b) != 12 + h["batch_length"]:
        raise AssertionError("size %d != 12 + batchLength %d" % (len(b), h["batch_length"]))
    crc = kwire.crc32c(b[21:])
    if crc != h["crc"]:
        raise AssertionError("crc32c %08x != header %08x" % (crc, h["crc"]))
    if h["codec"] != codec:
        raise AssertionError("codec %s != manifest %s" % (h["codec"], codec))
    if h["records_count"] != count or h["last_offset_delta"] != count - 1:
        raise AssertionError("recordsCount %d lastOffsetDelta %d vs manifest %d"
                             % (h["records_count"], h["last_offset_delta"], count))
    raw = DECOMPRESS[codec](b[61:])
    recs = kwire.parse_records(raw, count)
    for j, r in enumerate(recs):
        if r["offset_delta"] != j:
            raise AssertionError("record %d has offsetDelta %d" % (j, r["offset_delta"]))
        km = re.fullmatch(rb"key-(\d+)", r["key"] or b"")
        if not km or r["value"] != b"value-" + km.group(1):
            raise AssertionError("record %d is %r=%r" % (j, r["key"], r["value"]))
        if r["headers"] != [(b"app", b"slipstream-golden")]:
            raise AssertionError("record %d headers %r" % (j, r["headers"]))
    return recs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True)
    ap.add_argument("--batches", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    assert kwire.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value
    passed = failed = skipped = 0
    for client in sorted(os.listdir(a.golden)):
        cdir = os.path.join(a.golden, client)
        if not os.path.isdir(cdir):
            continue
        for f in sorted(os.listdir(cdir)):
            if not f.endswith(".bin"):
                continue
            try:
                hdr, decoded = check_frame(os.path.join(cdir, f))
                passed += 1
                if a.verbose:
                    print("ok   %s/%s key=%d v%d corr=%d client=%r%s" % (
                        client, f, hdr["api_key"], hdr["api_version"],
                        hdr["correlation_id"], hdr["client_id"],
                        "" if decoded else " (header only)"))
            except (AssertionError, kwire.DecodeError) as e:
                failed += 1
                print("FAIL %s/%s: %s" % (client, f, e))

    with open(os.path.join(a.batches, "MANIFEST")) as fh:
        lines = [ln.split() for ln in fh if ln.strip() and not ln.startswith("#")]
    listed = set()
    for name, codec, count in lines:
        listed.add(name)
        try:
            recs = check_batch(os.path.join(a.batches, name), codec, int(count))
            passed += 1
            if a.verbose:
                print("ok   batches/%s %s %s records, first %r" % (
                    name, codec, count, recs[0]["value"] if recs else None))
        except Skip as e:
            skipped += 1
            print("SKIP batches/%s: %s" % (name, e))
        except (AssertionError, kwire.DecodeError, OSError, zlib.error, ValueError) as e:
            failed += 1
            print("FAIL batches/%s: %s" % (name, e))
    for f in sorted(os.listdir(a.batches)):
        if f.endswith(".bin") and f not in listed:
            failed += 1
            print("FAIL batches/%s: not in MANIFEST" % f)
    codecs = {c for _, c, _ in lines}
    for c in DECOMPRESS:
        if c not in codecs:
            failed += 1
            print("FAIL batches: no %s batch in MANIFEST" % c)

    print("golden_check: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
