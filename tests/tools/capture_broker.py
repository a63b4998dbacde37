#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fake Kafka broker that records the request frames real clients send.

Used once by tests/tools/capture-golden to produce the golden vectors in
tests/data/golden/: it answers just enough of the protocol (ApiVersions,
Metadata, Produce, Fetch, ListOffsets, InitProducerId, the consumer-group
APIs, CreateTopics) for kcat, confluent-kafka, kafka-python and kafkajs to
get through a produce and a consume, and writes every request frame it
receives -- header and body, without the 4-byte size prefix -- to
  <out>/<NN>_<ApiName>_v<ver>[_<desc>].bin
Frames that equal an already written one apart from the correlation id are
not written again, and at most --max-same frames are kept per (api, version,
desc) (--max-same-produce for Produce), so repeated polls do not flood the
directory.

It is a single broker, node id 1 at 127.0.0.1:<port>, leader of every
partition. Topics are created on first mention; a name ending in -p<N>
(N = 1..3) gets N partitions, any other name 1. Produced batches are kept in
memory with their baseOffset rewritten, and served back by Fetch, so a
consumer reads what a producer wrote in the same broker run.

--profile picks the API version ranges advertised in ApiVersions, so one run
draws flexible (compact) request versions from the clients and another only
non-flexible ones. A request for an ApiVersions version above the advertised
maximum gets error 35 UNSUPPORTED_VERSION in v0 format, listing the
supported ApiVersions range, as Apache Kafka does; clients then retry lower.
Requests for other versions outside the advertised range are still answered
when this codec knows the version (and logged), to keep the capture going.

