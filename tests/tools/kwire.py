# SPDX-License-Identifier: Apache-2.0
"""Minimal Kafka wire codec for Slipstream's capture tooling (stdlib only).

This is test tooling, deliberately independent of the broker's C code: the
golden vectors it helps capture are used to test that C code, so they must
not be produced or checked by it. It knows just the handful of APIs the fake
broker (capture_broker.py) answers and the checkers (golden_check.py,
golden_extract.py) parse. Each message is a hand-written list of fields with
the version range in which each field is present, transcribed from Apache
Kafka's JSON message schemas. Tagged fields are never written and are
skipped when read, which is what the protocol allows.

Encoding rules implemented (KIP-482 for the flexible ones):
  non-flexible: string int16 length (-1 null), bytes/records int32 length
                (-1 null), array int32 count (-1 null)
  flexible:     compact string/bytes/records uvarint(len + 1) (0 null),
                compact array uvarint(count + 1) (0 null), and a tagged-field
                section (uvarint count, then tag/size/bytes) after every struct
Request header v1 is api_key, api_version, correlation_id, client_id
(nullable int16 string); v2 adds a tagged-field section. Response header v0 is
the correlation id; v1 adds a tagged-field section. ApiVersions responses
always use header v0 (KIP-511), whatever the request version.
"""

import struct

ANY = 0x7FFF  # "and later" upper bound for a field's version range


def _vr(spec):
    """'3+' -> (3, ANY), '2-7' -> (2, 7), '0' -> (0, 0)."""
    if spec.endswith("+"):
        return (int(spec[:-1]), ANY)
    if "-" in spec:
        lo, hi = spec.split("-")
        return (int(lo), int(hi))
    return (int(spec), int(spec))


def F(name, typ, versions="0+", sub=None):
    """One schema field: typ is a primitive name or 'array'/'struct' with sub."""
    return (name, typ, _vr(versions), sub)


# ---------------------------------------------------------------------------
# Message definitions (non-tagged fields only).
# ---------------------------------------------------------------------------

API = {}  # api key -> dict(name, flex, req, resp)


def _api(key, name, flex, req, resp):
    API[key] = {"name": name, "flex": flex, "req": req, "resp": resp}


_api(18, "ApiVersions", 3,
     [F("ClientSoftwareName", "string", "3+"),
      F("ClientSoftwareVersion", "string", "3+")],
     [F("ErrorCode", "int16"),
      F("ApiKeys", "array", "0+", [F("ApiKey", "int16"), F("MinVersion", "int16"),
                                   F("MaxVersion", "int16")]),
      F("ThrottleTimeMs", "int32", "1+")])

_METADATA_PARTITION = [
    F("ErrorCode", "int16"), F("PartitionIndex", "int32"), F("LeaderId", "int32"),
    F("LeaderEpoch", "int32", "7+"), F("ReplicaNodes", "array", "0+", "int32"),
    F("IsrNodes", "array", "0+", "int32"), F("OfflineReplicas", "array", "5+", "int32")]
_api(3, "Metadata", 9,
     [F("Topics", "array", "0+", [F("TopicId", "uuid", "10+"), F("Name", "string")]),
      F("AllowAutoTopicCreation", "bool", "4+"),
      F("IncludeClusterAuthorizedOperations", "bool", "8-10"),
      F("IncludeTopicAuthorizedOperations", "bool", "8+")],
     [F("ThrottleTimeMs", "int32", "3+"),
      F("Brokers", "array", "0+", [F("NodeId", "int32"), F("Host", "string"),
                                   F("Port", "int32"), F("Rack", "string", "1+")]),
      F("ClusterId", "string", "2+"),
      F("ControllerId", "int32", "1+"),
      F("Topics", "array", "0+", [
          F("ErrorCode", "int16"), F("Name", "string"), F("TopicId", "uuid", "10+"),
          F("IsInternal", "bool", "1+"), F("Partitions", "array", "0+", _METADATA_PARTITION),
          F("TopicAuthorizedOperations", "int32", "8+")]),
      F("ClusterAuthorizedOperations", "int32", "8-10")])

