#!/usr/bin/env python3
"""A dependency-free avrpc client for protocol/echo.avdl, written from SPEC.md alone.

It proves that the spec is enough to interoperate from another language. Usage:

    python3 echo_client.py HOST PORT

It opens two connections:
  A. with its OWN protocol text (messages in another order than the server's, plus a message `shout`
     the server does not have), going through NEED_PROTOCOL, and reading the server's protocol text;
  B. with the reference fingerprint of SPEC.md section 10 and no protocol text;
  C. with its own fingerprint and the server's as knownServerFingerprint (no text either way), ending
     with a GOAWAY sent by the client;
  D. with a protocol text that does not match its fingerprint (a protocol error);
  E. with a REQUEST of id 0 (a protocol error).
It makes the calls, prints the line `READY_FOR_GOAWAY` and waits for the server's GOAWAY and close, then
prints one JSON line of results; the exit code is 0 only when every check passed.
"""

import hashlib
import json
import socket
import struct
import sys

# --- Avro binary encoding (SPEC.md conventions) ---------------------------------------------------


def enc_long(n):
    z = (n << 1) ^ (n >> 63)  # zig-zag of a 64-bit signed value
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def enc_bytes(b):
    return enc_long(len(b)) + b


def enc_string(s):
    return enc_bytes(s.encode("utf-8"))


def enc_double(x):
    return struct.pack("<d", x)


def enc_array(items, enc_item):
    if not items:
        return b"\x00"
    return enc_long(len(items)) + b"".join(enc_item(i) for i in items) + b"\x00"


def enc_map_string(m):
    if not m:
        return b"\x00"
    body = b"".join(enc_string(k) + enc_string(v) for k, v in m.items())
    return enc_long(len(m)) + body + b"\x00"


def enc_map_bytes(m):
    if not m:
        return b"\x00"
    body = b"".join(enc_string(k) + enc_bytes(v) for k, v in m.items())
    return enc_long(len(m)) + body + b"\x00"


