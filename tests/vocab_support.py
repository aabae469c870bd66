"""Harness for the GGUF tokenizer modules (app_asm/vocab.s, vocab_encode.s, bpe.s, pretok.s,
unicode.s, spm.s with tokenizer.s): GGUF arrays extracted by gguf-py, laid out exactly as the
asm GGUF reader hands them over, driven under unicorn (guard pages, ABI checks) or natively;
and the oracles: the `tokenizers` package built from the same vocab + merges with each
vocabulary's pre-tokenizer regexes and the byte-level decoder.

Used by tests/test_app_bpe.py, tests/test_app_vocab_spm.py, tests/fuzz (kind `vocab`) and
scripts/bench_tokenizer.py.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from peasm import tokenizer_layouts as TL
from peasm.linker import link

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app_asm"
SOURCES = ["vocab.s", "vocab_find.s", "vocab_encode.s", "bpe.s", "pretok.s", "unicode.s", "spm.s", "tokenizer.s",
           "tok_index.s", "tok_encode.s"]
C = {**TL.CONSTANTS, **TL.ERROR_CODES}
SRC = TL.VOCAB_SOURCE
VOCAB = TL.VOCAB
STRING, INT32, FLOAT32 = 8, 5, 6
NO_ID = 0xFFFF_FFFF

# The pre-tokenizer regexes (llama.cpp's llama-vocab lists, the vocabularies' tokenizer.json)
GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")
PRE_REGEXES = {
    "PRE_GPT2": [GPT2_RE],
    "PRE_LLAMA3": [LLAMA3_RE],
    "PRE_QWEN2": [QWEN2_RE],
    "PRE_SMOLLM": [r"\p{N}", GPT2_RE],
    "PRE_DEFAULT": [r"[\p{P}\$\+<=>\^~\|]+", GPT2_RE, r"\p{N}+", r"[0-9][0-9][0-9]"],
}


@lru_cache(maxsize=None)
def image(backend: str = "keystone"):
    return link([APP / s for s in SOURCES], "vocab_build", backend=backend)


# ------------------------------------------------------------------------------ GGUF arrays

@dataclass
class Meta:
    """The tokenizer.ggml.* metadata of a GGUF file, as the asm reader hands it over."""
    model: bytes | None = None
    pre: bytes | None = None
    tokens: list[bytes] | None = None
    scores: list[float] | None = None
    token_type: list[int] | None = None
    merges: list[bytes] | None = None
    bos: int = NO_ID
    eos: int = NO_ID
    unk: int = NO_ID
    add_bos: int = NO_ID
    add_space_prefix: int = NO_ID
    # raw overrides (for malformed metadata): element types and counts
    types: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)

    def pre_kind(self) -> str:
        return TL.PRE_NAMES.get((self.pre or b"default").decode("latin-1"), "?")


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}


@lru_cache(maxsize=None)
def read_meta(path: str) -> Meta:
    """The tokenizer.ggml.* keys of a GGUF file (v2/v3), read directly: the arrays are the
    file's own bytes from the first element on, as the asm reader hands them over.
    gguf-py's GGUFReader (the format's reference reader) takes a minute on a 128K-token
    vocabulary, so tests use this and test_meta_matches_gguf_py checks it against gguf-py."""
    data = Path(path).read_bytes()
    magic, version, _, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF" and version in (2, 3), path
    pos = 24

    def string(p):
        (n,) = struct.unpack_from("<Q", data, p)
        return data[p + 8:p + 8 + n], p + 8 + n

    def value(t, p):
        """-> (python value or (first, count, elem type, raw bytes) for arrays, next pos)"""
        if t == 8:
            return string(p)
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, p)
            p += 12
            first = p
            items = []
            for _ in range(n):
                v, p = value(et, p)
                items.append(v)
            return (items, et, data[first:p]), p
        fmt = _SCALAR[t]
        return struct.unpack_from(fmt, data, p)[0], p + struct.calcsize(fmt)

    kv = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if key.startswith(b"tokenizer.ggml.") or t != 9:
            kv[key.decode()], pos = value(t, pos)
        else:                                     # skip other arrays quickly
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(n):
                _, pos = value(et, pos)
    g = lambda k, d=None: kv.get("tokenizer.ggml." + k, d)
    arr = lambda k: g(k)[0] if g(k) is not None else None
    return Meta(model=g("model"), pre=g("pre"), tokens=arr("tokens"), scores=arr("scores"),
                token_type=arr("token_type"), merges=arr("merges"),
                bos=int(g("bos_token_id", NO_ID)), eos=int(g("eos_token_id", NO_ID)),
                unk=int(g("unknown_token_id", NO_ID)), add_bos=int(g("add_bos_token", NO_ID)),
                add_space_prefix=int(g("add_space_prefix", NO_ID)))


@lru_cache(maxsize=None)
def read_meta_gguf_py(path: str) -> Meta:
    """The same through gguf-py's GGUFReader (each field's parts)."""
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields

    def strings(key):
        if key not in f:
            return None
        fld = f[key]
        return [bytes(fld.parts[i]) for i in fld.data]

    def scalars(key):
        if key not in f:
            return None
        fld = f[key]
        return [fld.parts[i][0].item() for i in fld.data]

    def one(key, default=NO_ID):
        if key not in f:
            return default
        fld = f[key]
        return int(fld.parts[fld.data[0]][0])

    def text(key):
        if key not in f:
            return None
        fld = f[key]
        return bytes(fld.parts[fld.data[0]])

    return Meta(model=text("tokenizer.ggml.model"), pre=text("tokenizer.ggml.pre"),
                tokens=strings("tokenizer.ggml.tokens"), scores=scalars("tokenizer.ggml.scores"),
                token_type=scalars("tokenizer.ggml.token_type"),
                merges=strings("tokenizer.ggml.merges"),
                bos=one("tokenizer.ggml.bos_token_id"), eos=one("tokenizer.ggml.eos_token_id"),
                unk=one("tokenizer.ggml.unknown_token_id"),
                add_bos=one("tokenizer.ggml.add_bos_token"),
                add_space_prefix=one("tokenizer.ggml.add_space_prefix"))


def string_array(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(s)) + s for s in items)


def meta_arrays(m: Meta) -> dict[str, tuple[bytes, int, int]]:
    """name -> (raw bytes, count, GGUF element type), only for present arrays."""
    out = {}
    if m.tokens is not None:
        out["TOKENS"] = (string_array(m.tokens), len(m.tokens), STRING)
    if m.scores is not None:
        out["SCORES"] = (struct.pack(f"<{len(m.scores)}f", *m.scores), len(m.scores), FLOAT32)
    if m.token_type is not None:
        out["TOKEN_TYPE"] = (struct.pack(f"<{len(m.token_type)}i", *m.token_type),
                             len(m.token_type), INT32)
    if m.merges is not None:
        out["MERGES"] = (string_array(m.merges), len(m.merges), STRING)
    for k, v in m.raw.items():
        out[k] = v
    for k, t in m.types.items():
        if k in out:
            b, n, _ = out[k]
            out[k] = (b, n, t)
    for k, n in m.counts.items():
        if k in out:
            b, _, t = out[k]
            out[k] = (b, n, t)
    return out


# ------------------------------------------------------------------------------ machines

class EmuMachine:
    name = "unicorn"

    def __init__(self):
        from peasm.runners.emu import Emu
        self.emu = Emu(image())

    def alloc(self, size: int) -> int:
        return self.emu.alloc(size, align=1)

    def call(self, fn: str, *args: int, limit: int = 0) -> int:
        return self.emu.call(fn, *args, max_instructions=limit)

    def read(self, address: int, size: int) -> bytes:
        return self.emu.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.emu.write(address, data)


class NativeMachine:
    name = "native"

    def __init__(self):
        from peasm.runners import native
        ok, why = native.supported()
        if not ok:
            import pytest
            pytest.skip(why)
        self.native = native
        self.image = native.NativeImage(image())
        self._buffers = []

    def alloc(self, size: int) -> int:
        buf = self.native.GuardedBuffer(size, align=1)
        self._buffers.append(buf)
        return buf.address

    def call(self, fn: str, *args: int, limit: int = 0) -> int:
        return self.native.call(self.image.address(fn), *args, where=self.image.where).rax

    def read(self, address: int, size: int) -> bytes:
        return self.native.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.native.write_memory(address, data)


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


class Arena:
    """Reusable guard-paged areas, one per buffer name, data placed flush against the upper
    guard page (grown when a case needs more): a fuzz runner builds thousands of vocabs."""

    def __init__(self, machine):
        self.m = machine
        self.areas: dict[str, tuple[int, int]] = {}

    def place(self, name: str, data: bytes = b"", size: int | None = None) -> int:
        size = len(data) if size is None else size
        start, cap = self.areas.get(name, (0, -1))
        if size > cap:
            cap = max(size, 4096)
            start = self.m.alloc(cap)
            self.areas[name] = (start, cap)
        addr = start + cap - size
        if data:
            self.m.write(addr, data)
        return addr


class AsmVocab:
    """A VOCAB built on a machine from GGUF metadata, every buffer against a guard page."""

    def __init__(self, machine, meta: Meta, *, workspace: int | None = None,
                 arena: Arena | None = None):
        self.m = machine
        self.meta = meta
        self.arena = arena
        arrays = meta_arrays(meta)
        src = bytearray(SRC.size)
        off = SRC.layout()[0]

        def put(name, fmt, value):
            struct.pack_into(fmt, src, off[name], value)

        for name, (data, count, etype) in arrays.items():
            addr = self._place(data, key=name)
            put(name, "<Q", addr)
            put("N_" + name, "<Q", count)
            put(name + "_TYPE", "<I", etype)
        for name, value in (("MODEL", meta.model), ("PRE", meta.pre)):
            if value is not None:
                put(name, "<Q", self._place(value, key=name))
                put(name + "_LEN", "<Q", len(value))
        for name, value in (("BOS_ID", meta.bos), ("EOS_ID", meta.eos), ("UNK_ID", meta.unk),
                            ("ADD_BOS", meta.add_bos), ("ADD_SPACE_PREFIX", meta.add_space_prefix)):
            put(name, "<I", value & 0xFFFF_FFFF)
        self.src = self._place(bytes(src), key="src")
        self.ws_need = machine.call("vocab_workspace_bytes", self.src)
        self.vocab = self._place(bytes(VOCAB.size), key="vocab")
        ws_size = self.ws_need if workspace is None else workspace
        self.ws = self._place(size=ws_size, key="ws") if ws_size else 0
        import time
        t0 = time.perf_counter()
        self.status = s32(machine.call("vocab_build", self.vocab, self.src, self.ws, ws_size))
        self.build_s = time.perf_counter() - t0
        self.text_end = self._place(size=C["VOCAB_MAX_TEXT"] + 64, key="text") + C["VOCAB_MAX_TEXT"] + 64
        self.out_cap = C["VOCAB_MAX_TEXT"] + 64
        self.out_end = self._place(size=4 * self.out_cap, key="out") + 4 * self.out_cap
        self.len_slot = self._place(bytes(8), key="len")

    def _place(self, data: bytes = b"", size: int | None = None, key: str = "") -> int:
        size = len(data) if size is None else size
        if self.arena is not None:
            return self.arena.place(key, data, size)
        at = self.m.alloc(max(size, 1))
        addr = at + max(size, 1) - size
        if data:
            self.m.write(addr, data)
        return addr

    def field(self, name: str, fmt: str = "<I") -> int:
        off = VOCAB.layout()[0][name]
        return struct.unpack(fmt, self.m.read(self.vocab + off, struct.calcsize(fmt)))[0]

    def error_text(self) -> str:
        off = VOCAB.layout()[0]["ERROR_TEXT"]
        raw = self.m.read(self.vocab + off, 192)
        return raw.split(b"\0", 1)[0].decode()

    def encode(self, text: bytes, *, bos: bool = False, special: bool = False,
               capacity: int | None = None):
        """Token ids, or the negative status."""
        tp = self.text_end - len(text)
        if text:
            self.m.write(tp, text)
        cap = self.out_cap if capacity is None else capacity
        out = self.out_end - 4 * cap
        flags = (C["VOCAB_ENCODE_BOS"] if bos else 0) | (C["VOCAB_PARSE_SPECIAL"] if special else 0)
        n = s32(self.m.call("vocab_encode", self.vocab, tp, len(text), flags, out, cap))
        if n < 0:
            return n
        assert n <= cap
        return list(struct.unpack(f"<{n}i", self.m.read(out, 4 * n)))

    def decode(self, token: int, prev: int = -1) -> bytes:
        self.m.write(self.len_slot, b"\xAA" * 8)
        p = self.m.call("vocab_decode", self.vocab, prev & 0xFFFF_FFFF, token & 0xFFFF_FFFF,
                        self.len_slot)
        (n,) = struct.unpack("<Q", self.m.read(self.len_slot, 8))
        assert n < 1 << 20
        return self.m.read(p, n)

    def find(self, text: bytes) -> int:
        tp = self.text_end - len(text)
        if text:
            self.m.write(tp, text)
        return s32(self.m.call("vocab_find", self.vocab, tp, len(text)))


# ------------------------------------------------------------------------------ oracles

def oracle(meta: Meta, *, with_added: bool = False):
    """`tokenizers` built from the same vocab + merges, pre-tokenizer and decoder."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    vocab = {t.decode("utf-8"): i for i, t in enumerate(meta.tokens)}
    merges = [tuple(m.decode("utf-8").split(" ", 1)) for m in meta.merges]
    kind = meta.pre_kind()
    bpe = models.BPE(vocab=vocab, merges=merges, ignore_merges=(kind == "PRE_LLAMA3"))
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in PRE_REGEXES[kind]]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    if with_added:
        types = meta.token_type or []
        tk.add_special_tokens([AddedToken(meta.tokens[i].decode(), special=True, normalized=False)
                               for i, t in enumerate(types) if t in (3, 4)])
    return tk


