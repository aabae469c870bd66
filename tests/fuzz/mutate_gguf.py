"""The `gguf` fuzz kind's inputs: small GGUF files and structure-aware mutations of them.

Bases are built here byte by byte (deterministic, no model files needed): a model-like file
(every value type, a 40-token vocabulary, nested arrays, tensors of F32, F16, Q8_0, Q4_0,
Q6_K, one 4-D), the same with general.alignment 64 as GGUF v2, a vocab-only file (no
tensors, no padding) and a one-key one-tensor file. `fields(data)` walks a file as far as
it parses and lists its fields (kind, offset, size), so mutations can aim at real lengths,
counts, types, dims and offsets even after earlier mutations moved them.

Mutations: a field set to a boundary value for its kind (lengths and counts near 0, the
bytes left, 2^63, 2^64-1; value and element types 0..13 and 0xFFFFFFFF; n_dims 0..5; ne 0,
2^32, 2^64-1; ggml types retired or unknown; offsets off by one, one alignment, wrapping);
truncation at a field boundary; general.alignment added or changed (value or type); a
key/value duplicated; a crafted key/value inserted (nested arrays up to 5 deep, empty arrays,
bad element types, huge strings); tensor offsets shifted or swapped; and the generic byte
mutations of mutate.py (bit flips biased to the metadata, int32 overwrites, chunks).
"""
from __future__ import annotations

import struct
from functools import lru_cache
from random import Random

GGUF_BASES = ("model", "aligned64_v2", "vocab", "tiny")
_U64 = (1 << 64) - 1
# value type -> bytes (fixed-size types)
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _s(b: bytes | str) -> bytes:
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, t: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", t) + payload


def _arr(et: int, items: list[bytes]) -> bytes:
    return struct.pack("<IQ", et, len(items)) + b"".join(items)


def _info(name: str, dims: list[int], gtype: int, offset: int) -> bytes:
    return _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", x) for x in dims) \
        + struct.pack("<IQ", gtype, offset)


def _file(kvs: list[bytes], tensors: list[tuple[str, list[int], int, int]], rng: Random, *,
          version: int = 3, align: int = 32, pad: bool = True) -> bytes:
    """tensors: (name, dims, ggml type, bytes); offsets laid out in order, aligned."""
    infos, off = [], 0
    for name, dims, gtype, nbytes in tensors:
        infos.append(_info(name, dims, gtype, off))
        off += (nbytes + align - 1) // align * align
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    body = head + b"".join(kvs) + b"".join(infos)
    if pad and tensors:
        body += bytes(-len(body) % align)
    data = bytearray()
    for _, _, _, nbytes in tensors:
        data += rng.randbytes(nbytes)
        data += bytes(-len(data) % align)
    return body + bytes(data)


def _vocab_kvs(rng: Random, n: int = 40) -> list[bytes]:
    toks = [_s(b"<unk>"), _s(b"<s>"), _s(b"</s>")] + [_s(rng.randbytes(rng.randrange(0, 6)))
                                                       for _ in range(n - 3)]
    return [_kv("tokenizer.ggml.model", 8, _s("llama")),
            _kv("tokenizer.ggml.tokens", 9, _arr(8, toks)),
            _kv("tokenizer.ggml.scores", 9, _arr(6, [struct.pack("<f", -i / 3) for i in range(n)])),
            _kv("tokenizer.ggml.token_type", 9, _arr(5, [struct.pack("<i", 1)] * n)),
            _kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1))]


@lru_cache(maxsize=None)
def gguf_base(name: str) -> bytes:
    rng = Random(f"gguf-base:{name}")
    if name == "tiny":
        return _file([_kv("general.architecture", 8, _s("llama"))],
                     [("w", [32, 2], 8, 68)], rng)
    if name == "vocab":
        return _file([_kv("general.architecture", 8, _s("llama"))] + _vocab_kvs(rng), [], rng, pad=False)
    kvs = [_kv("general.architecture", 8, _s("llama")),
           _kv("general.name", 8, _s("fuzz model")),
           _kv("llama.block_count", 4, struct.pack("<I", 1)),
           _kv("llama.embedding_length", 4, struct.pack("<I", 64)),
           _kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
           _kv("general.file_type", 4, struct.pack("<I", 7)),
           _kv("x.u8", 0, b"\xff"), _kv("x.i8", 1, b"\xfd"), _kv("x.u16", 2, b"\1\2"),
           _kv("x.i16", 3, b"\xff\xff"), _kv("x.i32", 5, struct.pack("<i", -9)),
           _kv("x.bool", 7, b"\1"), _kv("x.u64", 10, struct.pack("<Q", 2**64 - 1)),
           _kv("x.i64", 11, struct.pack("<q", -2)), _kv("x.f64", 12, struct.pack("<d", 0.5)),
           _kv("x.nested", 9, _arr(9, [_arr(8, [_s("a"), _s("bc")]), _arr(8, [])])),
           _kv("x.empty", 9, _arr(10, []))] + _vocab_kvs(rng)
    tensors = [("token_embd.weight", [64, 40], 8, 40 * 68),
               ("blk.0.attn_norm.weight", [64], 0, 256),
               ("blk.0.attn_q.weight", [64, 64], 2, 64 * 36),
               ("blk.0.ffn_down.weight", [96, 64], 1, 96 * 64 * 2),
               ("output.weight", [256, 4], 14, 4 * 210),
               ("x.4d", [2, 3, 1, 2], 0, 48)]
    if name == "aligned64_v2":
        kvs.insert(1, _kv("general.alignment", 4, struct.pack("<I", 64)))
        return _file(kvs, tensors[:4], rng, version=2, align=64)
    return _file(kvs, tensors, rng)