Stdlib only; the protocol code is tests/tools/kwire.py, not the project's C.
"""

import argparse
import hashlib
import os
import random
import socketserver
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kwire  # noqa: E402

NODE_ID = 1
CLUSTER_ID = "slipstream-golden-capture"
UNSUPPORTED_VERSION = 35
UNKNOWN_TOPIC_OR_PARTITION = 3

# API key -> (min, max) advertised. Produce starts at v0 although only v3+
# (record batch v2) is answered: librdkafka before 2.8 checks for Produce v0
# before it compresses with gzip, snappy or lz4 (librdkafka issue #4956), and
# Apache Kafka 4.0 advertises v0 for the same reason (KAFKA-18659). "flexible" reaches the first flexible
# version of every API (and beyond where the codec above knows it);
# "legacy" stops every API below its first flexible version.
PROFILES = {
    # First flexible version (or a little beyond) of every API: ApiVersions
    # v3, Metadata v12, Produce v9, Fetch v12 (the last one with topic names).
    "flexible": {18: (0, 3), 3: (0, 12), 0: (0, 9), 1: (4, 12), 2: (1, 7), 22: (0, 4),
                 10: (0, 4), 11: (0, 9), 14: (0, 5), 12: (0, 4), 13: (0, 5), 9: (1, 8),
                 8: (2, 8), 19: (2, 7), 24: (0, 4), 25: (0, 4), 26: (0, 5),
                 28: (0, 4)},
    # Newest versions this codec knows, about what Apache Kafka 4.0 offers:
    # Fetch v13+ carries topic ids instead of names.
    "latest": {18: (0, 4), 3: (0, 12), 0: (0, 11), 1: (4, 17), 2: (1, 9), 22: (0, 5),
               10: (0, 6), 11: (0, 9), 14: (0, 5), 12: (0, 4), 13: (0, 5), 9: (1, 9),
               8: (2, 9), 19: (2, 7), 24: (0, 5), 25: (0, 4), 26: (0, 5), 28: (0, 4)},
    # Every API below its first flexible version; ApiVersions stops at v2, so
    # a v3 request gets the UNSUPPORTED_VERSION fallback.
    "legacy": {18: (0, 2), 3: (1, 8), 0: (0, 8), 1: (4, 11), 2: (1, 5), 22: (0, 1),
               10: (0, 2), 11: (0, 5), 14: (0, 3), 12: (0, 3), 13: (0, 3), 9: (1, 5),
               8: (2, 7), 19: (2, 4), 24: (0, 2), 25: (0, 2), 26: (0, 2), 28: (0, 2)},
}
# What the codec in kwire can encode/decode, independent of the profile.
CODEC_MAX = {18: 4, 3: 12, 0: 11, 1: 17, 2: 10, 22: 5, 10: 6, 11: 9, 14: 5, 12: 4,
             13: 5, 9: 9, 8: 9, 19: 7, 24: 5, 25: 4, 26: 5, 28: 4}


def log(*a):
    print("[capture_broker]", *a, file=sys.stderr, flush=True)


class State:
    """Everything shared between connections; guarded by one lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.port = None
        self.profile = PROFILES[args.profile]
        self.topics = {}  # name -> partition count
        self.topic_by_id = {}  # 16-byte topic id -> name
        self.logs = {}  # (topic, partition) -> list of batches (baseOffset set)
        self.next_offset = {}  # (topic, partition) -> int
        self.next_pid = 1000
        self.groups = {}  # group -> dict(generation, assign{member id: assignment})
        self.committed = {}  # (group, topic, partition) -> offset
        self.seen = set()
        self.kept = {}
        os.makedirs(args.out, exist_ok=True)
        self.seq = 0
        for f in sorted(os.listdir(args.out)):
            if not f.endswith(".bin"):
                continue
            self.seq = max(self.seq, int(f.split("_", 1)[0]) + 1)
            with open(os.path.join(args.out, f), "rb") as fh:
                self.seen.add(self._dedupe_key(fh.read()))
            k = f.rsplit(".", 1)[0].split("_", 1)[1]
            self.kept[k] = self.kept.get(k, 0) + 1
        for t in args.topic or []:
            self.topic(t)

    @staticmethod
    def _dedupe_key(frame):
        return hashlib.sha256(frame[:4] + b"\0\0\0\0" + frame[8:]).digest()

    def topic(self, name, n=None):
        """Partition count of a topic, creating it (n partitions) on first mention."""
        if name not in self.topics:
            tail = name.rsplit("-p", 1)
            if n is None and len(tail) == 2 and tail[1].isdigit() and 1 <= int(tail[1]) <= 3:
                n = int(tail[1])
            n = n or 1
            self.topics[name] = n
            self.topic_by_id[topic_uuid(name)] = name
            for p in range(n):
                self.logs[(name, p)] = []
                self.next_offset[(name, p)] = 0
        return self.topics[name]

    def record(self, frame, hdr, desc):
        """Write a request frame to the output directory unless redundant."""
        name = "%s_v%d" % (kwire.api_name(hdr["api_key"]), hdr["api_version"])
        if desc:
            name += "_" + desc
        key = self._dedupe_key(frame)
        with self.lock:
            cap = self.args.max_same_produce if hdr["api_key"] == 0 else self.args.max_same
            if key in self.seen or self.kept.get(name, 0) >= cap:
                return
            self.seen.add(key)
            self.kept[name] = self.kept.get(name, 0) + 1
            path = os.path.join(self.args.out, "%02d_%s.bin" % (self.seq, name))
            self.seq += 1
        with open(path, "wb") as fh:
            fh.write(frame)
        log("saved", os.path.basename(path), "client_id=%r" % hdr["client_id"])


def topic_uuid(name):
    return hashlib.md5(name.encode()).digest()


# ---------------------------------------------------------------------------
# Handlers: each returns (response body dict or None for no response, desc)
# ---------------------------------------------------------------------------

def h_api_versions(st, ver, body):
    keys = [{"ApiKey": k, "MinVersion": lo, "MaxVersion": hi}
            for k, (lo, hi) in sorted(st.profile.items())]
    return {"ErrorCode": 0, "ApiKeys": keys, "ThrottleTimeMs": 0}, None


