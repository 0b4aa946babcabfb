#!/usr/bin/env python3
"""An independent implementation of the mvc format, written from docs/FORMAT.md (Python stdlib only).

It exists to show that the document is enough to implement the format, and to produce the expected
values in format-vectors.json without using the Swift code:

    python3 Fixtures/vectors/reference_chunker.py            # check format-vectors.json, print OK
    python3 Fixtures/vectors/reference_chunker.py --print    # print the computed chunker vectors
    python3 Fixtures/vectors/reference_chunker.py --store DIR/.mvc   # read and verify a real store

What it covers: the splitmix64 gear table, the FastCDC gear chunker, the xorshift64* test input, tree
and commit encoding (with the number format of metrics), stage move and annotation encoding, routing
buckets, the chunk list record, and reading a store (config, refs, packs and their indexes, loose
objects), verifying every id.
"""
import decimal
import hashlib
import json
import math
import os
import struct
import sys

MASK64 = (1 << 64) - 1
HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------------------------
# Chunking (FORMAT.md, "Chunking")


def gear_table():
    """256 successive outputs of splitmix64 seeded with 0x6d76632d67656172 ("mvc-gear")."""
    state = 0x6D76632D67656172
    table = []
    for _ in range(256):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        table.append(z ^ (z >> 31))
    return table


GEAR = gear_table()


def top_bits(n):
    return 0 if n <= 0 else (MASK64 << (64 - n)) & MASK64


def cut(data, start, n, mn, avg, mx):
    """Length of the chunk starting at data[start], with n bytes left until the end of input."""
    if n <= mn:
        return n
    bits = avg.bit_length() - 1  # log2(avg); avg is a power of two
    mask_s, mask_l = top_bits(bits + 1), top_bits(bits - 1)
    end = min(n, mx)
    barrier = min(end, avg)
    h = 0
    i = mn
    while i < end:
        h = ((h << 1) + GEAR[data[start + i]]) & MASK64
        if h & (mask_s if i < barrier else mask_l) == 0:
            return i + 1
        i += 1
    return end


def chunk_lengths(data, mn, avg, mx):
    out, pos = [], 0
    while pos < len(data):
        length = cut(data, pos, len(data) - pos, mn, avg, mx)
        out.append(length)
        pos += length
    return out


# ---------------------------------------------------------------------------------------------
# Deterministic inputs used by the vectors


def xorshift64star(count, seed):
    """The test input of format-vectors.json ("xorshift64*"): one byte per step, the top byte."""
    x = (seed | 1) & MASK64
    out = bytearray(count)
    for k in range(count):
        x ^= x >> 12
        x = (x ^ (x << 25)) & MASK64
        x ^= x >> 27
        out[k] = ((x * 0x2545F4914F6CDD1D) & MASK64) >> 56
    return bytes(out)


def sha256_counter(count):
    """SHA-256 of the 8-byte big-endian counter 0, 1, 2, ..., concatenated, truncated to count."""
    out = bytearray()
    i = 0
    while len(out) < count:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:count])


def make_input(spec):
    if spec["generator"] == "xorshift64*":
        return xorshift64star(spec["length"], spec["seed"])
    if spec["generator"] == "sha256-counter":
        return sha256_counter(spec["length"])
    raise ValueError("unknown generator " + spec["generator"])


# ---------------------------------------------------------------------------------------------
# Objects (FORMAT.md, "Objects")


def sha256hex(b):
    return hashlib.sha256(b).hexdigest()


def frame(kind, body):
    return kind.encode() + b" " + str(len(body)).encode() + b"\0" + body


def tree_bytes(entries):
    lines = []
    for e in sorted(entries, key=lambda e: e["name"].encode()):
        lines.append(f'{e["kind"]} {e["size"]} {e["id"]} '.encode() + e["name"].encode() + b"\n")
    return frame("tree", b"".join(lines))


def format_number(v):
    """Metric values (FORMAT.md, "Numbers"): an integral value below 1e15 in magnitude as an
    integer; otherwise the shortest decimal digits that read back as the same double (the digits of
    Python's repr), in plain notation when 1e-4 <= |v| <= 2**53 and in exponential notation else."""
    if v == math.floor(v) and abs(v) < 1e15:
        return str(int(v))
    sign, raw, exp = decimal.Decimal(repr(v)).as_tuple()
    raw = "".join(map(str, raw)).lstrip("0")
    exp10 = len(raw) - 1 + exp  # v = d.ddd x 10**exp10
    digits = raw.rstrip("0")
    minus = "-" if sign else ""
    if 1e-4 <= abs(v) <= 2.0 ** 53:
        if exp10 >= 0:
            whole, frac = digits[: exp10 + 1].ljust(exp10 + 1, "0"), digits[exp10 + 1:]
        else:
            whole, frac = "0", "0" * (-exp10 - 1) + digits
        return f"{minus}{whole}.{frac or '0'}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{minus}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"