# ----------------------------------------------------------------------------- field map

def fields(d: bytes | bytearray) -> list[tuple[str, int, int]]:
    """(kind, offset, size) of every field, in file order, as far as the file parses."""
    out: list[tuple[str, int, int]] = []
    n = len(d)
    if n < 24 or d[:4] != b"GGUF":
        return out
    out += [("version", 4, 4), ("n_tensors", 8, 8), ("n_kv", 16, 8)]
    n_tensors, n_kv = struct.unpack_from("<QQ", d, 8)
    pos = 24

    def value(t: int, pos: int, depth: int) -> int | None:
        if t in _FIXED:
            if pos + _FIXED[t] > n:
                return None
            out.append(("scalar", pos, _FIXED[t]))
            return pos + _FIXED[t]
        if t == 8:
            if pos + 8 > n:
                return None
            (ln,) = struct.unpack_from("<Q", d, pos)
            out.append(("str_len", pos, 8))
            return pos + 8 + ln if pos + 8 + ln <= n else None
        if t == 9 and depth < 6:
            if pos + 12 > n:
                return None
            et, count = struct.unpack_from("<IQ", d, pos)
            out.append(("arr_type", pos, 4))
            out.append(("arr_count", pos + 4, 8))
            pos += 12
            if et in _FIXED:
                return pos + count * _FIXED[et] if pos + count * _FIXED[et] <= n else None
            for _ in range(min(count, 100_000)):
                pos = value(et, pos, depth + 1)
                if pos is None:
                    return None
            return pos
        return None

    for _ in range(min(n_kv, 10_000)):
        if pos + 8 > n:
            return out
        (ln,) = struct.unpack_from("<Q", d, pos)
        out.append(("key_len", pos, 8))
        if pos + 12 + ln > n:
            return out
        key = bytes(d[pos + 8: pos + 8 + ln])
        pos += 8 + ln
        out.append(("vtype", pos, 4))
        (t,) = struct.unpack_from("<I", d, pos)
        if key == b"general.alignment" and t == 4 and pos + 8 <= n:
            out.append(("alignment", pos + 4, 4))
        pos = value(t, pos + 4, 0)
        if pos is None:
            return out
    for _ in range(min(n_tensors, 10_000)):
        if pos + 8 > n:
            return out
        (ln,) = struct.unpack_from("<Q", d, pos)
        out.append(("name_len", pos, 8))
        pos += 8 + ln
        if pos + 4 > n:
            return out
        (nd,) = struct.unpack_from("<I", d, pos)
        out.append(("n_dims", pos, 4))
        pos += 4
        if nd > 8 or pos + 8 * nd + 12 > n:
            return out
        for k in range(nd):
            out.append(("ne", pos + 8 * k, 8))
        pos += 8 * nd
        out.append(("ggml_type", pos, 4))
        out.append(("offset", pos + 4, 8))
        pos += 12
    return out


# ----------------------------------------------------------------------------- mutations

def _u64_near(rng: Random, v: int, left: int) -> int:
    return rng.choice((0, 1, 2, v - 1, v + 1, v * 2, left, left + 1, left - 1, 2**31, 2**32,
                       2**32 - 1, 2**63, 2**63 - 1, _U64, _U64 - v + 1, 1 << rng.randrange(64))) & _U64


