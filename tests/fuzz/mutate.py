"""Deterministic mutators for the fuzz tests: model files, tokenizer files and repl.cfg text.

A case is named by (kind, seed, index), written ``kind:seed:index`` (e.g. ``model:1:417``):
``make_case`` seeds one ``random.Random`` with that string (string seeds hash the same on
every run and machine, whatever PYTHONHASHSEED is), picks a base input and applies a few
mutations from it, so the same id gives the same bytes forever (as long as this file and
tests/reference's generators do not change). Nothing here touches the program under test.

Kinds:

* ``model``: a llama2.c ``.bin`` (random weights from tests/reference, three small shapes:
  shared and unshared classifier, GQA), then header field overwrites with boundary values,
  bit flips (biased to the 28-byte header), int32/float32 overwrites in the body (NaN, inf,
  denormals, ...), truncation, trailing bytes, chunk duplication/insertion/deletion, and
  "reshape": a different small valid header with the body resized to match it exactly (or
  off by a few bytes), so accepted files with many shapes reach the forward pass too.
* ``tokenizer``: llama2.c ``tokenizer.bin`` built by tests/reference (vocab 300, 512, and
  259 which has no " " piece), mutated structurally (max_token_length, an entry's length or
  score, a piece's bytes: empty, NUL inside, duplicate, byte-fallback look-alikes, invalid
  UTF-8, too long; entries removed, duplicated, swapped or appended) or raw (bit flips,
  int32 overwrites, truncation, chunks). The case also carries the vocab_size handed to
  tok_load (the model header's in the program), itself sometimes a boundary value.
* ``gguf``: small GGUF files (tests/fuzz/mutate_gguf.py: a model-like file with every value
  type and tensors of several ggml types, a v2 file with alignment 64, a vocab-only file, a
  one-tensor file) under structure-aware mutations: lengths, counts, types, dims, offsets
  and alignment set to boundary values, truncation at field boundaries, keys duplicated or
  inserted (nested arrays, bad element types, huge strings), offsets shifted or swapped,
  plus the generic byte mutations.
* ``cfg``: repl.cfg text from a small grammar (real and fake keys; good values, numbers,
  huge numbers, negatives, exponents, NaN/inf words, empty values, 10k-character lines,
  binary bytes, NULs, unicode, missing or many '=', comments, CR/LF/CRLF mixes), sometimes
  mutated further byte-wise.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from random import Random

KINDS = ("model", "tokenizer", "cfg", "gguf")

#: the largest mutated file (the harness's buffers are sized from this)
MAX_FILE = 1 << 20

INT32_INTERESTING = (
    0, 1, -1, 2, -2, 3, 4, 7, 8, 16, 127, 128, 255, 256, 259, 1023, 1024, 1025, 4095, 4096,
    4097, 32767, 32768, 65535, 65536, 65537, 262143, 262144, 262145, 2**20 - 1, 2**20,
    2**20 + 1, 2**24, 2**30, 2**31 - 2, 2**31 - 1, -2**31, -2**31 + 1, -2**20, -65536,
)
FLOAT_BITS_INTERESTING = (
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0x7FC00000,
    0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
    0xD01502F9, 0xD01502FA, 0x501502F9, 0x4F000000, 0xCF000000,
)
HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
# model.inc's limits, for values "just around" them (the harness reads the real ones)
_LIMITS = (65536, 262144, 4096, 65536, 65536, 1 << 20, 1 << 20)


@dataclass
class Case:
    kind: str
    seed: int
    index: int
    base: str
    data: bytes
    ops: list[str] = field(default_factory=list)
    vocab_size: int | None = None     # tokenizer: the vocab_size given to tok_load (int32)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.seed}:{self.index}"

    def describe(self) -> str:
        extra = f" vocab_size={self.vocab_size}" if self.vocab_size is not None else ""
        return f"{self.id} base={self.base}{extra} {len(self.data)} bytes: " + "; ".join(self.ops)


def parse_id(text: str) -> tuple[str, int, int]:
    """'model:1:417' -> ('model', 1, 417)."""
    kind, seed, index = text.strip().split(":")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return kind, int(seed), int(index)


def make_case(kind: str, seed: int, index: int) -> Case:
    rng = Random(f"{kind}:{seed}:{index}")
    if kind == "model":
        return _model_case(rng, seed, index)
    if kind == "tokenizer":
        return _tokenizer_case(rng, seed, index)
    if kind == "cfg":
        return _cfg_case(rng, seed, index)
    if kind == "gguf":
        from tests.fuzz.mutate_gguf import GGUF_BASES, gguf_base, mutate_gguf
        base = rng.choice(GGUF_BASES)
        data, ops = mutate_gguf(rng, gguf_base(base), MAX_FILE)
        return Case("gguf", seed, index, base, data, ops)
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")


def case_from_id(text: str) -> Case:
    return make_case(*parse_id(text))


# ----------------------------------------------------------------------------- generic bytes

def _int32(rng: Random, around: int | None = None) -> int:
    r = rng.random()
    if around is not None and r < 0.3:
        return _wrap32(around + rng.choice((-2, -1, 1, 2, around, -2 * around)))
    if r < 0.85:
        return rng.choice(INT32_INTERESTING)
    return rng.randrange(-2**31, 2**31)


def _wrap32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


def op_bitflip(rng: Random, d: bytearray, header: int = 0) -> str:
    if not d:
        return "bitflip (empty: nothing)"
    n = rng.choice((1, 1, 2, 3, 8))
    where = []
    for _ in range(n):
        if header and rng.random() < 0.5:
            pos = rng.randrange(min(header, len(d)))
        else:
            pos = rng.randrange(len(d))
        bit = rng.randrange(8)
        d[pos] ^= 1 << bit
        where.append(f"{pos}.{bit}")
    return "bitflip " + ",".join(where)


def op_int32(rng: Random, d: bytearray) -> str:
    if len(d) < 4:
        return op_insert(rng, d)
    pos = rng.randrange(len(d) - 3)
    if rng.random() < 0.7:
        pos &= ~3
    if rng.random() < 0.5:
        v = _int32(rng, struct.unpack_from("<i", d, pos)[0])
        struct.pack_into("<i", d, pos, v)
        return f"int32@{pos}={v}"
    bits = rng.choice(FLOAT_BITS_INTERESTING)
    struct.pack_into("<I", d, pos, bits)
    return f"f32@{pos}=0x{bits:08x}"


def op_truncate(rng: Random, d: bytearray, header: int = 0) -> str:
    n = len(d)
    r = rng.random()
    if r < 0.25 and header:
        cut = rng.randrange(0, header + 8)
    elif r < 0.6:
        cut = n - rng.choice((1, 2, 3, 4, 5, 7, 8, 12, 16, 64))
    else:
        cut = rng.randrange(0, n + 1)
    cut = max(0, min(n, cut))
    del d[cut:]
    return f"truncate@{cut}"


def op_append(rng: Random, d: bytearray) -> str:
    k = rng.choice((1, 3, 4, 8, 12, 64, 1000))
    fill = rng.choice((b"\0", b"\xff", None))
    extra = fill * k if fill else rng.randbytes(k)
    if len(d) + k <= MAX_FILE:
        d += extra
    return f"append {k}"


def op_chunk(rng: Random, d: bytearray) -> str:
    """Duplicate, insert random bytes at, or delete a chunk."""
    if not d:
        return op_insert(rng, d)
    a = rng.randrange(len(d))
    k = min(len(d) - a, rng.choice((1, 2, 4, 7, 8, 16, 100, 4096)))
    what = rng.choice(("dup", "del", "move"))
    chunk = bytes(d[a:a + k])
    if what == "del":
        del d[a:a + k]
        return f"delete {k}@{a}"
    at = rng.randrange(len(d) + 1)
    if what == "move":
        del d[a:a + k]
        at = min(at, len(d))
    if len(d) + len(chunk) <= MAX_FILE:
        d[at:at] = chunk
    return f"{what} {k} {a}->{at}"


def op_insert(rng: Random, d: bytearray) -> str:
    k = rng.choice((1, 2, 3, 4, 8, 33))
    at = rng.randrange(len(d) + 1)
    d[at:at] = rng.randbytes(k)
    return f"insert {k}@{at}"


# ----------------------------------------------------------------------------- models

MODEL_BASES = ("micro", "tiny_gqa", "nano")


@lru_cache(maxsize=None)
def model_base(name: str) -> bytes:
    from tests.reference import llama2 as ref
    shapes = {"micro": (ref.SHAPES["micro"], 1), "tiny_gqa": (ref.SHAPES["tiny_gqa"], 2),
              "nano": (ref.Config(8, 12, 1, 2, 1, 300, 16, True), 3)}
    cfg, seed = shapes[name]
    return ref.model_bytes(ref.random_model(cfg, seed))


def _header(d: bytearray) -> list[int] | None:
    return list(struct.unpack_from("<7i", d)) if len(d) >= 28 else None


def op_header_field(rng: Random, d: bytearray) -> str:
    h = _header(d)
    if h is None:
        return op_int32(rng, d)
    i = rng.randrange(7)
    r = rng.random()
    if r < 0.25:
        v = _LIMITS[i] + rng.choice((-1, 0, 1))
        if i == 5 and rng.random() < 0.5:
            v = -v
    else:
        v = _int32(rng, h[i])
    struct.pack_into("<i", d, 4 * i, v)
    return f"{HEADER_FIELDS[i]}={v}"


def op_header_relation(rng: Random, d: bytearray) -> str:
    """Fields that are each in range but break a rule between them: dim not a multiple of
    n_heads, an odd head size, n_kv_heads not dividing n_heads (or above it)."""
    h = _header(d)
    if h is None:
        return op_header_all(rng, d)
    heads = max(1, h[3]) if 0 < h[3] <= 64 else 4
    what = rng.choice(("heads", "odd_head", "kv", "kv_big", "kv_equal"))
    if what == "heads":
        h[3] = max(heads, 2)
        h[0] = h[3] * rng.randrange(1, 8) + rng.randrange(1, h[3])
    elif what == "odd_head":
        h[3] = heads
        h[0] = heads * rng.choice((1, 3, 5, 7, 9))
    elif what == "kv":
        h[3] = rng.choice((2, 3, 4, 6, 8))
        h[4] = next(k for k in range(2, h[3] + 2) if h[3] % k)
    elif what == "kv_big":
        h[4] = heads * rng.choice((2, 3)) if h[4] <= heads else h[4] + 1
    else:
        h[4] = h[3]
    h = [_wrap32(x) for x in h]
    struct.pack_into("<7i", d, 0, *h)
    return f"{what}: header=" + ",".join(map(str, h))


def op_header_all(rng: Random, d: bytearray) -> str:
    """Every header field a boundary value at once."""
    if len(d) < 28:
        d[:] = d + bytes(28 - len(d))
    vals = [rng.choice((0, 1, -1, 2, 2**31 - 1, -2**31, _LIMITS[i], _LIMITS[i] + 1, 2**30))
            for i in range(7)]
    struct.pack_into("<7i", d, 0, *vals)
    return "header=" + ",".join(map(str, vals))


def op_vocab_sign(rng: Random, d: bytearray) -> str:
    h = _header(d)
    if h is None:
        return op_bitflip(rng, d, 28)
    struct.pack_into("<i", d, 20, _wrap32(-h[5]))
    return f"vocab_size={_wrap32(-h[5])}"


def random_small_config(rng: Random):
    from tests.reference import llama2 as ref
    head_size = rng.choice((2, 2, 4, 6, 8))
    n_heads = rng.choice((1, 2, 3, 4))
    n_kv = rng.choice([k for k in range(1, n_heads + 1) if n_heads % k == 0])
    dim = head_size * n_heads
    return ref.Config(dim, rng.randrange(1, 65), rng.randrange(1, 4), n_heads, n_kv,
                      rng.choice((1, 2, 3, 259, 300, rng.randrange(1, 400))),
                      rng.choice((1, 2, 3, 8, 64, rng.randrange(1, 129))), rng.random() < 0.6)


def op_reshape(rng: Random, d: bytearray) -> str:
    """A different valid small header with the body resized to fit it: exactly (accepted),
    or, one time in four, off by a little (refused with the size message)."""
    cfg = random_small_config(rng)
    size = cfg.file_size()
    off = 0
    if rng.random() < 0.25:
        off = rng.choice((-1, 1, -4, 4, -28, 3, -4 * cfg.dim, 4 * cfg.dim))
    body = bytes(d[28:]) or b"\0\0\x80\x3f"
    if rng.random() < 0.2:
        body = rng.randbytes(size)                      # garbage floats: NaN, inf, denormals
    need = max(0, size + off - 28)
    body = (body * (need // len(body) + 1))[:need]
    d[:] = cfg.header_bytes() + body
    return f"reshape {','.join(map(str, cfg.header_ints()))}" + (f" size{off:+d}" if off else "")


_MODEL_OPS = (
    (op_header_field, 6), (op_header_relation, 2), (op_header_all, 1), (op_vocab_sign, 1), (op_reshape, 4),
    (lambda rng, d: op_bitflip(rng, d, 28), 4), (op_int32, 3),
    (lambda rng, d: op_truncate(rng, d, 28), 2), (op_append, 1), (op_chunk, 2), (op_insert, 1),
)


def _pick(rng: Random, table):
    total = sum(w for _, w in table)
    x = rng.uniform(0, total)
    for fn, w in table:
        x -= w
        if x <= 0:
            return fn
    return table[-1][0]


def mutate_model(rng: Random, data: bytes) -> tuple[bytes, list[str]]:
    d = bytearray(data)
    ops = [_pick(rng, _MODEL_OPS)(rng, d) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    return bytes(d[:MAX_FILE]), ops


def _model_case(rng: Random, seed: int, index: int) -> Case:
    base = rng.choice(MODEL_BASES)
    data, ops = mutate_model(rng, model_base(base))
    return Case("model", seed, index, base, data, ops)


# ----------------------------------------------------------------------------- tokenizers

TOKENIZER_BASES = {"tok300": 300, "tok512": 512, "tok259": 259}


@lru_cache(maxsize=None)
def tokenizer_base(name: str) -> bytes:
    from tests.reference import tokenizer as reftok
    return reftok.make_tokenizer(TOKENIZER_BASES[name]).to_bytes()


def parse_entries(d: bytes) -> tuple[int, list[list], bytes] | None:
    """(max_token_length, [[score bits, length field, piece]], trailing bytes) as far as the
    file parses; None when even the 4-byte field is missing."""
    if len(d) < 4:
        return None
    (mtl,) = struct.unpack_from("<i", d)
    off, entries = 4, []
    while off + 8 <= len(d):
        bits, length = struct.unpack_from("<Ii", d, off)
        if length < 0 or off + 8 + length > len(d):
            break
        entries.append([bits, length, bytes(d[off + 8: off + 8 + length])])
        off += 8 + length
    return mtl, entries, bytes(d[off:])


def serialize_entries(mtl: int, entries: list[list], tail: bytes) -> bytes:
    out = bytearray(struct.pack("<i", mtl))
    for bits, length, piece in entries:
        out += struct.pack("<Ii", bits, length) + piece
    return bytes(out + tail)


_PIECES = (b"", b"\0", b" ", b"  ", b"<0x41>", b"<0x0a>", b"<0xZZ>", b"<0x4", b"<0x00>", b"<unk>",
           b"\xff\xfe", b"\xe4\xbd", b"\x80\x80\x80\x80\x80", "é".encode(), "你好".encode(),
           "😀".encode(), b"a\0b", b"\n", b"the", b" the")


def op_tok_struct(rng: Random, d: bytearray, vocab: int) -> str:
    parsed = parse_entries(bytes(d))
    if parsed is None or not parsed[1]:
        return op_insert(rng, d) if rng.random() < 0.5 else op_int32(rng, d)
    mtl, entries, tail = parsed
    n = len(entries)
    near = lambda: min(n - 1, rng.choice((rng.randrange(n), rng.randrange(min(n, 300)), n - 1, 0, 1, 2)))  # noqa: E731
    what = rng.choice(("mtl", "len", "len", "score", "piece", "piece", "piece", "remove",
                       "dup", "swap", "drop_tail", "append", "nospace"))
    if what == "mtl":
        mtl = _int32(rng, mtl) if rng.random() < 0.7 else max(1, mtl + rng.choice((-1, 1)))
        desc = f"max_token_length={mtl}"
    elif what == "len":
        i = near()
        rest = sum(8 + len(e[2]) for e in entries[i + 1:]) + len(tail) + len(entries[i][2])
        v = rng.choice((0, -1, 1, mtl, mtl + 1, rest, rest + 1, rest - 1, 2**31 - 1, -2**31,
                        len(entries[i][2]) + 1, len(entries[i][2]) - 1))
        entries[i][1] = _wrap32(v)
        desc = f"entry {i} length field={entries[i][1]}"
    elif what == "score":
        i = near()
        entries[i][0] = rng.choice(FLOAT_BITS_INTERESTING)
        desc = f"entry {i} score=0x{entries[i][0]:08x}"
    elif what == "piece":
        i = near()
        r = rng.random()
        if r < 0.5:
            p = rng.choice(_PIECES)
        elif r < 0.7:
            p = entries[rng.randrange(n)][2]           # a duplicate piece
        elif r < 0.85:
            p = rng.randbytes(rng.randrange(1, max(2, min(mtl, 64) + 1)))
        else:
            p = rng.randbytes(max(0, min(mtl, 2000)) + rng.choice((0, 1)))  # at or past the max
        entries[i][1:] = [len(p), p]
        desc = f"entry {i} piece={p[:16]!r}{'...' if len(p) > 16 else ''}"
    elif what == "remove":
        i = near()
        del entries[i]
        desc = f"remove entry {i}"
    elif what == "dup":
        i = near()
        entries.insert(i, list(entries[i]))
        desc = f"duplicate entry {i}"
    elif what == "swap":
        i, j = near(), near()
        entries[i], entries[j] = entries[j], entries[i]
        desc = f"swap entries {i},{j}"
    elif what == "drop_tail":
        k = rng.choice((1, 2, n // 2, n))
        del entries[n - k:]
        desc = f"drop last {k} entries"
    elif what == "append":
        k = rng.choice((1, 5))
        for _ in range(k):
            p = rng.randbytes(rng.randrange(0, 6))
            entries.append([rng.getrandbits(32), len(p), p])
        desc = f"append {k} entries"
    else:
        for e in entries:
            if e[2] == b" ":
                e[2] = b"_"
        desc = "no ' ' piece"
    d[:] = serialize_entries(mtl, entries, tail)[:MAX_FILE]
    return desc


def op_tok_vocab(rng: Random, vocab: int) -> tuple[int, str]:
    v = rng.choice((0, 1, 2, 3, 4, 258, 259, 260, vocab - 1, vocab + 1, vocab + 2, 2 * vocab,
                    1 << 20, (1 << 20) + 1, -1, 2**31 - 1, -2**31, rng.randrange(1, 600)))
    return v, f"vocab_size={v}"


_TOK_RAW = (
    (lambda rng, d: op_bitflip(rng, d, 64), 3), (op_int32, 3),
    (lambda rng, d: op_truncate(rng, d, 4), 2), (op_append, 1), (op_chunk, 2), (op_insert, 1),
)


def mutate_tokenizer(rng: Random, data: bytes, vocab: int) -> tuple[bytes, int, list[str]]:
    d = bytearray(data)
    ops = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        r = rng.random()
        if r < 0.55:
            ops.append(op_tok_struct(rng, d, vocab))
        elif r < 0.65:
            vocab, desc = op_tok_vocab(rng, vocab)
            ops.append(desc)
        else:
            ops.append(_pick(rng, _TOK_RAW)(rng, d))
    return bytes(d[:MAX_FILE]), vocab, ops


def _tokenizer_case(rng: Random, seed: int, index: int) -> Case:
    base = rng.choice(tuple(TOKENIZER_BASES))
    data, vocab, ops = mutate_tokenizer(rng, tokenizer_base(base), TOKENIZER_BASES[base])
    return Case("tokenizer", seed, index, base, data, ops, vocab_size=vocab)


# ----------------------------------------------------------------------------- repl.cfg

CFG_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "no_repeat_ngram",
            "max_tokens", "seed", "stats", "stop_you", "stop_nl", "attn", "ctx_len",
            "chat_format", "model", "tokenizer", "autorun", "system_prompt")
FAKE_KEYS = ("colour", "temp", "Temperature", "TOP_P", "top-p", "seed2", "model_", "_", "x" * 200,
             "temperature\0", "tempera ture", "stats\x01", "ключ", "温度", "\xff\xfe", "ctx_len\t2")
_VALUES = (
    "0", "1", "-1", "0.5", "1.0", "2", "5", "5.0001", "10", "1048576", "1048577", "4294967295",
    "4294967296", "18446744073709551615", "18446744073709551616", "99999999999999999999999",
    "-0", "-0.0", "+1", "++1", "--1", "1e3", "1e-3", "1E+2", "1e", "e5", "1e39", "1e-45",
    "1e-46", "3.4028235e38", "1e999999999", "1e-999999999", "0." + "0" * 40 + "1",
    "1" + "0" * 40, "1.2.3", ".5", "5.", ".", "-", "+", "0x10", "1_000", "1,5", "NaN", "nan",
    "inf", "-inf", "Infinity", "on", "off", "ON", "Yes", "no", "true", "FALSE", "maybe",
    "auto", "sse2", "AVX2", "avx512", "raw", "you_ai", "YOU_AI", "", " ", "\t", "model.bin",
    "models\\x.bin", "a" * 127, "a" * 128, "a" * 129, "'quoted'", "\"q\"", "é", "😀",
    "\x00", "1\x002", "\x7f", "a=b", "= =", "0.9 # comment", "1 2",
)

_GOOD_VALUES = {
    "temperature": ("0", "0.8", "1.0", "5", "0.0001", "4.999", "+2", "5e-1", "0.25E1"),
    "top_p": ("0", "0.9", "1", "1.0", "0.95", ".5", "1e-3"),
    "top_k": ("0", "40", "1048576", "+7"), "min_p": ("0", "0.05", "1"),
    "repeat_penalty": ("1", "1.1", "0.1", "10", "10.0", "2.5e0"),
    "no_repeat_ngram": ("0", "3", "16"), "max_tokens": ("1", "256", "1048576", "0004"),
    "seed": ("0", "42", "18446744073709551615", "+1"),
    "stats": ("on", "off", "0", "1", "yes", "NO", "True"),
    "stop_you": ("on", "off"), "stop_nl": ("on", "FALSE"),
    "attn": ("auto", "sse2", "avx2", "AUTO", "Sse2"), "ctx_len": ("0", "32", "1048576"),
    "chat_format": ("raw", "you_ai", "RAW", "chatml", "llama3", "Gemma", "auto"),
    "system_prompt": ("Be brief.", "", "é 😀 text", "a" * 511),
    "model": ("model.bin", "models\\stories15M.bin", "a" * 127, "é.bin", "x\x01y"),
    "tokenizer": ("tokenizer.bin", "tok512.bin"), "autorun": ("autorun.txt", "x y z"),
}


def _cfg_line(rng: Random) -> str | bytes:
    r = rng.random()
    sp = lambda: rng.choice(("", "", " ", "  ", "\t", " \t "))  # noqa: E731
    if r < 0.35:
        key = rng.choice(CFG_KEYS)
    elif r < 0.5:
        key = rng.choice(FAKE_KEYS)
    elif r < 0.55:
        key = "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 12)))
    elif r < 0.62:
        return rng.choice(("", "   ", "# a comment", "#", "## key = value", "\t# x = 1",
                           "=", "==", "= 1", "key", "temperature", "no equals sign here"))
    elif r < 0.67:
        return rng.randbytes(rng.randrange(1, 40))                 # binary junk, NULs included
    elif r < 0.7:
        c = rng.choice(("x", "=", "#", "é", " ", "\0"))
        return c * (10000 // len(c.encode()))                      # a 10k-character line
    elif r < 0.73:
        return rng.choice(CFG_KEYS) + " = " + "9" * 10000
    elif r < 0.76:
        return "#" + "y" * 10000 + "\n" if rng.random() < 0.5 else "k" * 10000 + " = 1"
    else:
        key = rng.choice(CFG_KEYS)
    r = rng.random()
    if r < 0.3:
        value = rng.choice(_GOOD_VALUES.get(key, ("1",)))
    elif r < 0.75:
        value = rng.choice(_VALUES)
    elif r < 0.85:
        value = str(rng.choice((rng.randrange(-10**6, 10**6), rng.uniform(-10, 10),
                                rng.uniform(0, 1), 10 ** rng.randrange(0, 40))))
    else:
        value = "".join(rng.choice(("0", "1", ".", "e", "-", "+", "9", "E")) for _ in range(rng.randrange(1, 10)))
    eq = rng.choice(("=",) * 8 + ("==", "= =", "=" * 5, ""))
    tail = rng.choice(("", "", "", " # comment", "#", " #= x"))
    return f"{sp()}{key}{sp()}{eq}{sp()}{value}{sp()}{tail}"


def _cfg_case(rng: Random, seed: int, index: int) -> Case:
    lines = [_cfg_line(rng) for _ in range(rng.choice((1, 2, 5, 10, 20, 40)))]
    ending = rng.choice(("\n", "\n", "\r\n", "\r", "mix"))
    out = bytearray()
    if rng.random() < 0.1:
        out += b"\xef\xbb\xbf"                                      # a UTF-8 BOM
    for ln in lines:
        out += ln if isinstance(ln, bytes) else ln.encode("utf-8", "surrogatepass")
        out += (rng.choice(("\n", "\r\n", "\r", "\n\n", "\r\r\n")) if ending == "mix" else ending).encode()
    if rng.random() < 0.2:
        del out[-1:]                                                # no final newline
    ops = [f"{len(lines)} lines, ending {ending!r}"]
    if rng.random() < 0.25:
        for _ in range(rng.choice((1, 2))):
            ops.append(_pick(rng, _TOK_RAW)(rng, out))
    return Case("cfg", seed, index, "grammar", bytes(out[:MAX_FILE]), ops)