WHITESPACE_END = " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def normalize_message(m):
    m = m.rstrip(WHITESPACE_END)
    return m + "\n" if m else ""


def commit_bytes(c):
    s = f'tree {c["tree"]}\n'
    for p in c["parents"]:
        s += f"parent {p}\n"
    s += f'artifact {c["artifact"]}\nkind {c["kind"]}\nversion {c["version"]}\n'
    for p in sorted(c["paths"], key=lambda p: p.encode()):
        s += f"path {p}\n"
    inputs = sorted({(i["role"], i["commit"]) for i in c["inputs"]})
    for role, commit in inputs:
        s += f"input {commit} {role}\n"
    if c.get("code"):
        s += f'code {c["code"]["commit"]} {"dirty" if c["code"]["dirty"] else "clean"}\n'
    for k in sorted(c["params"], key=str.encode):
        s += f'param {k} {c["params"][k]}\n'
    for k in sorted(c["metrics"], key=str.encode):
        s += f'metric {k} {format_number(float(c["metrics"][k]))}\n'
    for k in sorted(c["environment"], key=str.encode):
        s += f'env {k} {c["environment"][k]}\n'
    a = c["author"]
    tz = a["tzOffsetMinutes"]
    tzs = ("-" if tz < 0 else "+") + f"{abs(tz) // 60:02d}{abs(tz) % 60:02d}"
    s += f'author {a["name"]} <{a["email"]}> {a["time"]} {tzs}\n\n'
    s += normalize_message(c["message"])
    return frame("commit", s.encode())


def signature(a):
    tz = a["tzOffsetMinutes"]
    tzs = ("-" if tz < 0 else "+") + f"{abs(tz) // 60:02d}{abs(tz) % 60:02d}"
    return f'{a["name"]} <{a["email"]}> {a["time"]} {tzs}'


def move_bytes(m):
    """A stage move (FORMAT.md 3.7): optional lines are omitted when the field is absent."""
    s = f'artifact {m["artifact"]}\nstage {m["stage"]}\nsequence {m["sequence"]}\n'
    if m.get("previous") is not None:
        s += f'previous {m["previous"]}\n'
    if m.get("commit") is not None:
        s += f'commit {m["commit"]}\n'
    if m.get("weight") is not None:
        s += f'weight {m["weight"]}\n'
    s += f'action {m["action"]}\nactor {signature(m["actor"])}\n'
    if m.get("command") is not None:
        s += f'command {m["command"]}\n'
    s += "\n" + normalize_message(m["reason"])
    return frame("move", s.encode())


def annotation_bytes(a):
    """An annotation (FORMAT.md 3.8)."""
    s = f'target {a["target"]}\nartifact {a["artifact"]}\n'
    if a.get("previous") is not None:
        s += f'previous {a["previous"]}\n'
    for k in sorted(a["metrics"], key=str.encode):
        s += f'metric {k} {format_number(float(a["metrics"][k]))}\n'
    if a["retired"]:
        s += "retired\n"
    s += f'actor {signature(a["actor"])}\n\n' + normalize_message(a["message"])
    return frame("annotation", s.encode())


def routing_bucket(artifact, key):
    """FORMAT.md 11.2: first 8 bytes of SHA-256("mvc-route" NUL artifact NUL key), big-endian, mod 10000."""
    d = hashlib.sha256(b"mvc-route\0" + artifact.encode() + b"\0" + key.encode()).digest()
    return int.from_bytes(d[:8], "big") % 10000


def chunk_list_bytes(chunks):
    """chunks: [(id bytes, size)]"""
    out = b"MVCCHNK1" + struct.pack(">QQ", sum(s for _, s in chunks), len(chunks))
    for cid, size in chunks:
        out += cid + struct.pack(">I", size)
    return out + hashlib.sha256(out).digest()


# ---------------------------------------------------------------------------------------------
# Reading a store (FORMAT.md, "Storage")