class Reader:
    """Reads Avro values from one frame body; `done()` checks the body was consumed exactly."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated Avro value")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def long(self):
        shift = 0
        z = 0
        while True:
            b = self.take(1)[0]
            z |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise ValueError("varint too long")
        return (z >> 1) ^ -(z & 1)

    def bytes(self):
        return bytes(self.take(self.long()))

    def string(self):
        return self.bytes().decode("utf-8")

    def double(self):
        return struct.unpack("<d", self.take(8))[0]

    def fixed(self, n):
        return bytes(self.take(n))

    def blocks(self, read_one):
        """Array/map blocks: a count, then items; a negative count is followed by a byte size."""
        out = []
        while True:
            count = self.long()
            if count == 0:
                return out
            if count < 0:
                count = -count
                self.long()  # block size in bytes, not needed to read the items
            for _ in range(count):
                out.append(read_one())

    def map(self, read_value):
        return dict(self.blocks(lambda: (self.string(), read_value())))

    def done(self):
        if self.pos != len(self.buf):
            raise ValueError("%d bytes left after the value" % (len(self.buf) - self.pos))


# --- The echo protocol, as this client knows it ---------------------------------------------------

ITEM_FIELDS = [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "score", "type": "double"},
    {"name": "blob", "type": "bytes"},
]

# Our own protocol text: messages in a different order than echo.avdl, and one (`shout`) the server
# lacks, so that the server must map our indexes by name (SPEC section 3).
OWN_PROTOCOL = {
    "protocol": "Echo",
    "namespace": "avrpc.echo",
    "types": [
        {"type": "record", "name": "Item", "fields": ITEM_FIELDS},
        {"type": "error", "name": "EchoError", "fields": [{"name": "reason", "type": "string"}]},
    ],
    "messages": {
        "notify": {"request": [{"name": "item", "type": "Item"}], "response": "null", "one-way": True},
        "shout": {"request": [{"name": "text", "type": "string"}], "response": "string"},
        "fail": {"request": [{"name": "reason", "type": "string"}], "response": "Item", "errors": ["EchoError"]},
        "echo": {"request": [{"name": "item", "type": "Item"}], "response": "Item"},
    },
}
OWN_TEXT = json.dumps(OWN_PROTOCOL, separators=(", ", ": ")).encode("utf-8")
OWN_FP = hashlib.md5(OWN_TEXT).digest()
OWN_INDEX = {name: i for i, name in enumerate(OWN_PROTOCOL["messages"])}

# The reference text of protocol/echo.avdl (SPEC section 10): we claim it without sending it.
REF_FP = bytes.fromhex("2afda572341fa906084110279f02dcfe")
REF_INDEX = {"echo": 0, "fail": 1, "notify": 2}


def enc_item(it):
    return (enc_long(it["id"]) + enc_string(it["name"]) + enc_array(it["tags"], enc_string)
            + enc_double(it["score"]) + enc_bytes(it["blob"]))


def dec_item(r):
    return {"id": r.long(), "name": r.string(), "tags": r.blocks(r.string), "score": r.double(),
            "blob": r.bytes()}


def full_name(name, namespace):
    if "." in name or name in ("null", "boolean", "int", "long", "float", "double", "bytes", "string"):
        return name
    return namespace + "." + name if namespace else name


def normalize(schema, namespace, named):
    """The schema with every named reference replaced by a fully qualified name (for comparison)."""
    if isinstance(schema, str):
        return full_name(schema, namespace)
    if isinstance(schema, list):
        return [normalize(s, namespace, named) for s in schema]
    t = schema.get("type")
    if t in ("record", "error"):
        ns = schema.get("namespace", namespace)
        name = full_name(schema["name"], ns)
        named[name] = schema
        ns = name.rsplit(".", 1)[0] if "." in name else ""
        return {"record": name,
                "fields": [(f["name"], normalize(f["type"], ns, named)) for f in schema["fields"]]}
    if t == "array":
        return {"array": normalize(schema["items"], namespace, named)}
    if t == "map":
        return {"map": normalize(schema["values"], namespace, named)}
    if isinstance(t, str) and t in ("null", "boolean", "int", "long", "float", "double", "bytes", "string"):
        return t
    raise ValueError("schema not understood by this client: %r" % (schema,))


def check_server_protocol(text):
    """This client does no general schema resolution (SPEC section 3): it checks that the server's
    schemas for the messages it uses equal its own, and returns the server's error union per message."""
    proto = json.loads(text)
    ns = proto.get("namespace", "")
    types = {}
    for t in proto.get("types", []):
        types[full_name(t["name"], t.get("namespace", ns))] = normalize(t, ns, {})
    own_types = {}
    for t in OWN_PROTOCOL["types"]:
        own_types[full_name(t["name"], OWN_PROTOCOL["namespace"])] = normalize(t, OWN_PROTOCOL["namespace"], {})
    for name, t in own_types.items():
        if types.get(name) != t:
            raise ValueError("server type %s differs from ours: %r" % (name, types.get(name)))
    errors = {}
    for mname, m in proto["messages"].items():
        errors[mname] = ["string"] + [full_name(e, ns) for e in m.get("errors", [])]
    return proto, errors


# --- Frames (SPEC sections 1, 2) ------------------------------------------------------------------

PREFACE = b"AVRP\x01\x00"
HELLO, WELCOME, REQUEST, RESPONSE, ERROR, CANCEL, PING, PONG, GOAWAY = range(1, 10)
F_DEADLINE, F_METADATA, F_ONE_WAY, F_DECLARED = 1, 2, 4, 8
MAX_FRAME = 16 * 1024 * 1024
CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
         "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]


def frame(ftype, flags, fid, body=b""):
    return struct.pack(">IBBI", len(body), ftype, flags, fid) + body


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = bytearray()
        self.eof = False
        self.pings_answered = 0

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """The next frame as (type, flags, id, body), or None at end of stream. PINGs from the server
        are answered here (SPEC section 6)."""
        while True:
            if len(self.buf) >= 10:
                length, ftype, flags, fid = struct.unpack(">IBBI", self.buf[:10])
                if length > MAX_FRAME:  # checked before waiting for (or allocating) the body
                    raise ValueError("oversized frame: %d bytes" % length)
                if len(self.buf) >= 10 + length:
                    body = bytes(self.buf[10:10 + length])
                    del self.buf[:10 + length]
                    if ftype == PING:
                        self.send(frame(PONG, 0, fid))
                        self.pings_answered += 1
                        continue
                    return ftype, flags, fid, body
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                if self.buf:
                    raise ValueError("stream ended inside a frame")
                return None
            self.buf += chunk

    def close(self):
        self.sock.close()