_api(0, "Produce", 9,
     [F("TransactionalId", "string", "3+"), F("Acks", "int16"), F("TimeoutMs", "int32"),
      F("TopicData", "array", "0+", [
          F("Name", "string"),
          F("PartitionData", "array", "0+", [F("Index", "int32"),
                                             F("Records", "records")])])],
     [F("Responses", "array", "0+", [
         F("Name", "string"),
         F("PartitionResponses", "array", "0+", [
             F("Index", "int32"), F("ErrorCode", "int16"), F("BaseOffset", "int64"),
             F("LogAppendTimeMs", "int64", "2+"), F("LogStartOffset", "int64", "5+"),
             F("RecordErrors", "array", "8+", [F("BatchIndex", "int32"),
                                               F("BatchIndexErrorMessage", "string")]),
             F("ErrorMessage", "string", "8+")])]),
      F("ThrottleTimeMs", "int32", "1+")])

_api(1, "Fetch", 12,
     [F("ReplicaId", "int32", "0-14"), F("MaxWaitMs", "int32"), F("MinBytes", "int32"),
      F("MaxBytes", "int32", "3+"), F("IsolationLevel", "int8", "4+"),
      F("SessionId", "int32", "7+"), F("SessionEpoch", "int32", "7+"),
      F("Topics", "array", "0+", [
          F("Topic", "string", "0-12"), F("TopicId", "uuid", "13+"),
          F("Partitions", "array", "0+", [
              F("Partition", "int32"), F("CurrentLeaderEpoch", "int32", "9+"),
              F("FetchOffset", "int64"), F("LastFetchedEpoch", "int32", "12+"),
              F("LogStartOffset", "int64", "5+"), F("PartitionMaxBytes", "int32")])]),
      F("ForgottenTopicsData", "array", "7+", [
          F("Topic", "string", "7-12"), F("TopicId", "uuid", "13+"),
          F("Partitions", "array", "7+", "int32")]),
      F("RackId", "string", "11+")],
     [F("ThrottleTimeMs", "int32", "1+"), F("ErrorCode", "int16", "7+"),
      F("SessionId", "int32", "7+"),
      F("Responses", "array", "0+", [
          F("Topic", "string", "0-12"), F("TopicId", "uuid", "13+"),
          F("Partitions", "array", "0+", [
              F("PartitionIndex", "int32"), F("ErrorCode", "int16"),
              F("HighWatermark", "int64"), F("LastStableOffset", "int64", "4+"),
              F("LogStartOffset", "int64", "5+"),
              F("AbortedTransactions", "array", "4+", [F("ProducerId", "int64"),
                                                       F("FirstOffset", "int64")]),
              F("PreferredReadReplica", "int32", "11+"),
              F("Records", "records")])])])

_api(2, "ListOffsets", 6,
     [F("ReplicaId", "int32"), F("IsolationLevel", "int8", "2+"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [
              F("PartitionIndex", "int32"), F("CurrentLeaderEpoch", "int32", "4+"),
              F("Timestamp", "int64"), F("MaxNumOffsets", "int32", "0")])]),
      F("TimeoutMs", "int32", "10+")],
     [F("ThrottleTimeMs", "int32", "2+"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [
              F("PartitionIndex", "int32"), F("ErrorCode", "int16"),
              F("OldStyleOffsets", "array", "0", "int64"),
              F("Timestamp", "int64", "1+"), F("Offset", "int64", "1+"),
              F("LeaderEpoch", "int32", "4+")])])])

_api(22, "InitProducerId", 2,
     [F("TransactionalId", "string"), F("TransactionTimeoutMs", "int32"),
      F("ProducerId", "int64", "3+"), F("ProducerEpoch", "int16", "3+")],
     [F("ThrottleTimeMs", "int32"), F("ErrorCode", "int16"), F("ProducerId", "int64"),
      F("ProducerEpoch", "int16")])

_api(10, "FindCoordinator", 3,
     [F("Key", "string", "0-3"), F("KeyType", "int8", "1+"),
      F("CoordinatorKeys", "array", "4+", "string")],
     [F("ThrottleTimeMs", "int32", "1+"), F("ErrorCode", "int16", "0-3"),
      F("ErrorMessage", "string", "1-3"), F("NodeId", "int32", "0-3"),
      F("Host", "string", "0-3"), F("Port", "int32", "0-3"),
      F("Coordinators", "array", "4+", [
          F("Key", "string"), F("NodeId", "int32"), F("Host", "string"), F("Port", "int32"),
          F("ErrorCode", "int16"), F("ErrorMessage", "string")])])