def oracle_encode(tk, text: bytes) -> list[int]:
    return tk.encode(text.decode("utf-8"), add_special_tokens=False).ids


# ------------------------------------------------------------------------------ corpus

CORPUS = [
    "Hello world", " Hello world", "Hello, world! How are you?", "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x * 2  # comment\n\nprint(f(21))\n",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] + c[i]; }",
    "1234567890 3.14159 1,000,000 42nd 2024-11-29 007",
    "   leading spaces", "trailing spaces   ", "a  b   c    d\t\te\n\n\nf \n g\r\n h",
    "\n", "\n\n\n", " ", "  ", "\t", " \n \n", "x", "",
    "I'm you're he's they'LL we'VE she'd I'M 'tis don't CAN'T",
    "héllo wörld, naïve café, Ünïcödé ßtraße, e\u0301 combining",
    "你好世界，这是一个测试。日本語のテキストです。한국어 텍스트",
    "😀🚀 emoji 👨‍👩‍👧 family 🇫🇷 flag ✅",
    "مرحبا بالعالم، هذا اختبار", "Привет, мир! Ελληνικά γράμματα",
    "mixed 中文 and English 😀 text with numbers ١٢٣ and ½ ¾",
    "!!!!!! ??? ... --- +++ === <<< >>> $$$ ^^^ ~~~ |||",
    "ied 4 ½ months", "Äpfel", "w048 7tuijk dsdfhu", " (", "\n =", "' era",
    "<|endoftext|> <s> </s> <|im_end|> plain text with special-looking strings",
    "\u00a0non-breaking\u2003em space\u3000ideographic space",
    "a\x1cb \x1c c x\x85y \x85 z a\u2028b \u180e x \u200b y x\u00adz",   # White_Space or not
    "ſ's 'ſ K's 'S 'Re 'vE", "𝟘𝟙 ⅧⅨ ǅ ʰ ᾈ a\u0301\u0302b \U0001F6DC \u0600x",
]