def hello(fp, protocol_text, known_server_fp):
    body = fp
    body += b"\x00" if protocol_text is None else b"\x02" + enc_bytes(protocol_text)
    body += b"\x00" if known_server_fp is None else b"\x02" + known_server_fp
    body += enc_map_bytes({})
    return frame(HELLO, 0, 0, body)


def read_welcome(conn):
    f = conn.read_frame()
    if f is None:
        raise ValueError("closed during the handshake")
    ftype, _flags, fid, body = f
    if ftype == ERROR:
        code, message = decode_error_head(Reader(body))
        raise ValueError("handshake refused: %s %s" % (CODES[code], message))
    if ftype != WELCOME or fid != 0:
        raise ValueError("expected WELCOME, got type %d id %d" % (ftype, fid))
    r = Reader(body)
    status = ["OK", "NEED_PROTOCOL"][r.long()]
    fp = r.fixed(16)
    text = r.bytes() if r.long() == 1 else None
    meta = r.map(r.bytes)
    r.done()
    if text is not None and hashlib.md5(text).digest() != fp:
        raise ValueError("WELCOME protocol text does not match its fingerprint")
    return {"status": status, "fingerprint": fp, "protocol": text, "meta": meta}


def decode_error_head(r):
    code = r.take(1)[0]
    return code, r.string()


def request(msg_index, rid, payload, timeout_ms=None, metadata=None, one_way=False):
    flags = 0
    body = struct.pack(">H", msg_index)
    if timeout_ms is not None:
        flags |= F_DEADLINE
        body += struct.pack(">I", timeout_ms)
    if metadata is not None:
        flags |= F_METADATA
        body += enc_map_string(metadata)
    if one_way:
        flags |= F_ONE_WAY
    return frame(REQUEST, flags, rid, body + payload)


def read_reply(conn, error_union):
    """The next RESPONSE or ERROR as a dict (id, and value or error); GOAWAY/EOF raise."""
    f = conn.read_frame()
    if f is None:
        raise ValueError("connection closed while calls were pending")
    ftype, flags, fid, body = f
    r = Reader(body)
    if ftype == RESPONSE:
        return {"id": fid, "body": r}
    if ftype == ERROR:
        code, message = decode_error_head(r)
        out = {"id": fid, "code": CODES[code], "message": message}
        if flags & F_METADATA:
            out["metadata"] = r.map(r.string)
        if flags & F_DECLARED:
            branch = r.long()
            out["declared_type"] = error_union[branch]
            # Every declared error of echo.avdl is EchoError {string reason}; branch 0 is a string.
            out["declared"] = r.string() if branch == 0 else {"reason": r.string()}
        r.done()
        return out
    raise ValueError("unexpected frame type %d id %d" % (ftype, fid))


# --- The checks -----------------------------------------------------------------------------------

ITEM = {"id": -1234567890123, "name": "h\u00e9llo \u2713", "tags": ["a", "", "c"], "score": -2.75,
        "blob": bytes(range(256))}


def item_n(n):
    return {"id": n, "name": "n%d" % n, "tags": ["t"] * (n % 3), "score": n / 4.0, "blob": bytes([n])}


class Checks:
    def __init__(self):
        self.results = {}
        self.failed = []

    def check(self, name, ok, detail=None):
        self.results[name] = True if ok else {"failed": detail}
        if not ok:
            self.failed.append(name)