def h_metadata(st, ver, body):
    topics = body["Topics"]
    with st.lock:
        if topics is None or (ver == 0 and not topics):
            names = sorted(st.topics)
            desc = "all"
        else:
            names = [t["Name"] or st.topic_by_id.get(t.get("TopicId")) for t in topics]
            names = [n for n in names if n is not None]
            desc = "%dtopics" % len(topics)
            if body.get("AllowAutoTopicCreation", True) or st.args.auto_create:
                for n in names:
                    st.topic(n)
        out = []
        for n in names:
            if n not in st.topics:
                out.append({"ErrorCode": UNKNOWN_TOPIC_OR_PARTITION, "Name": n,
                            "TopicId": b"\0" * 16, "Partitions": [],
                            "TopicAuthorizedOperations": -2**31})
                continue
            parts = [{"ErrorCode": 0, "PartitionIndex": p, "LeaderId": NODE_ID,
                      "LeaderEpoch": 0, "ReplicaNodes": [NODE_ID], "IsrNodes": [NODE_ID],
                      "OfflineReplicas": []} for p in range(st.topics[n])]
            out.append({"ErrorCode": 0, "Name": n, "TopicId": topic_uuid(n),
                        "IsInternal": False, "Partitions": parts,
                        "TopicAuthorizedOperations": -2**31})
    return {"ThrottleTimeMs": 0,
            "Brokers": [{"NodeId": NODE_ID, "Host": "127.0.0.1", "Port": st.port,
                         "Rack": None}],
            "ClusterId": CLUSTER_ID, "ControllerId": NODE_ID, "Topics": out,
            "ClusterAuthorizedOperations": -2**31}, desc


def h_produce(st, ver, body):
    codecs = set()
    npart = 0
    idem = False
    resp = []
    with st.lock:
        for t in body["TopicData"]:
            st.topic(t["Name"])
            presp = []
            for p in t["PartitionData"]:
                npart += 1
                key = (t["Name"], p["Index"])
                if key not in st.logs:
                    presp.append({"Index": p["Index"], "ErrorCode": UNKNOWN_TOPIC_OR_PARTITION,
                                  "BaseOffset": -1, "LogAppendTimeMs": -1,
                                  "LogStartOffset": -1, "ErrorMessage": None})
                    continue
                base = st.next_offset[key]
                for b in kwire.split_batches(p["Records"] or b""):
                    h = kwire.batch_header(b)
                    codecs.add(h["codec"])
                    idem = idem or h["producer_id"] >= 0
                    st.logs[key].append(kwire.set_base_offset(b, st.next_offset[key]))
                    st.next_offset[key] += h["last_offset_delta"] + 1
                presp.append({"Index": p["Index"], "ErrorCode": 0, "BaseOffset": base,
                              "LogAppendTimeMs": -1, "LogStartOffset": 0,
                              "RecordErrors": [], "ErrorMessage": None})
            resp.append({"Name": t["Name"], "PartitionResponses": presp})
    acks = body["Acks"]
    desc = "%s_acks%s" % ("+".join(sorted(codecs)) or "empty",
                          "all" if acks == -1 else str(acks))
    if idem:
        desc += "_idempotent"
    if body.get("TransactionalId"):
        desc += "_txn"
    if npart > 1:
        desc += "_%dparts" % npart
    if acks == 0:
        return None, desc
    return {"Responses": resp, "ThrottleTimeMs": 0}, desc


def h_fetch(st, ver, body):
    max_wait = max(0, min(body["MaxWaitMs"], st.args.max_fetch_wait_ms)) / 1000.0
    deadline = time.monotonic() + max_wait
    while True:
        got = 0
        resp = []
        with st.lock:
            for t in body["Topics"]:
                name = t.get("Topic") or st.topic_by_id.get(t.get("TopicId"))
                presp = []
                for p in t["Partitions"]:
                    key = (name, p["Partition"])
                    if key not in st.logs:
                        presp.append({"PartitionIndex": p["Partition"],
                                      "ErrorCode": UNKNOWN_TOPIC_OR_PARTITION,
                                      "HighWatermark": -1, "LastStableOffset": -1,
                                      "LogStartOffset": -1, "AbortedTransactions": None,
                                      "PreferredReadReplica": -1, "Records": None})
                        continue
                    off = p["FetchOffset"]
                    data = b""
                    for b in st.logs[key]:
                        h = kwire.batch_header(b)
                        if h["base_offset"] + h["last_offset_delta"] < off:
                            continue
                        if data and len(data) + len(b) > p["PartitionMaxBytes"]:
                            break
                        data += b
                    got += len(data)
                    hw = st.next_offset[key]
                    presp.append({"PartitionIndex": p["Partition"], "ErrorCode": 0,
                                  "HighWatermark": hw, "LastStableOffset": hw,
                                  "LogStartOffset": 0, "AbortedTransactions": [],
                                  "PreferredReadReplica": -1, "Records": data})
                resp.append({"Topic": name, "TopicId": t.get("TopicId"), "Partitions": presp})
        if got or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 0,
            "Responses": resp}, None