_api(11, "JoinGroup", 6,
     [F("GroupId", "string"), F("SessionTimeoutMs", "int32"),
      F("RebalanceTimeoutMs", "int32", "1+"), F("MemberId", "string"),
      F("GroupInstanceId", "string", "5+"), F("ProtocolType", "string"),
      F("Protocols", "array", "0+", [F("Name", "string"), F("Metadata", "bytes")]),
      F("Reason", "string", "8+")],
     [F("ThrottleTimeMs", "int32", "2+"), F("ErrorCode", "int16"), F("GenerationId", "int32"),
      F("ProtocolType", "string", "7+"), F("ProtocolName", "string"), F("Leader", "string"),
      F("SkipAssignment", "bool", "9+"), F("MemberId", "string"),
      F("Members", "array", "0+", [F("MemberId", "string"),
                                   F("GroupInstanceId", "string", "5+"),
                                   F("Metadata", "bytes")])])

_api(14, "SyncGroup", 4,
     [F("GroupId", "string"), F("GenerationId", "int32"), F("MemberId", "string"),
      F("GroupInstanceId", "string", "3+"), F("ProtocolType", "string", "5+"),
      F("ProtocolName", "string", "5+"),
      F("Assignments", "array", "0+", [F("MemberId", "string"), F("Assignment", "bytes")])],
     [F("ThrottleTimeMs", "int32", "1+"), F("ErrorCode", "int16"),
      F("ProtocolType", "string", "5+"), F("ProtocolName", "string", "5+"),
      F("Assignment", "bytes")])

_api(12, "Heartbeat", 4,
     [F("GroupId", "string"), F("GenerationId", "int32"), F("MemberId", "string"),
      F("GroupInstanceId", "string", "3+")],
     [F("ThrottleTimeMs", "int32", "1+"), F("ErrorCode", "int16")])

_api(13, "LeaveGroup", 4,
     [F("GroupId", "string"), F("MemberId", "string", "0-2"),
      F("Members", "array", "3+", [F("MemberId", "string"), F("GroupInstanceId", "string"),
                                   F("Reason", "string", "5+")])],
     [F("ThrottleTimeMs", "int32", "1+"), F("ErrorCode", "int16"),
      F("Members", "array", "3+", [F("MemberId", "string"), F("GroupInstanceId", "string"),
                                   F("ErrorCode", "int16")])])

_OFFSET_FETCH_PARTITION_RESP = [
    F("PartitionIndex", "int32"), F("CommittedOffset", "int64"),
    F("CommittedLeaderEpoch", "int32", "5+"), F("Metadata", "string"), F("ErrorCode", "int16")]
_api(9, "OffsetFetch", 6,
     [F("GroupId", "string", "0-7"),
      F("Topics", "array", "0-7", [F("Name", "string"),
                                   F("PartitionIndexes", "array", "0+", "int32")]),
      F("Groups", "array", "8+", [
          F("GroupId", "string"), F("MemberId", "string", "9+"),
          F("MemberEpoch", "int32", "9+"),
          F("Topics", "array", "8+", [F("Name", "string"),
                                      F("PartitionIndexes", "array", "8+", "int32")])]),
      F("RequireStable", "bool", "7+")],
     [F("ThrottleTimeMs", "int32", "3+"),
      F("Topics", "array", "0-7", [F("Name", "string"),
                                   F("Partitions", "array", "0+",
                                     _OFFSET_FETCH_PARTITION_RESP)]),
      F("ErrorCode", "int16", "2-7"),
      F("Groups", "array", "8+", [
          F("GroupId", "string"),
          F("Topics", "array", "8+", [F("Name", "string"),
                                      F("Partitions", "array", "8+",
                                        _OFFSET_FETCH_PARTITION_RESP)]),
          F("ErrorCode", "int16", "8+")])])

_api(8, "OffsetCommit", 8,
     [F("GroupId", "string"), F("GenerationIdOrMemberEpoch", "int32", "1+"),
      F("MemberId", "string", "1+"), F("GroupInstanceId", "string", "7+"),
      F("RetentionTimeMs", "int64", "2-4"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [
              F("PartitionIndex", "int32"), F("CommittedOffset", "int64"),
              F("CommittedLeaderEpoch", "int32", "6+"), F("CommitTimestamp", "int64", "1"),
              F("CommittedMetadata", "string")])])],
     [F("ThrottleTimeMs", "int32", "3+"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [F("PartitionIndex", "int32"),
                                          F("ErrorCode", "int16")])])])