def corpus() -> list[bytes]:
    return [t.encode() for t in CORPUS]


def ggml_vectors(inp: Path, out: Path) -> list[tuple[bytes, list[int]]]:
    """llama.cpp's test vectors: inputs separated by __ggml_vocab_test__ lines, one line of
    ids each (the input's last newline belongs to the separator)."""
    texts = inp.read_bytes().split(b"\n__ggml_vocab_test__\n")
    ids = out.read_text().split("\n")
    return [(t, [int(x) for x in i.split()]) for t, i in zip(texts, ids)]


def partition(meta: Meta, text: bytes, parse_special: bool) -> list[bytes | int]:
    """llama.cpp's special-token partition: specials (control only when parse_special,
    user-defined always) by text length, longest first, then id; each one's occurrences cut
    out of the raw fragments left to right. -> raw byte strings and ids, in order."""
    types = meta.token_type or [1] * len(meta.tokens)
    specials = [i for i, t in enumerate(types) if t == 4 or (t == 3 and parse_special)]
    specials.sort(key=lambda i: (-len(meta.tokens[i]), i))
    frags: list[bytes | int] = [text] if text else []
    for sid in specials:
        s = meta.tokens[sid]
        out: list[bytes | int] = []
        for f in frags:
            if isinstance(f, int):
                out.append(f)
                continue
            pos = 0
            while True:
                k = f.find(s, pos)
                if k < 0:
                    break
                if k > pos:
                    out.append(f[pos:k])
                out.append(sid)
                pos = k + len(s)
            if pos < len(f):
                out.append(f[pos:])
        frags = out
    return frags