def op_field(rng: Random, d: bytearray) -> str:
    fs = fields(d)
    if not fs:
        return op_magic_version(rng, d)
    kind, at, size = rng.choice(fs)
    old = int.from_bytes(d[at:at + size], "little")
    left = max(0, len(d) - at - size)
    if kind in ("str_len", "key_len", "name_len", "arr_count", "n_kv", "n_tensors"):
        v = _u64_near(rng, old, left)
    elif kind in ("vtype", "arr_type"):
        v = rng.choice(list(range(14)) + [9, 9, 8, 0xFFFFFFFF, 0x80000000, 255])
    elif kind == "version":
        v = rng.choice((0, 1, 2, 3, 4, 0x00030000, 0x03000000, 0xFFFFFFFF))
    elif kind == "n_dims":
        v = rng.choice((0, 1, 2, 3, 4, 5, old + 1, old - 1, 0xFFFFFFFF))
    elif kind == "ne":
        v = rng.choice((0, 1, 2, 3, 31, 33, old * 2, old - 1, old + 1, 2**32 - 1, 2**32,
                        2**16, 2**63, _U64))
    elif kind == "ggml_type":
        v = rng.choice(list(range(42)) + [4, 5, 9, 31, 36, 99, 0xFFFFFFFF])
    elif kind == "offset":
        v = rng.choice((0, old + 1, old + 32, old - 32, old + 64, old * 2, 2**63, _U64 - 31,
                        left, old + rng.randrange(1, 4096)))
    elif kind == "alignment":
        v = rng.choice((0, 1, 2, 3, 16, 31, 48, 64, 128, 4096, 2**31, 2**32 - 1))
    else:                                   # a scalar value: random bytes
        v = int.from_bytes(rng.randbytes(size), "little")
    v &= (1 << (8 * size)) - 1
    d[at:at + size] = v.to_bytes(size, "little")
    return f"{kind}@{at}={v}"


def op_magic_version(rng: Random, d: bytearray) -> str:
    if len(d) < 8:
        d[:] = d + bytes(8 - len(d))
    if rng.random() < 0.3:
        i = rng.randrange(4)
        d[i] = rng.randrange(256)
        return f"magic[{i}]={d[i]}"
    v = rng.choice((1, 2, 3, 4, 0xFFFFFFFF))
    struct.pack_into("<I", d, 4, v)
    return f"version={v}"


def op_truncate_at_field(rng: Random, d: bytearray) -> str:
    fs = fields(d)
    if not fs:
        cut = rng.randrange(len(d) + 1)
    else:
        _, at, size = rng.choice(fs)
        cut = at + rng.choice((0, 1, size - 1, size))
    cut = max(0, min(len(d), cut))
    del d[cut:]
    return f"truncate@{cut}"


def _kv_spans(d: bytes | bytearray) -> list[tuple[int, int]]:
    """(start, end) of each key/value pair that parses (from the field map)."""
    fs = fields(d)
    starts = [at for kind, at, _ in fs if kind == "key_len"]
    ends = starts[1:] + [next((at for kind, at, _ in fs if kind == "name_len"), None)]
    return [(a, b) for a, b in zip(starts, ends) if b is not None]


def _bump_kv(d: bytearray, k: int = 1) -> None:
    if len(d) >= 24:
        (n,) = struct.unpack_from("<Q", d, 16)
        struct.pack_into("<Q", d, 16, (n + k) & _U64)


def op_alignment(rng: Random, d: bytearray) -> str:
    fs = fields(d)
    for kind, at, _ in fs:
        if kind == "alignment" and rng.random() < 0.7:
            v = rng.choice((0, 1, 3, 8, 16, 48, 64, 128, 1 << 20, 2**31, 2**32 - 1))
            struct.pack_into("<I", d, at, v)
            return f"alignment@{at}={v}"
    if len(d) < 24:
        return op_magic_version(rng, d)
    t, payload = rng.choice(((4, struct.pack("<I", rng.choice((1, 16, 64, 128, 3, 0)))),
                             (10, struct.pack("<Q", 64)), (5, struct.pack("<i", 64)),
                             (8, _s("64"))))
    kv = _kv("general.alignment", t, payload)
    d[24:24] = kv
    _bump_kv(d)
    return f"insert general.alignment type {t} {payload.hex()}"


def op_dup_kv(rng: Random, d: bytearray) -> str:
    spans = _kv_spans(d)
    if not spans:
        return op_insert_kv(rng, d)
    a, b = rng.choice(spans)
    at = rng.choice([s for s, _ in spans] + [spans[-1][1]])
    d[at:at] = d[a:b]
    _bump_kv(d)
    return f"duplicate kv {a}..{b} at {at}"