_api(19, "CreateTopics", 5,
     [F("Topics", "array", "0+", [
         F("Name", "string"), F("NumPartitions", "int32"), F("ReplicationFactor", "int16"),
         F("Assignments", "array", "0+", [F("PartitionIndex", "int32"),
                                          F("BrokerIds", "array", "0+", "int32")]),
         F("Configs", "array", "0+", [F("Name", "string"), F("Value", "string")])]),
      F("timeoutMs", "int32"), F("validateOnly", "bool", "1+")],
     [F("ThrottleTimeMs", "int32", "2+"),
      F("Topics", "array", "0+", [
          F("Name", "string"), F("TopicId", "uuid", "7+"), F("ErrorCode", "int16"),
          F("ErrorMessage", "string", "1+"), F("NumPartitions", "int32", "5+"),
          F("ReplicationFactor", "int16", "5+"),
          F("Configs", "array", "5+", [
              F("Name", "string"), F("Value", "string"), F("ReadOnly", "bool"),
              F("ConfigSource", "int8"), F("IsSensitive", "bool")])])])

_TXN_TOPIC = [F("Name", "string"), F("Partitions", "array", "0+", "int32")]
_TXN_TOPIC_RESULT = [F("Name", "string"),
                     F("ResultsByPartition", "array", "0+", [
                         F("PartitionIndex", "int32"), F("PartitionErrorCode", "int16")])]
_api(24, "AddPartitionsToTxn", 3,
     [F("Transactions", "array", "4+", [
         F("TransactionalId", "string"), F("ProducerId", "int64"), F("ProducerEpoch", "int16"),
         F("VerifyOnly", "bool"), F("Topics", "array", "0+", _TXN_TOPIC)]),
      F("V3AndBelowTransactionalId", "string", "0-3"),
      F("V3AndBelowProducerId", "int64", "0-3"),
      F("V3AndBelowProducerEpoch", "int16", "0-3"),
      F("V3AndBelowTopics", "array", "0-3", _TXN_TOPIC)],
     [F("ThrottleTimeMs", "int32"), F("ErrorCode", "int16", "4+"),
      F("ResultsByTransaction", "array", "4+", [
          F("TransactionalId", "string"),
          F("TopicResults", "array", "0+", _TXN_TOPIC_RESULT)]),
      F("ResultsByTopicV3AndBelow", "array", "0-3", _TXN_TOPIC_RESULT)])

_api(25, "AddOffsetsToTxn", 3,
     [F("TransactionalId", "string"), F("ProducerId", "int64"), F("ProducerEpoch", "int16"),
      F("GroupId", "string")],
     [F("ThrottleTimeMs", "int32"), F("ErrorCode", "int16")])

_api(26, "EndTxn", 3,
     [F("TransactionalId", "string"), F("ProducerId", "int64"), F("ProducerEpoch", "int16"),
      F("Committed", "bool")],
     [F("ThrottleTimeMs", "int32"), F("ErrorCode", "int16"), F("ProducerId", "int64", "5+"),
      F("ProducerEpoch", "int16", "5+")])

_api(28, "TxnOffsetCommit", 3,
     [F("TransactionalId", "string"), F("GroupId", "string"), F("ProducerId", "int64"),
      F("ProducerEpoch", "int16"), F("GenerationId", "int32", "3+"),
      F("MemberId", "string", "3+"), F("GroupInstanceId", "string", "3+"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [
              F("PartitionIndex", "int32"), F("CommittedOffset", "int64"),
              F("CommittedLeaderEpoch", "int32", "2+"),
              F("CommittedMetadata", "string")])])],
     [F("ThrottleTimeMs", "int32"),
      F("Topics", "array", "0+", [
          F("Name", "string"),
          F("Partitions", "array", "0+", [F("PartitionIndex", "int32"),
                                          F("ErrorCode", "int16")])])])

API_BY_NAME = {v["name"]: k for k, v in API.items()}


def api_name(key):
    """Name of an API key, or 'Api<key>' for one this module does not know."""
    return API[key]["name"] if key in API else "Api%d" % key