def spm_reference(meta: Meta):
    """llama2.c's encoder (tests/reference/tokenizer.py) over the GGUF pieces with U+2581 as
    spaces, BOS/EOS as the metadata says."""
    from tests.reference import tokenizer as reftok
    pieces = [t.replace("\u2581".encode(), b" ") for t in meta.tokens]
    return reftok.Tokenizer(pieces, meta.scores)


def small_bpe_meta() -> Meta:
    """A tiny valid gpt2 vocabulary: the 256 byte characters, a few merges, two specials
    (<|end|> control, <|user|> user-defined)."""
    from peasm import unicode_table
    bmap = unicode_table.gpt2_byte_map()
    tokens = [chr(bmap[b]).encode() for b in range(256)]
    merges = [b"h e", b"l l", b"he ll", b"hell o"]
    tokens += [b"he", b"ll", b"hell", b"hello", b"<|end|>", b"<|user|>"]
    types = [1] * (len(tokens) - 2) + [3, 4]
    return Meta(model=b"gpt2", pre=b"gpt-2", tokens=tokens, token_type=types, merges=merges,
                bos=len(tokens) - 2, eos=len(tokens) - 2)


def expected_status(m: Meta) -> str:
    """vocab_build's verdict, its rules restated in vocab.inc's order (given a workspace of
    the size vocab_workspace_bytes asks)."""
    arrays = meta_arrays(m)
    kind = {b"gpt2": "BPE", b"llama": "SPM"}.get(m.model)
    if kind is None:
        return "VOCAB_E_MODEL"
    if kind == "BPE" and (m.pre or b"default").decode("latin-1") not in TL.PRE_NAMES:
        return "VOCAB_E_PRE"
    if "TOKENS" not in arrays or arrays["TOKENS"][2] != STRING or not 1 <= arrays["TOKENS"][1] <= C["VOCAB_MAX_TOKENS"]:
        return "VOCAB_E_TOKENS"
    n = arrays["TOKENS"][1]
    if "SCORES" in arrays:
        if arrays["SCORES"][2] != FLOAT32 or arrays["SCORES"][1] != n:
            return "VOCAB_E_SCORES"
    elif kind == "SPM":
        return "VOCAB_E_SCORES"
    if "TOKEN_TYPE" in arrays and (arrays["TOKEN_TYPE"][1] != n or arrays["TOKEN_TYPE"][2] not in (4, 5)):
        return "VOCAB_E_TYPES"
    if kind == "BPE" and ("MERGES" not in arrays or arrays["MERGES"][2] != STRING
                          or arrays["MERGES"][1] > C["VOCAB_MAX_MERGES"]):
        return "VOCAB_E_MERGES"
    for i in (m.bos, m.eos, m.unk):
        if i != NO_ID and i >= n:
            return "VOCAB_E_SPECIAL_ID"
    limit = 1024 if kind == "SPM" else C["VOCAB_MAX_PIECE"]
    for t in m.tokens:
        if not t:
            return "VOCAB_E_EMPTY_TOKEN"
        if len(t) > limit:
            return "VOCAB_E_LONG_TOKEN"
    if len(set(m.tokens)) != n:
        return "VOCAB_E_DUP_TOKEN"
    if kind == "BPE":
        if any(b" " not in mg[1:] for mg in m.merges):
            return "VOCAB_E_MERGE_SPACE"
    else:
        index = {t: i for i, t in enumerate(m.tokens)}
        base = index.get(b"<0x00>")
        if base is not None and any(index.get(f"<0x{b:02X}>".encode()) != base + b for b in range(256)):
            return "VOCAB_E_BYTE_TOKENS"
    return "VOCAB_OK"