def _nested(rng: Random, depth: int) -> bytes:
    if depth == 0:
        return _arr(rng.choice((0, 8, 6)), []) if rng.random() < 0.3 else _arr(8, [_s("leaf")])
    return _arr(9, [_nested(rng, depth - 1) for _ in range(rng.choice((0, 1, 2)))])


def op_insert_kv(rng: Random, d: bytearray) -> str:
    if len(d) < 24:
        return op_magic_version(rng, d)
    what = rng.choice(("nested", "empty", "bad_elem", "huge_str", "bool", "big_array"))
    if what == "nested":
        depth = rng.randrange(0, 6)
        payload = _kv("x.deep", 9, _nested(rng, depth))
    elif what == "empty":
        payload = _kv("x.none", 9, struct.pack("<IQ", rng.choice((0, 8, 9, 12)), 0))
    elif what == "bad_elem":
        payload = _kv("x.bad", 9, struct.pack("<IQ", rng.choice((13, 99, 0xFFFFFFFF)), rng.choice((0, 1))))
    elif what == "huge_str":
        payload = _kv("x.huge", 8, struct.pack("<Q", rng.choice((2**63, _U64, 2**32))) + b"abc")
    elif what == "bool":
        payload = _kv("x.b", 7, bytes([rng.choice((0, 1, 2, 255))]))
    else:
        payload = _kv("x.big", 9, struct.pack("<IQ", rng.choice((0, 6, 10)), rng.choice((2**61, 2**62 + 1, _U64))))
    spans = _kv_spans(d)
    at = rng.choice([s for s, _ in spans] + [spans[-1][1]]) if spans else 24
    d[at:at] = payload
    _bump_kv(d)
    return f"insert kv {what} at {at}"


def op_offsets(rng: Random, d: bytearray) -> str:
    offs = [at for kind, at, _ in fields(d) if kind == "offset"]
    if not offs:
        return op_field(rng, d)
    if len(offs) >= 2 and rng.random() < 0.5:
        a, b = rng.sample(offs, 2)
        d[a:a + 8], d[b:b + 8] = d[b:b + 8], d[a:a + 8]
        return f"swap offsets @{a} @{b}"
    k = rng.choice((32, 64, -32, 4096))
    for at in offs:
        (v,) = struct.unpack_from("<Q", d, at)
        struct.pack_into("<Q", d, at, (v + k) & _U64)
    return f"shift offsets by {k}"


def op_shape(rng: Random, d: bytearray) -> str:
    """A tensor's rows (ne1*ne2*ne3) set around 2^32: each dim valid, their product not."""
    fs = fields(d)
    shapes, cur = [], []
    for kind, at, _ in fs:
        if kind == "ne":
            cur.append(at)
        elif cur:
            shapes.append(cur)
            cur = []
    shapes = [s for s in shapes if len(s) >= 3] or [s for s in shapes if len(s) == 2]
    if not shapes:
        return op_field(rng, d)
    dims = rng.choice(shapes)
    vals = rng.choice(((65536, 65536), (65535, 65537), (2**32 - 1, 1), (2**32 - 1, 2),
                       (3, 1431655765), (3, 1431655766)))
    for at, v in zip(dims[1:], vals):
        struct.pack_into("<Q", d, at, v)
    return f"rows {'x'.join(map(str, vals))} @{dims[0]}"


def _generic(rng: Random, d: bytearray) -> str:
    from tests.fuzz import mutate as m
    meta = next((at for kind, at, _ in reversed(fields(d)) if kind == "offset"), min(len(d), 2048))
    op = rng.choice(("bitflip", "bitflip", "int32", "truncate", "append", "chunk"))
    if op == "bitflip":
        return m.op_bitflip(rng, d, meta + 12)
    if op == "int32":
        return m.op_int32(rng, d)
    if op == "truncate":
        return m.op_truncate(rng, d, meta)
    if op == "append":
        return m.op_append(rng, d)
    return m.op_chunk(rng, d)


_GGUF_OPS = ((op_field, 10), (op_truncate_at_field, 3), (op_alignment, 2), (op_dup_kv, 1),
             (op_insert_kv, 2), (op_offsets, 2), (op_magic_version, 1), (op_shape, 1),
             (_generic, 4))


def mutate_gguf(rng: Random, data: bytes, max_file: int) -> tuple[bytes, list[str]]:
    from tests.fuzz.mutate import _pick
    d = bytearray(data)
    n = rng.choice((0, 1, 1, 1, 2, 2, 3)) if rng.random() < 0.97 else 0
    ops = [_pick(rng, _GGUF_OPS)(rng, d) for _ in range(n)] or ["unchanged"]
    return bytes(d[:max_file]), ops