def is_flexible(key, version):
    return key in API and version >= API[key]["flex"]


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------

class DecodeError(Exception):
    pass


class Reader:
    """Bounds-checked big-endian reader over a bytes object."""

    def __init__(self, buf, pos=0):
        self.buf = bytes(buf)
        self.pos = pos

    def remaining(self):
        return len(self.buf) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise DecodeError("need %d bytes at %d, have %d" % (n, self.pos, self.remaining()))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def int8(self):
        return self._unpack(">b", 1)

    def int16(self):
        return self._unpack(">h", 2)

    def int32(self):
        return self._unpack(">i", 4)

    def int64(self):
        return self._unpack(">q", 8)

    def uint32(self):
        return self._unpack(">I", 4)

    def uvarint(self):
        shift = 0
        val = 0
        while True:
            if shift > 63:
                raise DecodeError("varint too long")
            b = self.take(1)[0]
            val |= (b & 0x7F) << shift
            if not b & 0x80:
                return val
            shift += 7

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)


class Writer:
    def __init__(self):
        self.b = bytearray()

    def int8(self, v):
        self.b += struct.pack(">b", v)

    def int16(self, v):
        self.b += struct.pack(">h", v)

    def int32(self, v):
        self.b += struct.pack(">i", v)

    def int64(self, v):
        self.b += struct.pack(">q", v)

    def uvarint(self, v):
        assert v >= 0
        while v >= 0x80:
            self.b.append((v & 0x7F) | 0x80)
            v >>= 7
        self.b.append(v)

    def varint(self, v):
        self.uvarint((v << 1) ^ (v >> 63))


def _write_len(w, n, flex, wide):
    """Length/count prefix; n None means null."""
    if flex:
        w.uvarint(0 if n is None else n + 1)
    elif wide:
        w.int32(-1 if n is None else n)
    else:
        w.int16(-1 if n is None else n)


def _read_len(r, flex, wide):
    """Returns the length/count, or None for null."""
    if flex:
        n = r.uvarint()
        return None if n == 0 else n - 1
    n = r.int32() if wide else r.int16()
    if n < -1:
        raise DecodeError("negative length %d" % n)
    return None if n == -1 else n


_PRIM_W = {"int8": Writer.int8, "int16": Writer.int16, "int32": Writer.int32,
           "int64": Writer.int64}
_PRIM_R = {"int8": Reader.int8, "int16": Reader.int16, "int32": Reader.int32,
           "int64": Reader.int64}
_DEFAULT = {"int8": 0, "int16": 0, "int32": 0, "int64": 0, "bool": False, "string": "",
            "bytes": b"", "records": None, "uuid": b"\0" * 16, "array": []}


def _write_value(w, typ, sub, ver, flex, v):
    if typ in _PRIM_W:
        _PRIM_W[typ](w, v)
    elif typ == "bool":
        w.int8(1 if v else 0)
    elif typ == "uuid":
        assert len(v) == 16
        w.b += v
    elif typ == "string":
        if v is None:
            _write_len(w, None, flex, False)
        else:
            e = v.encode()
            _write_len(w, len(e), flex, False)
            w.b += e
    elif typ in ("bytes", "records"):
        _write_len(w, None if v is None else len(v), flex, True)
        if v is not None:
            w.b += v
    elif typ == "array":
        _write_len(w, None if v is None else len(v), flex, True)
        for item in v or []:
            if isinstance(sub, str):
                _write_value(w, sub, None, ver, flex, item)
            else:
                write_struct(w, sub, ver, flex, item)
    else:
        raise ValueError(typ)


def write_struct(w, fields, ver, flex, value):
    """Append one struct; missing values take a type default."""
    for name, typ, (lo, hi), sub in fields:
        if lo <= ver <= hi:
            _write_value(w, typ, sub, ver, flex, value.get(name, _DEFAULT[typ]))
    if flex:
        w.uvarint(0)  # no tagged fields


def skip_tagged(r):
    for _ in range(r.uvarint()):
        r.uvarint()
        r.take(r.uvarint())


