#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/<target>/ (a few dozen small files per
target). Run from anywhere: python3 fuzz/seeds.py. The fuzzer adds what it finds to its own
working corpus (fuzz/work/, not committed); committed seeds change only here, or when a
crashing input is kept as a regression seed."""
import json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def be32(n): return struct.pack(">I", n & 0xFFFFFFFF)
def be64(n): return struct.pack(">Q", n & 0xFFFFFFFFFFFFFFFF)

def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)

def sized(body): return be32(len(body)) + body
def mpub(msgs): return be32(len(msgs)) + b"".join(sized(m) for m in msgs)
def ident(obj): return b"IDENTIFY\n" + sized(json.dumps(obj).encode())

# v2_commands: [offer byte][stream after the magic]
v2 = {
    "nop": b"\x00NOP\n",
    "pub": b"\x00PUB t\n" + sized(b"hello"),
    "pub-crlf": b"\x00PUB t\r\n" + sized(b"hello") + b"NOP\n",
    "dpub": b"\x00DPUB t 1000\n" + sized(b"later"),
    "dpub-bad-delay": b"\x00DPUB t x\n" + sized(b"later"),
    "mpub": b"\x00MPUB t\n" + sized(mpub([b"a", b"bc", b"def"])),
    "mpub-bad-count": b"\x00MPUB t\n" + sized(be32(9) + sized(b"a")),
    "identify-plain": b"\x00" + ident({"client_id": "c", "hostname": "h", "user_agent": "fuzz/1"}),
    "identify-null": b"\x00IDENTIFY\n" + sized(b"null"),
    "identify-negotiate": b"\x00" + ident({"feature_negotiation": True, "heartbeat_interval": 5000,
        "output_buffer_size": 1024, "output_buffer_timeout": 100, "sample_rate": 10, "msg_timeout": 30000}),
    "identify-snappy": b"\x01" + ident({"feature_negotiation": True, "snappy": True}),
    "identify-deflate": b"\x02" + ident({"feature_negotiation": True, "deflate": True, "deflate_level": 9}),
    "identify-both": b"\x03" + ident({"feature_negotiation": True, "deflate": True, "snappy": True}),
    "identify-tls": b"\x04" + ident({"feature_negotiation": True, "tls_v1": True}),
    "identify-off": b"\x00" + ident({"heartbeat_interval": -1, "output_buffer_size": -1}) + b"PUB t\n" + sized(b"x"),
    "identify-bad": b"\x00" + ident({"sample_rate": 100}),
    "identify-type": b"\x00IDENTIFY\n" + sized(b'{"client_id":1}'),
    "sub-rdy-fin": b"\x00SUB t c\nRDY 10\nFIN 0123456789abcdef\nREQ 0123456789abcdef 0\nTOUCH 0123456789abcdef\nCLS\n",
    "auth": b"\x20AUTH\n" + sized(b"secret"),
    "bad-topic": b"\x00PUB bad!topic\n" + sized(b"x"),
    "too-big": b"\x00PUB t\n" + be32(100000),
    "negative": b"\x00MPUB t\n" + be32(0xFFFFFFFF),
    "no-newline": b"\x00PUB t",
    "empty-params": b"\x00PUB  t\n" + sized(b"x"),
}
write("v2_commands", v2)

# lookupd_commands: the stream after "  V1"
peer = {"broadcast_address": "b", "hostname": "h", "tcp_port": 4150, "http_port": 4151, "version": "1.3.0"}
idl = b"IDENTIFY\n" + sized(json.dumps(peer).encode())
write("lookupd_commands", {
    "ping": b"PING\n",
    "identify": idl,
    "register": idl + b"REGISTER t c\nREGISTER u\nPING\n",
    "unregister": idl + b"REGISTER t c\nUNREGISTER t c\nUNREGISTER t\n",
    "register-first": b"REGISTER t\n",
    "identify-twice": idl + idl,
    "identify-missing": b"IDENTIFY\n" + sized(b'{"version":"1.3.0"}'),
    "identify-case": b"IDENTIFY\n" + sized(b'{"Broadcast_Address":"b","TCP_PORT":1,"http_port":2,"version":"v"}'),
    "identify-bad-type": b"IDENTIFY\n" + sized(b'{"tcp_port":"4150"}'),
    "identify-short": b"IDENTIFY\n" + be32(100) + b"{}",
    "bad-names": idl + b"REGISTER bad!t\n",
    "bad-channel": idl + b"REGISTER t c*\n",
    "spaces": b"  PING \r\n\tPING\n",
    "unknown": b"FOO\n",
})

# http_publish: [query length][query][body]
def hp(query, body): return bytes([len(query)]) + query + body
write("http_publish", {
    "pub": hp(b"topic=t", b"hello"),
    "pub-defer": hp(b"topic=t&defer=1000", b"hello"),
    "pub-bad-defer": hp(b"topic=t&defer=-1", b"hello"),
    "pub-empty": hp(b"topic=t", b""),
    "no-topic": hp(b"", b"x"),
    "bad-topic": hp(b"topic=a%20b", b"x"),
    "first-wins": hp(b"topic=t&topic=u", b"x"),
    "mpub-text": hp(b"topic=t", b"a\nbc\n\ndef\n"),
    "mpub-binary": hp(b"topic=t&binary=true", mpub([b"a", b"bc"])),
    "mpub-binary-1": hp(b"topic=t&binary=1", mpub([b"x" * 50])),
    "mpub-binary-junk": hp(b"topic=t&binary=maybe", be32(3) + sized(b"a")),
    "mpub-binary-false": hp(b"topic=t&binary=false", b"a\nb"),
    "mpub-too-big": hp(b"topic=t", b"y" * 250 + b"\n"),
    "encoded": hp(b"topic=%74&defer=%31", b"z"),
})

write("http_config", {
    "addresses": b"\x00" + json.dumps(["a:4160", "127.0.0.1:4161"]).encode(),
    "addresses-empty": b"\x00[]",
    "addresses-bad": b"\x00[\"nohost\"]",
    "addresses-v6": b"\x00[\"[::1]:4160\"]",
    "level": b"\x01debug",
    "level-warn": b"\x01WARN",
    "level-bad": b"\x01loud",
    "other": b"\x02100",
    "empty": b"\x01",
})

dat = {}
for name in ["nsqd-0.3.8.dat", "nsqd-1.3.0.dat"]:
    with open(os.path.join(ROOT, "tests", "fixtures", name), "rb") as f:
        dat[name] = f.read()
dat.update({
    "null": b'{"topics":null,"version":"1.3.0"}',
    "old-empty": b'{"topics":[],"version":"0.3.8"}',
    "no-version": b'{"topics":[{"name":"t"}]}',
    "dup": b'{"topics":[{"name":"t","channels":[{"name":"c"}]},{"name":"t","paused":true,"channels":[{"name":"d"}]}]}',
    "blank": b" \n\t",
    "bad": b'{"topics":[{"name":}]}',
    "wrong-type": b'{"topics":[{"name":1}]}',
})
write("nsqd_dat", dat)

write("config_file", {
    "empty": b"",
    "basic": b'data_path = "/tmp/x"\nnsqlookupd_tcp_addresses = ["a:4160", "b:4160"]\nmsg_timeout = "90s"\nmax_rdy_count = 10\nid = 7\n',
    "disk": b'max_bytes_per_file = 4096\nsync_every = 10\nsync_timeout = "250ms"\ndurable = true\nmem_queue_size = 0\n',
    "limits": b'max_msg_size = 1024\nmax_body_size = 4096\nmax_heartbeat_interval = "30s"\nmax_output_buffer_size = 65536\nmax_output_buffer_timeout = "1s"\nmax_deflate_level = 9\nsnappy = false\ndeflate = true\n',
    "e2e": b'e2e_processing_latency_percentiles = [0.99, 1, 0.5]\ne2e_processing_latency_window_time = "10m"\n',
    "tls": b'tls_cert = "c.pem"\ntls_key = "k.pem"\ntls_required = "tcp-https"\ntls_min_version = "tls1.2"\ntls_client_auth_policy = "require"\n',
    "tls-bad": b'tls_required = true\n',
    "statsd": b'statsd_address = "127.0.0.1:8125"\nstatsd_prefix = "nsq.%s"\nstatsd_interval = "60s"\nstatsd_mem_stats = true\n',
    "addresses": b'tcp_address = "0.0.0.0:4150"\nhttp_address = ":4151"\nbroadcast_address = "h"\nbroadcast_tcp_port = 4150\n',
    "lookupd": b'inactive_producer_timeout = "300s"\ntombstone_lifetime = "45s"\nlog_level = "debug"\nlog_prefix = "[x] "\nverbose = true\n',
    "bad-key": b'no_such_key = 1\n',
    "bad-type": b'max_msg_size = "big"\n',
    "bad-syntax": b'max_msg_size = \n',
    "node-id": b'node_id = 5000\n',
    "durations": b'msg_timeout = 60000000000\nmax_req_timeout = "1h30m"\n',
    "auth": b'auth_http_addresses = ["127.0.0.1:4181"]\nauth_http_request_method = "post"\n',
})

# segment_log: [mode][bytes]
HEADER = b"RNSQLOG\0" + be32(1)
HEADER += be32(crc32c(HEADER))
def rec(p): return be32(len(p)) + be32(crc32c(p)) + p
def msg(seq, body): return be64(seq) + be64(1700000000000000000) + struct.pack(">H", 1) + be32(0) + b"0123456789abcdef" + body
log = HEADER + rec(msg(1, b"one")) + rec(msg(2, b"two")) + rec(msg(3, b"three"))
write("segment_log", {
    "log": b"\x00" + log,
    "legacy": b"\x00" + rec(msg(1, b"one")) + rec(msg(2, b"two")),
    "torn": b"\x00" + log[:-3],
    "zeros-tail": b"\x00" + log + b"\0" * 40,
    "hole": b"\x00" + HEADER + rec(b"a") + b"\0" * 9 + rec(b"b"),
    "bad-crc-mid": b"\x00" + HEADER + rec(b"a")[:-1] + b"x" + rec(b"b"),
    "bad-crc-last": b"\x00" + HEADER + rec(b"a") + rec(b"b")[:-1] + b"x",
    "header-torn": b"\x00" + HEADER[:10],
    "header-damaged": b"\x00" + HEADER[:13] + b"\xff\xff\xff" + rec(b"a"),
    "newer": b"\x00RNSQLOG\0" + be32(7) + be32(0) + rec(b"a"),
    "empty": b"\x00",
    "prefix-headered": b"\x0e" + b"\x05hello\x02ab\x03xyz" + b"garbage",
    "prefix-legacy": b"\x0d" + b"\x05hello\x02ab" + b"\0\0\0\x05" + b"junk",
    "prefix-zeros": b"\x0b" + b"\x04abcd" + b"\0" * 20,
    "prefix-record-after": b"\x07" + b"\x01z" + b"\xff\xff" + rec(b"real"),
})

def cursor(read, wm, pending):
    out = b"RNSQCUR1"
    for c in (read, wm):
        out += be64(c[0]) + be64(c[1]) + be64(c[2])
    out += be32(len(pending))
    for seq, attempts, due in pending:
        out += be64(seq) + struct.pack(">H", attempts) + be64(due)
    return out + be32(crc32c(out))
ex = cursor((12, 2, 16), (10, 1, 300), [(10, 1, 0), (11, 4, 1700000000000)])
write("cursor_file", {
    "example": ex,
    "empty-pending": cursor((1, 0, 16), (1, 0, 16), []),
    "zero": cursor((0, 0, 0), (0, 0, 0), []),
    "torn": ex[:30],
    "zeroed": ex[:20] + b"\0" * (len(ex) - 20),
    "trailing": ex + b"\0",
    "foreign": b"NOTACURSOR" + b"\0" * 40,
    "huge-count": (lambda b: b + be32(crc32c(b)))(b"RNSQCUR1" + b"\0" * 48 + be32(0xFFFFFFFF)),
    "empty": b"",
})

def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
STREAM = b"\xff\x06\x00\x00sNaPpY"
def uchunk(data):
    body = struct.pack("<I", masked(data)) + data
    return b"\x01" + struct.pack("<I", len(body))[:3] + body
write("snappy", {
    "stream": b"\x00" + STREAM + uchunk(b"PUB t\n\0\0\0\x05hello"),
    "two-ids": b"\x00" + STREAM + uchunk(b"one ") + STREAM + uchunk(b"two"),
    "padding": b"\x00" + STREAM + b"\xfe\x03\0\0abc" + uchunk(b"x"),
    "skippable": b"\x00" + STREAM + b"\x80\x02\0\0ab" + uchunk(b"y"),
    "reserved": b"\x00" + STREAM + b"\x02\0\0\0",
    "no-id": b"\x00" + uchunk(b"x"),
    "torn": b"\x00" + (STREAM + uchunk(b"hello"))[:-2],
    "bad-crc": b"\x00" + STREAM + uchunk(b"hello")[:-1] + b"x",
    "compressed": b"\x00" + STREAM + b"\x00" + struct.pack("<I", 4 + 7)[:3] + struct.pack("<I", masked(b"aaaaaaaaaa")) + b"\x0a\x00\x61\x15\x01\x00\x00"[:7],
    "roundtrip": b"\x01" + b"MPUB t\n" * 20,
    "roundtrip-split": b"\x09" + bytes(range(256)),
    "pending": b"\x10" + STREAM + uchunk(b"buffered before the upgrade"),
})

def raw_deflate(data, level=6, sync=True):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data)
    return out + (c.flush(zlib.Z_SYNC_FLUSH) if sync else c.flush())
write("deflate", {
    "sync": b"\x00" + raw_deflate(b"PUB t\n\0\0\0\x05hello"),
    "final": b"\x00" + raw_deflate(b"hello deflate " * 20, 3, False),
    "stored": b"\x00" + raw_deflate(b"stored", 0),
    "two-flushes": b"\x00" + raw_deflate(b"first") + raw_deflate(b"second"),
    "garbage": b"\x00" + b"\xff" * 32,
    "torn": b"\x00" + raw_deflate(b"hello world hello world")[:-5],
    "bomb": b"\x00" + raw_deflate(b"\0" * 100000, 9),
    "pending": b"\x20" + raw_deflate(b"buffered first" * 3),
    "roundtrip": b"\x91" + b"MPUB t\n" * 20,
    "roundtrip-0": b"\x03" + bytes(range(200)),
    "roundtrip-9": b"\xf5" + b"abc" * 100,
})
print("seeds written")