def h_list_offsets(st, ver, body):
    resp = []
    descs = set()
    with st.lock:
        for t in body["Topics"]:
            st.topic(t["Name"])
            presp = []
            for p in t["Partitions"]:
                ts = p["Timestamp"]
                key = (t["Name"], p["PartitionIndex"])
                descs.add({-2: "earliest", -1: "latest"}.get(ts, "timestamp"))
                if key not in st.logs:
                    presp.append({"PartitionIndex": p["PartitionIndex"],
                                  "ErrorCode": UNKNOWN_TOPIC_OR_PARTITION,
                                  "OldStyleOffsets": [], "Timestamp": -1, "Offset": -1,
                                  "LeaderEpoch": -1})
                    continue
                off = 0 if ts == -2 else st.next_offset[key]
                presp.append({"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0,
                              "OldStyleOffsets": [off], "Timestamp": -1, "Offset": off,
                              "LeaderEpoch": 0})
            resp.append({"Name": t["Name"], "Partitions": presp})
    return {"ThrottleTimeMs": 0, "Topics": resp}, "+".join(sorted(descs))


def h_init_producer_id(st, ver, body):
    with st.lock:
        pid = st.next_pid
        st.next_pid += 1
    desc = "txn" if body["TransactionalId"] else None
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProducerId": pid, "ProducerEpoch": 0}, desc


def h_find_coordinator(st, ver, body):
    desc = "txn" if body.get("KeyType") == 1 else None
    if ver >= 4:
        coords = [{"Key": k, "NodeId": NODE_ID, "Host": "127.0.0.1", "Port": st.port,
                   "ErrorCode": 0, "ErrorMessage": None} for k in body["CoordinatorKeys"]]
        return {"ThrottleTimeMs": 0, "Coordinators": coords}, desc
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "NodeId": NODE_ID,
            "Host": "127.0.0.1", "Port": st.port}, desc


def h_join_group(st, ver, body):
    # One-member groups: every joiner is alone and leader of a new generation.
    with st.lock:
        g = st.groups.setdefault(body["GroupId"], {"generation": 0, "assign": {}})
        g["generation"] += 1
        member = body["MemberId"] or "%s-member-%d" % (body["GroupId"], g["generation"])
        proto = body["Protocols"][0]
        gen = g["generation"]
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "GenerationId": gen,
            "ProtocolType": body["ProtocolType"], "ProtocolName": proto["Name"],
            "Leader": member, "SkipAssignment": False, "MemberId": member,
            "Members": [{"MemberId": member, "GroupInstanceId": body.get("GroupInstanceId"),
                         "Metadata": proto["Metadata"]}]}, None


def h_sync_group(st, ver, body):
    with st.lock:
        g = st.groups.setdefault(body["GroupId"], {"generation": 0, "assign": {}})
        for a in body["Assignments"]:
            g["assign"][a["MemberId"]] = a["Assignment"]
        assignment = g["assign"].get(body["MemberId"], b"")
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProtocolType": body.get("ProtocolType"),
            "ProtocolName": body.get("ProtocolName"), "Assignment": assignment}, None


def h_heartbeat(st, ver, body):
    return {"ThrottleTimeMs": 0, "ErrorCode": 0}, None