def _read_value(r, typ, sub, ver, flex):
    if typ in _PRIM_R:
        return _PRIM_R[typ](r)
    if typ == "bool":
        return r.int8() != 0
    if typ == "uuid":
        return r.take(16)
    if typ == "string":
        n = _read_len(r, flex, False)
        return None if n is None else r.take(n).decode("utf-8", "replace")
    if typ in ("bytes", "records"):
        n = _read_len(r, flex, True)
        return None if n is None else r.take(n)
    if typ == "array":
        n = _read_len(r, flex, True)
        if n is None:
            return None
        if n > r.remaining():
            raise DecodeError("array count %d exceeds remaining bytes" % n)
        if isinstance(sub, str):
            return [_read_value(r, sub, None, ver, flex) for _ in range(n)]
        return [read_struct(r, sub, ver, flex) for _ in range(n)]
    raise ValueError(typ)


def read_struct(r, fields, ver, flex):
    out = {}
    for name, typ, (lo, hi), sub in fields:
        if lo <= ver <= hi:
            out[name] = _read_value(r, typ, sub, ver, flex)
    if flex:
        skip_tagged(r)
    return out


# ---------------------------------------------------------------------------
# Headers and whole messages
# ---------------------------------------------------------------------------

def parse_request_header(frame):
    """Parse a request frame (no size prefix).

    Returns (dict(api_key, api_version, correlation_id, client_id, flexible),
    body offset). Unknown API keys are parsed as header v1.
    """
    r = Reader(frame)
    key = r.int16()
    ver = r.int16()
    corr = r.int32()
    n = r.int16()
    if n < -1:
        raise DecodeError("bad client id length %d" % n)
    client = None if n == -1 else r.take(n).decode("utf-8", "replace")
    flex = is_flexible(key, ver)
    if flex:
        skip_tagged(r)
    return ({"api_key": key, "api_version": ver, "correlation_id": corr,
             "client_id": client, "flexible": flex}, r.pos)


def decode_request(frame):
    """Header and body dict of a request of a known API; raises DecodeError.

    The body must be consumed exactly: trailing bytes are an error.
    """
    hdr, pos = parse_request_header(frame)
    key, ver = hdr["api_key"], hdr["api_version"]
    if key not in API:
        raise DecodeError("unknown api key %d" % key)
    r = Reader(frame, pos)
    body = read_struct(r, API[key]["req"], ver, hdr["flexible"])
    if r.remaining():
        raise DecodeError("%d trailing bytes in %s v%d" % (r.remaining(), api_name(key), ver))
    return hdr, body


def encode_response(key, ver, corr, body):
    """Full response frame with its 4-byte size prefix."""
    flex = is_flexible(key, ver)
    w = Writer()
    w.int32(corr)
    if flex and key != 18:  # ApiVersions keeps response header v0
        w.uvarint(0)
    write_struct(w, API[key]["resp"], ver, flex, body)
    return struct.pack(">i", len(w.b)) + bytes(w.b)


def encode_request(key, ver, corr, client_id, body):
    """Full request frame with size prefix (used by the self-test only)."""
    flex = is_flexible(key, ver)
    w = Writer()
    w.int16(key)
    w.int16(ver)
    w.int32(corr)
    _write_value(w, "string", None, ver, False, client_id)
    if flex:
        w.uvarint(0)
    write_struct(w, API[key]["req"], ver, flex, body)
    return struct.pack(">i", len(w.b)) + bytes(w.b)