class Store:
    def __init__(self, path):
        self.path = path
        self.records = {}  # id hex -> (storage kind 1|2, bytes)
        self.read_config()
        self.read_packs()
        self.read_loose()

    def read_config(self):
        values, section = {}, ""
        with open(os.path.join(self.path, "config"), encoding="utf-8") as f:
            for line in f.read().split("\n"):
                line = line.strip(" \t")
                if not line or line[0] in "#;":
                    continue
                if line.startswith("["):
                    assert line.endswith("]") and len(line) > 2, line
                    section = line[1:-1].strip(" \t")
                    continue
                k, v = line.split("=", 1)
                values[section + "." + k.strip(" \t")] = v.strip(" \t")
        if int(values["core.formatVersion"]) > 1:
            raise SystemExit("error: unknown format version " + values["core.formatVersion"])
        assert values.get("chunking.algorithm", "fastcdc-gear-v1") == "fastcdc-gear-v1"
        self.chunking = tuple(int(values["chunking." + k]) for k in ("min", "avg", "max"))

    def read_packs(self):
        pack_dir = os.path.join(self.path, "objects", "pack")
        for name in sorted(os.listdir(pack_dir)):
            if not (name.startswith("pack-") and name.endswith(".idx")):
                continue
            stem = name[5:-4]
            idx = open(os.path.join(pack_dir, name), "rb").read()
            pack = open(os.path.join(pack_dir, "pack-" + stem + ".pack"), "rb").read()
            assert idx[:8] == b"MVCIDX01" and pack[:8] == b"MVCPACK1"
            (count,) = struct.unpack_from(">Q", idx, 8)
            assert len(idx) == 16 + 1024 + 49 * count + 32
            assert hashlib.sha256(idx[:-32]).digest() == idx[-32:] and idx[-32:].hex() == stem
            fan = struct.unpack_from(">256I", idx, 16)
            prev = None
            for i in range(count):
                p = 16 + 1024 + 49 * i
                oid, kind, off, length = idx[p:p + 32], idx[p + 32], *struct.unpack_from(">QQ", idx, p + 33)
                assert prev is None or prev < oid, "index not sorted"
                assert fan[oid[0]] > i and (oid[0] == 0 or fan[oid[0] - 1] <= i), "bad fan-out"
                # the entry header precedes the bytes in the pack: kind, id, length
                assert pack[off - 41] == kind and pack[off - 40:off - 8] == oid
                assert struct.unpack_from(">Q", pack, off - 8)[0] == length
                self.records.setdefault(oid.hex(), (kind, pack[off:off + length]))
                prev = oid
            assert fan[255] == count

    def read_loose(self):
        objects = os.path.join(self.path, "objects")
        for shard in sorted(os.listdir(objects)):
            if len(shard) != 2 or any(c not in "0123456789abcdef" for c in shard):
                continue
            for name in sorted(os.listdir(os.path.join(objects, shard))):
                chunks = name.endswith(".chunks")
                oid = shard + (name[:-7] if chunks else name)
                if len(oid) != 64:
                    continue
                data = open(os.path.join(objects, shard, name), "rb").read()
                self.records.setdefault(oid, (2 if chunks else 1, data))

    def content(self, oid):
        kind, data = self.records[oid]
        if kind == 1:
            assert sha256hex(data) == oid, "raw object " + oid + " does not match its id"
            return data
        assert data[:8] == b"MVCCHNK1"
        total, count = struct.unpack_from(">QQ", data, 8)
        assert len(data) == 24 + 36 * count + 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
        out = b""
        for i in range(count):
            p = 24 + 36 * i
            cid = data[p:p + 32].hex()
            (size,) = struct.unpack_from(">I", data, p + 32)
            ck, cb = self.records[cid]
            assert ck == 1 and len(cb) == size and sha256hex(cb) == cid
            out += cb
        assert len(out) == total and sha256hex(out) == oid, "chunk list of " + oid + " does not add up"
        return out

    def chunk_sizes(self, oid):
        kind, data = self.records[oid]
        if kind == 1:
            return [len(data)]
        (count,) = struct.unpack_from(">Q", data, 16)
        return [struct.unpack_from(">I", data, 24 + 36 * i + 32)[0] for i in range(count)]

    def ref(self, name):
        text = open(os.path.join(self.path, name), encoding="ascii").read()
        assert len(text) == 65 and text.endswith("\n")
        return text[:64]


def pack_bytes(objects):
    """A pack and its index (trailer included) holding objects [(storage kind, bytes)] in this order."""
    pack, entries = b"MVCPACK1", []
    for kind, data in objects:
        oid = hashlib.sha256(data).digest()
        pack += bytes([kind]) + oid + struct.pack(">Q", len(data))
        entries.append((oid, kind, len(pack), len(data)))
        pack += data
    entries.sort()
    idx = b"MVCIDX01" + struct.pack(">Q", len(entries))
    for i in range(256):
        idx += struct.pack(">I", sum(1 for e in entries if e[0][0] <= i))
    for oid, kind, offset, length in entries:
        idx += oid + bytes([kind]) + struct.pack(">QQ", offset, length)
    return pack, idx + hashlib.sha256(idx).digest()