def h_leave_group(st, ver, body):
    members = [{"MemberId": m["MemberId"], "GroupInstanceId": m["GroupInstanceId"],
                "ErrorCode": 0} for m in body.get("Members") or []]
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "Members": members}, None


def h_offset_fetch(st, ver, body):
    def parts(group, topics):
        out = []
        for t in topics or []:
            ps = []
            for p in t["PartitionIndexes"]:
                off = st.committed.get((group, t["Name"], p), -1)
                ps.append({"PartitionIndex": p, "CommittedOffset": off,
                           "CommittedLeaderEpoch": -1, "Metadata": "", "ErrorCode": 0})
            out.append({"Name": t["Name"], "Partitions": ps})
        return out

    with st.lock:
        if ver >= 8:
            groups = [{"GroupId": g["GroupId"], "Topics": parts(g["GroupId"], g["Topics"]),
                       "ErrorCode": 0} for g in body["Groups"]]
            return {"ThrottleTimeMs": 0, "Groups": groups}, None
        return {"ThrottleTimeMs": 0, "Topics": parts(body["GroupId"], body["Topics"]),
                "ErrorCode": 0}, None


def h_offset_commit(st, ver, body):
    out = []
    with st.lock:
        for t in body["Topics"]:
            ps = []
            for p in t["Partitions"]:
                st.committed[(body["GroupId"], t["Name"], p["PartitionIndex"])] = \
                    p["CommittedOffset"]
                ps.append({"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0})
            out.append({"Name": t["Name"], "Partitions": ps})
    return {"ThrottleTimeMs": 0, "Topics": out}, None


def h_create_topics(st, ver, body):
    out = []
    with st.lock:
        for t in body["Topics"]:
            n = t["NumPartitions"] if t["NumPartitions"] > 0 else 1
            if t["Name"] not in st.topics and not body.get("validateOnly"):
                st.topic(t["Name"], n)
            out.append({"Name": t["Name"], "TopicId": topic_uuid(t["Name"]), "ErrorCode": 0,
                        "ErrorMessage": None, "NumPartitions": n, "ReplicationFactor": 1,
                        "Configs": []})
    return {"ThrottleTimeMs": 0, "Topics": out}, None


def h_add_partitions_to_txn(st, ver, body):
    def results(topics):
        return [{"Name": t["Name"],
                 "ResultsByPartition": [{"PartitionIndex": p, "PartitionErrorCode": 0}
                                        for p in t["Partitions"]]} for t in topics]

    if ver >= 4:
        return {"ThrottleTimeMs": 0, "ErrorCode": 0,
                "ResultsByTransaction": [{"TransactionalId": t["TransactionalId"],
                                          "TopicResults": results(t["Topics"])}
                                         for t in body["Transactions"]]}, None
    return {"ThrottleTimeMs": 0,
            "ResultsByTopicV3AndBelow": results(body["V3AndBelowTopics"])}, None


def h_add_offsets_to_txn(st, ver, body):
    return {"ThrottleTimeMs": 0, "ErrorCode": 0}, None


def h_end_txn(st, ver, body):
    return ({"ThrottleTimeMs": 0, "ErrorCode": 0, "ProducerId": body["ProducerId"],
             "ProducerEpoch": body["ProducerEpoch"]},
            "commit" if body["Committed"] else "abort")


def h_txn_offset_commit(st, ver, body):
    out = [{"Name": t["Name"],
            "Partitions": [{"PartitionIndex": p["PartitionIndex"], "ErrorCode": 0}
                           for p in t["Partitions"]]} for t in body["Topics"]]
    return {"ThrottleTimeMs": 0, "Topics": out}, None


HANDLERS = {18: h_api_versions, 3: h_metadata, 0: h_produce, 1: h_fetch, 2: h_list_offsets,
            22: h_init_producer_id, 10: h_find_coordinator, 11: h_join_group,
            14: h_sync_group, 12: h_heartbeat, 13: h_leave_group, 9: h_offset_fetch,
            8: h_offset_commit, 19: h_create_topics, 24: h_add_partitions_to_txn,
            25: h_add_offsets_to_txn, 26: h_end_txn, 28: h_txn_offset_commit}


def unsupported_api_versions(st, corr):
    """ApiVersions v0 error response naming the ApiVersions range we support."""
    lo, hi = st.profile[18]
    body = {"ErrorCode": UNSUPPORTED_VERSION,
            "ApiKeys": [{"ApiKey": 18, "MinVersion": lo, "MaxVersion": hi}]}
    return kwire.encode_response(18, 0, corr, body)


class Conn(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def handle(self):
        st = self.server.state
        peer = "%s:%d" % self.client_address
        log("connect", peer)
        try:
            while True:
                size = self.recv_exact(4)
                if size is None:
                    break
                (n,) = struct.unpack(">i", size)
                if n < 8 or n > 64 << 20:
                    log("bad frame size", n, "from", peer)
                    break
                frame = self.recv_exact(n)
                if frame is None:
                    break
                if not self.one(st, frame):
                    break
        except (ConnectionError, OSError) as e:
            log("connection", peer, "error:", e)
        log("disconnect", peer)

    def one(self, st, frame):
        """Handle one request frame; False closes the connection."""
        key, ver, corr = struct.unpack_from(">hhi", frame, 0)
        name = kwire.api_name(key)
        adv = st.profile.get(key)
        if key == 18 and ver > adv[1]:
            hdr = {"api_key": key, "api_version": ver, "client_id": None}
            st.record(frame, hdr, "unsupported")
            log("ApiVersions v%d above v%d: answering UNSUPPORTED_VERSION" % (ver, adv[1]))
            self.request.sendall(unsupported_api_versions(st, corr))
            return True
        if key not in HANDLERS or ver > CODEC_MAX[key]:
            hdr = {"api_key": key, "api_version": ver, "client_id": None}
            st.record(frame, hdr, "unhandled")
            log("no handler for %s v%d: closing connection" % (name, ver))
            return False
        if adv is None or not adv[0] <= ver <= adv[1]:
            log("note: %s v%d requested outside the advertised range %r" % (name, ver, adv))
        try:
            hdr, body = kwire.decode_request(frame)
        except kwire.DecodeError as e:
            st.record(frame, {"api_key": key, "api_version": ver, "client_id": None},
                      "undecodable")
            log("cannot decode %s v%d: %s" % (name, ver, e))
            return False
        try:
            resp, desc = HANDLERS[key](st, ver, body)
        except Exception as e:  # keep serving other connections
            st.record(frame, hdr, "failed")
            log("handler for %s v%d failed: %r: closing connection" % (name, ver, e))
            return False
        st.record(frame, hdr, desc)
        if resp is not None:
            self.request.sendall(kwire.encode_response(key, ver, corr, resp))
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0: a free 127.0.0.1:19xxx port")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--out", required=True, help="directory for captured frames")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="flexible")
    ap.add_argument("--topic", action="append", help="pre-create a topic")
    ap.add_argument("--auto-create", action="store_true",
                    help="create topics named in Metadata even if the client says not to")
    ap.add_argument("--max-same", type=int, default=2,
                    help="frames kept per (api, version, desc)")
    ap.add_argument("--max-same-produce", type=int, default=4,
                    help="Produce frames kept per (version, desc)")
    ap.add_argument("--max-fetch-wait-ms", type=int, default=200)
    ap.add_argument("--lifetime", type=float, default=300.0,
                    help="exit after this many seconds whatever happens")
    args = ap.parse_args()
    st = State(args)

    srv = None
    ports = [args.port]
    if not args.port:
        ports = list(range(19000, 20000))
        random.shuffle(ports)
    for port in ports:
        try:
            srv = Server(("127.0.0.1", port), Conn)
            break
        except OSError:
            continue
    if srv is None:
        log("no free port")
        return 1
    srv.state = st
    st.port = srv.server_address[1]
    log("listening on 127.0.0.1:%d profile=%s out=%s" % (st.port, args.profile, args.out))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % st.port)
        os.rename(tmp, args.port_file)
    timer = threading.Timer(args.lifetime, srv.shutdown)
    timer.daemon = True
    timer.start()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
