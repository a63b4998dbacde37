#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Extract single record batches from captured Produce requests.

Reads tests/data/golden/<client>/*_Produce_*.bin (frames captured by
capture_broker.py), splits each partition's records into v2 record batches
and writes each batch, byte for byte as the client sent it, to
  tests/data/batches/<client>_<codec>[_<n>].bin
plus tests/data/batches/MANIFEST, one line per file:
  <file> <codec:none|gzip|snappy|lz4|zstd> <record_count>
Identical batches are written once. Stdlib only; protocol code in kwire.py.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kwire  # noqa: E402

CLIENT_ORDER = ["kcat", "confluent_kafka", "kafka_python", "kafkajs", "platformatic_kafka"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True)
    ap.add_argument("--batches", required=True)
    a = ap.parse_args()

    os.makedirs(a.batches, exist_ok=True)
    for f in os.listdir(a.batches):
        if f.endswith(".bin"):
            os.unlink(os.path.join(a.batches, f))

    clients = sorted((d for d in os.listdir(a.golden)
                      if os.path.isdir(os.path.join(a.golden, d))),
                     key=lambda d: (CLIENT_ORDER.index(d) if d in CLIENT_ORDER else 99, d))
    manifest = []
    seen = set()
    for client in clients:
        counts = {}
        cdir = os.path.join(a.golden, client)
        for f in sorted(os.listdir(cdir)):
            if "_Produce_" not in f or not f.endswith(".bin"):
                continue
            with open(os.path.join(cdir, f), "rb") as fh:
                frame = fh.read()
            _, body = kwire.decode_request(frame)
            for t in body["TopicData"]:
                for p in t["PartitionData"]:
                    for b in kwire.split_batches(p["Records"] or b""):
                        if b in seen:
                            continue
                        seen.add(b)
                        h = kwire.batch_header(b)
                        n = counts.get(h["codec"], 0)
                        counts[h["codec"]] = n + 1
                        name = "%s_%s%s.bin" % (client, h["codec"], "_%d" % n if n else "")
                        with open(os.path.join(a.batches, name), "wb") as fh:
                            fh.write(b)
                        manifest.append((name, h["codec"], h["records_count"], client, f))
    with open(os.path.join(a.batches, "MANIFEST"), "w") as fh:
        for name, codec, count, _, _ in manifest:
            fh.write("%s %s %d\n" % (name, codec, count))
    # Where each batch came from, for humans; MANIFEST stays three columns.
    with open(os.path.join(a.batches, "SOURCES"), "w") as fh:
        fh.write("# batch file <- golden frame it was cut from\n")
        for name, _, _, client, f in manifest:
            fh.write("%s golden/%s/%s\n" % (name, client, f))
    print("golden_extract: %d batches from %d clients" % (len(manifest), len(clients)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