def verify_store(path):
    store = Store(path)
    kinds = {"tree": 0, "commit": 0, "other": 0, "chunked": 0}
    for oid, (kind, data) in sorted(store.records.items()):
        content = store.content(oid)
        if kind == 2:
            kinds["chunked"] += 1
            mn, avg, mx = store.chunking
            assert chunk_lengths(content, mn, avg, mx) == store.chunk_sizes(oid), "chunking of " + oid + " differs"
        head = content[:32]
        if head.startswith(b"tree ") and b"\0" in head:
            kinds["tree"] += 1
        elif head.startswith(b"commit ") and b"\0" in head:
            kinds["commit"] += 1
        else:
            kinds["other"] += 1
    refs_dir = os.path.join(path, "refs")
    nrefs = 0
    for dirpath, _, files in os.walk(refs_dir):
        for f in files:
            if f.endswith(".lock"):
                continue
            ref = os.path.relpath(os.path.join(dirpath, f), path)
            target = store.ref(ref)
            # refs/stages/NAME/STAGE names a move, refs/annotations/NAME/HEX an annotation, others a commit.
            kind = {"stages": b"move ", "annotations": b"annotation "}.get(ref.split(os.sep)[1], b"commit ")
            assert store.content(target).startswith(kind), ref
            nrefs += 1
    print(f"store {path}: {len(store.records)} records {kinds}, {nrefs} refs, all ids verified")


# ---------------------------------------------------------------------------------------------


def check_vectors(path):
    v = json.load(open(path, encoding="utf-8"))
    assert [int(g, 16) for g in v["gear"]["first"]] == GEAR[: len(v["gear"]["first"])]
    for t in v["trees"]:
        b = tree_bytes(t["entries"])
        assert b.decode() == t["bytes"], t["bytes"]
        assert sha256hex(b) == t["id"]
    for c in v["commits"]:
        b = commit_bytes(c["fields"])
        assert b.decode() == c["bytes"], (b, c["bytes"])
        assert sha256hex(b) == c["id"]
    for b in v["blobs"]:
        assert sha256hex(b["content"].encode()) == b["id"]
    for p in v["packs"]:
        pack, idx = pack_bytes([({"raw": 1, "chunks": 2}[o["storage"]], o["content"].encode()) for o in p["objects"]])
        assert len(pack) == p["packLength"] and len(idx) == p["indexLength"]
        assert idx[-32:].hex() == p["packName"]
    for m in v["moves"]:
        b = move_bytes(m["fields"])
        assert b.decode() == m["bytes"], (b, m["bytes"])
        assert sha256hex(b) == m["id"], m["name"]
    for a in v["annotations"]:
        b = annotation_bytes(a["fields"])
        assert b.decode() == a["bytes"], (b, a["bytes"])
        assert sha256hex(b) == a["id"], a["name"]
    for r in v["routing"]["keys"]:
        assert routing_bucket(v["routing"]["artifact"], r["key"]) == r["bucket"], r
    for n in v["numbers"]:
        assert format_number(float(n["value"])) == n["text"], n
    for c in v["chunker"]:
        data = make_input(c["input"])
        p = c["parameters"]
        lengths = chunk_lengths(data, p["min"], p["avg"], p["max"])
        assert lengths == c["lengths"], c["name"]
        if "chunkList" in c:
            chunks, pos = [], 0
            for n in lengths:
                chunks.append((hashlib.sha256(data[pos:pos + n]).digest(), n))
                pos += n
            record = chunk_list_bytes(chunks)
            assert record[-32:].hex() == c["chunkList"]["checksum"]
            assert len(record) == c["chunkList"]["length"]
            assert sha256hex(data) == c["chunkList"]["blobId"]
            assert chunks[0][0].hex() == c["chunkList"]["firstChunkId"]
    print("OK: every vector in", os.path.relpath(path), "recomputed")


def print_chunker():
    print("gear[0..3]:", [f"0x{g:016x}" for g in GEAR[:3]])
    small = chunk_lengths(xorshift64star(300_000, 7), 1024, 4096, 16384)
    print("xorshift64* seed 7, 300000 bytes, 1024/4096/16384:", len(small), "chunks")
    print(json.dumps(small))
    data = sha256_counter(3 << 20)
    std = chunk_lengths(data, 64 << 10, 256 << 10, 1 << 20)
    print("sha256-counter 3 MiB, standard:", json.dumps(std), "blob", sha256hex(data))
    chunks, pos = [], 0
    for n in std:
        chunks.append((hashlib.sha256(data[pos:pos + n]).digest(), n))
        pos += n
    rec = chunk_list_bytes(chunks)
    print("chunk list:", len(rec), "bytes, checksum", rec[-32:].hex(), "first chunk", chunks[0][0].hex())


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--print"]:
        print_chunker()
    elif args[:1] == ["--store"]:
        verify_store(args[1])
    else:
        check_vectors(args[0] if args else os.path.join(HERE, "format-vectors.json"))