def run_conn_a(host, port, c):
    conn = Conn(host, port)
    conn.send(PREFACE + hello(OWN_FP, None, None))
    w = read_welcome(conn)
    c.check("a.need_protocol", w["status"] == "NEED_PROTOCOL", w["status"])
    if w["status"] == "NEED_PROTOCOL":
        conn.send(hello(OWN_FP, OWN_TEXT, None))
        w = read_welcome(conn)
    c.check("a.welcome_ok", w["status"] == "OK", w["status"])
    c.check("a.server_protocol_sent", w["protocol"] is not None)
    _proto, errors = check_server_protocol(w["protocol"].decode("utf-8"))
    server_fp = w["fingerprint"]

    # 1. echo, with our index for `echo` (3), not the server's (0).
    conn.send(request(OWN_INDEX["echo"], 1, enc_item(ITEM)))
    rep = read_reply(conn, errors["echo"])
    got = dec_item(rep["body"]) if "body" in rep else rep
    if "body" in rep:
        rep["body"].done()
    c.check("a.echo", rep["id"] == 1 and got == ITEM, repr(got))

    # 2. declared error
    conn.send(request(OWN_INDEX["fail"], 2, enc_string("no luck")))
    rep = read_reply(conn, errors["fail"])
    c.check("a.fail_declared", rep["id"] == 2 and rep.get("code") == "UNKNOWN"
            and rep.get("declared_type") == "avrpc.echo.EchoError"
            and rep.get("declared") == {"reason": "no luck"}
            and rep.get("metadata") == {"retry-after": "5"}, rep)

    # 3. one-way, then an echo: the first reply must be the echo's (nothing is sent for notify).
    conn.send(request(OWN_INDEX["notify"], 3, enc_item(item_n(3)), one_way=True)
              + request(OWN_INDEX["echo"], 4, enc_item(item_n(4))))
    rep = read_reply(conn, errors["echo"])
    c.check("a.notify_no_reply", rep["id"] == 4 and dec_item(rep["body"]) == item_n(4), rep["id"])

    # 4. deadline and metadata
    conn.send(request(OWN_INDEX["echo"], 5, enc_item(item_n(5)), timeout_ms=5000,
                      metadata={"trace-id": "abc123", "who": "python"}))
    rep = read_reply(conn, errors["echo"])
    c.check("a.deadline_metadata", rep["id"] == 5 and dec_item(rep["body"]) == item_n(5), rep)

    # 5. a message the server does not have
    conn.send(request(OWN_INDEX["shout"], 6, enc_string("hey")))
    rep = read_reply(conn, errors["echo"])
    c.check("a.unimplemented", rep["id"] == 6 and rep.get("code") == "UNIMPLEMENTED", rep)

    # 6. concurrent calls: all written at once, answers matched by id in whatever order they come.
    ids = list(range(100, 116))
    conn.send(b"".join(request(OWN_INDEX["echo"], i, enc_item(item_n(i))) for i in ids))
    seen = {}
    order = []
    for _ in ids:
        rep = read_reply(conn, errors["echo"])
        seen[rep["id"]] = dec_item(rep["body"])
        order.append(rep["id"])
    c.check("a.concurrent", sorted(seen) == ids and all(seen[i] == item_n(i) for i in ids), order)

    # 7. PING -> PONG with the same id
    conn.send(frame(PING, 0, 0xABCDEF01))
    f = conn.read_frame()
    c.check("a.ping_pong", f is not None and f[0] == PONG and f[2] == 0xABCDEF01 and f[3] == b"", f)

    # 8. negative block counts (count, then the block's byte size) in the metadata map and in an array
    meta = enc_string("neg") + enc_string("yes")
    tags = enc_string("x") + enc_string("y")
    payload = (enc_long(8) + enc_string("n8") + enc_long(-2) + enc_long(len(tags)) + tags + b"\x00"
               + enc_double(2.0) + enc_bytes(b"\x08"))
    body = struct.pack(">H", OWN_INDEX["echo"]) + enc_long(-1) + enc_long(len(meta)) + meta + b"\x00" + payload
    conn.send(frame(REQUEST, F_METADATA, 8, body))
    rep = read_reply(conn, errors["echo"])
    want = {"id": 8, "name": "n8", "tags": ["x", "y"], "score": 2.0, "blob": b"\x08"}
    c.check("a.negative_block_counts", rep["id"] == 8 and "body" in rep and dec_item(rep["body"]) == want, rep)

    # 9. CANCEL of an id that is not running is ignored: nothing comes back, the connection lives on
    conn.send(frame(CANCEL, 0, 9999) + frame(PING, 0, 2))
    f = conn.read_frame()
    c.check("a.cancel_unknown_ignored", f is not None and f[0] == PONG and f[2] == 2, f)

    # 10. a request payload with a trailing byte: INVALID_ARGUMENT, the connection stays usable
    conn.send(request(OWN_INDEX["echo"], 7, enc_item(item_n(7)) + b"\x00"))
    rep = read_reply(conn, errors["echo"])
    c.check("a.invalid_argument", rep["id"] == 7 and rep.get("code") == "INVALID_ARGUMENT", rep)
    # GOAWAY's lastId is the last request the server ACCEPTED (SPEC section 6): 7 was refused
    # before reaching a handler, so it is 8.
    return conn, server_fp, 8