# ---------------------------------------------------------------------------
# Record batches (magic 2)
# ---------------------------------------------------------------------------

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _crc32c_table():
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli) as used by record batch v2; crc32c(b'123456789') == 0xE3069283."""
    crc ^= 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def batch_header(b):
    """Decode the 61-byte fixed header of a v2 record batch."""
    r = Reader(b)
    h = {}
    h["base_offset"] = r.int64()
    h["batch_length"] = r.int32()
    h["partition_leader_epoch"] = r.int32()
    h["magic"] = r.int8()
    h["crc"] = r.uint32()
    h["attributes"] = r.int16()
    h["last_offset_delta"] = r.int32()
    h["base_timestamp"] = r.int64()
    h["max_timestamp"] = r.int64()
    h["producer_id"] = r.int64()
    h["producer_epoch"] = r.int16()
    h["base_sequence"] = r.int32()
    h["records_count"] = r.int32()
    h["codec"] = CODECS.get(h["attributes"] & 7, "unknown")
    return h


def split_batches(records):
    """Split a records blob into the byte strings of its batches (magic 2 only).

    Raises DecodeError on a truncated or non-v2 batch.
    """
    out = []
    pos = 0
    while pos < len(records):
        if len(records) - pos < 61:
            raise DecodeError("truncated batch header at %d" % pos)
        blen = struct.unpack_from(">i", records, pos + 8)[0]
        magic = records[pos + 16]
        if magic != 2:
            raise DecodeError("magic %d batch at %d" % (magic, pos))
        end = pos + 12 + blen
        if blen < 49 or end > len(records):
            raise DecodeError("bad batch length %d at %d" % (blen, pos))
        out.append(bytes(records[pos:end]))
        pos = end
    return out


def set_base_offset(batch, base):
    """Copy of a batch with baseOffset rewritten (not covered by the CRC)."""
    return struct.pack(">q", base) + batch[8:]


def parse_records(data, count):
    """Parse `count` records from an (uncompressed) records region.

    Returns a list of dicts (offset_delta, timestamp_delta, key, value,
    headers[(key, value)]); raises DecodeError if the region does not hold
    exactly `count` records.
    """
    r = Reader(data)
    out = []
    for _ in range(count):
        length = r.varint()
        if length < 0 or length > r.remaining():
            raise DecodeError("bad record length %d" % length)
        rr = Reader(r.take(length))
        rec = {"attributes": rr.int8(), "timestamp_delta": rr.varint(),
               "offset_delta": rr.varint()}
        kl = rr.varint()
        rec["key"] = None if kl < 0 else rr.take(kl)
        vl = rr.varint()
        rec["value"] = None if vl < 0 else rr.take(vl)
        hdrs = []
        for _ in range(rr.varint()):
            hk = rr.take(rr.varint())
            hvl = rr.varint()
            hdrs.append((hk, None if hvl < 0 else rr.take(hvl)))
        rec["headers"] = hdrs
        if rr.remaining():
            raise DecodeError("%d trailing bytes in record" % rr.remaining())
        out.append(rec)
    if r.remaining():
        raise DecodeError("%d trailing bytes after %d records" % (r.remaining(), count))
    return out


def build_batch(records, base_offset=0, timestamp_ms=0):
    """Encode an uncompressed v2 batch of (key, value, headers) tuples."""
    body = Writer()
    for i, (k, v, hdrs) in enumerate(records):
        rec = Writer()
        rec.int8(0)
        rec.varint(0)
        rec.varint(i)
        for x in (k, v):
            if x is None:
                rec.varint(-1)
            else:
                rec.varint(len(x))
                rec.b += x
        rec.varint(len(hdrs))
        for hk, hv in hdrs:
            rec.varint(len(hk))
            rec.b += hk
            rec.varint(len(hv))
            rec.b += hv
        body.varint(len(rec.b))
        body.b += rec.b
    tail = Writer()  # from attributes on: the CRC-covered part
    tail.int16(0)
    tail.int32(len(records) - 1)
    tail.int64(timestamp_ms)
    tail.int64(timestamp_ms)
    tail.int64(-1)
    tail.int16(-1)
    tail.int32(-1)
    tail.int32(len(records))
    tail.b += body.b
    head = Writer()
    head.int64(base_offset)
    head.int32(4 + 1 + 4 + len(tail.b))
    head.int32(-1)
    head.int8(2)
    head.b += struct.pack(">I", crc32c(bytes(tail.b)))
    return bytes(head.b + tail.b)


class Client:
    """One connection @sock; request() sends a frame and decodes the response body."""

    def __init__(self, sock, client_id, timeout):
        self.s = sock
        self.s.settimeout(timeout)
        self.client_id = client_id
        self.corr = 0

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            assert chunk, "connection closed by the broker"
            out += chunk
        return out

    def request(self, key, ver, body):
        self.corr += 1
        self.s.sendall(encode_request(key, ver, self.corr, self.client_id, body))
        n = struct.unpack(">i", self.recv_exact(4))[0]
        r = Reader(self.recv_exact(n))
        assert r.int32() == self.corr
        flex = is_flexible(key, ver)
        if flex and key != 18:
            skip_tagged(r)
        out = read_struct(r, API[key]["resp"], ver, flex)
        assert r.remaining() == 0, r.remaining()
        return out

    def close(self):
        self.s.close()