def run_conn_b(host, port, c):
    conn = Conn(host, port)
    conn.send(PREFACE + hello(REF_FP, None, None))
    w = read_welcome(conn)
    c.check("b.welcome_ok_without_protocol", w["status"] == "OK" and w["protocol"] is None
            and w["fingerprint"] == REF_FP, w)
    conn.send(request(REF_INDEX["echo"], 1, enc_item(ITEM)))
    rep = read_reply(conn, ["string", "avrpc.echo.EchoError"])
    c.check("b.echo", rep["id"] == 1 and dec_item(rep["body"]) == ITEM, rep)
    return conn, 1


def run_conn_c(host, port, server_fp, c):
    """The server learnt our protocol on connection A and we know its own: no text either way. Then
    a GOAWAY from the client: the server answers with its own GOAWAY and closes."""
    conn = Conn(host, port)
    conn.send(PREFACE + hello(OWN_FP, None, server_fp))
    w = read_welcome(conn)
    if w["status"] == "NEED_PROTOCOL":  # allowed: the server may have forgotten us
        c.check("c.need_protocol_without_server_text", w["protocol"] is None, w)
        conn.send(hello(OWN_FP, OWN_TEXT, server_fp))
        w = read_welcome(conn)
    c.check("c.known_server_fingerprint", w["status"] == "OK" and w["protocol"] is None, w)
    conn.send(request(OWN_INDEX["echo"], 41, enc_item(item_n(41))))
    rep = read_reply(conn, ["string", "avrpc.echo.EchoError"])
    c.check("c.echo", rep["id"] == 41 and dec_item(rep["body"]) == item_n(41), rep)
    conn.send(frame(GOAWAY, 0, 0, struct.pack(">IB", 0, 0) + enc_string("client done")))
    await_goaway(conn, 41, c, "c")


def run_conn_d(host, port, c):
    """A protocol text that does not hash to the fingerprint sent: GOAWAY INTERNAL, then close."""
    conn = Conn(host, port)
    conn.send(PREFACE + hello(REF_FP, OWN_TEXT, None))
    f = conn.read_frame()
    ok = f is not None and f[0] == GOAWAY and f[2] == 0
    if ok:
        r = Reader(f[3])
        ok = r.take(4) == b"\0\0\0\0" and r.take(1)[0] == 13
    c.check("d.fingerprint_mismatch_goaway", ok, repr(f))
    c.check("d.closed", conn.read_frame() is None)
    conn.close()


def run_conn_e(host, port, c):
    """A REQUEST with id 0 (reserved for connection-level frames): GOAWAY INTERNAL, then close."""
    conn = Conn(host, port)
    conn.send(PREFACE + hello(REF_FP, None, None))
    read_welcome(conn)
    conn.send(request(REF_INDEX["echo"], 0, enc_item(item_n(1))))
    f = conn.read_frame()
    c.check("e.request_id_0_goaway", f is not None and f[0] == GOAWAY and f[3][4] == 13, repr(f))
    c.check("e.closed", conn.read_frame() is None)
    conn.close()


def await_goaway(conn, last_sent, c, label):
    """After the server starts shutting down: GOAWAY code 0 with lastId = our last accepted request,
    then the server closes (no call is running)."""
    f = conn.read_frame()
    ok = f is not None and f[0] == GOAWAY and f[2] == 0
    detail = f
    if ok:
        r = Reader(f[3])
        last_id = struct.unpack(">I", r.take(4))[0]
        code = r.take(1)[0]
        message = r.string()
        r.done()
        detail = {"lastId": last_id, "code": code, "message": message}
        ok = last_id == last_sent and code == 0
    c.check(label + ".goaway", ok, repr(detail))
    rest = conn.read_frame()
    c.check(label + ".closed_after_goaway", rest is None, repr(rest))
    conn.close()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = Checks()
    try:
        a, _server_fp, a_last = run_conn_a(host, port, c)
        b, b_last = run_conn_b(host, port, c)
        run_conn_c(host, port, _server_fp, c)
        run_conn_d(host, port, c)
        run_conn_e(host, port, c)
        print("READY_FOR_GOAWAY", flush=True)
        await_goaway(a, a_last, c, "a")
        await_goaway(b, b_last, c, "b")
    except Exception as e:  # report, never hang or trace: the Node test reads our JSON line
        c.check("exception", False, "%s: %s" % (type(e).__name__, e))
    print(json.dumps({"ok": not c.failed, "failed": c.failed, "results": c.results}, default=repr),
          flush=True)
    sys.exit(0 if not c.failed else 1)


if __name__ == "__main__":
    main()
