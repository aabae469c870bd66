"""The GGUF tokenizers (app_asm/vocab*.s, bpe.s, pretok.s, unicode.s) on every byte-level BPE
vocabulary we have: ggml-vocab-{gpt-2,llama-bpe,qwen2,starcoder}.gguf and SmolLM2's embedded
one, fed with the arrays gguf-py extracts, laid out as the asm GGUF reader hands them over.

Judges: the `tokenizers` package built from the same vocab + merges, pre-tokenizer regexes
and byte-level decoder (tests/vocab_support.oracle); llama.cpp's published GPT-2 vectors;
Python's unicodedata for the class table. Natively (the host CPU) on everything, under
unicorn (guard pages, ABI checks at every global entry) on the smaller vocabularies.
"""
from __future__ import annotations

import random
import struct

import pytest

from peasm import unicode_table
from tests.support import REFERENCE, model_file, require_tool
from tests.vocab_support import (C, NO_ID, AsmVocab, EmuMachine, Meta, NativeMachine, corpus,
                                 ggml_vectors, image, oracle, oracle_encode, read_meta)

BPE_VOCABS = {
    "gpt-2": "vocab/ggml-vocab-gpt-2.gguf",
    "llama-bpe": "vocab/ggml-vocab-llama-bpe.gguf",
    "qwen2": "vocab/ggml-vocab-qwen2.gguf",
    "starcoder": "vocab/ggml-vocab-starcoder.gguf",
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
EMU_VOCABS = ("gpt-2", "smollm2")       # building the big ones under unicorn takes minutes


def meta_of(name: str) -> Meta:
    return read_meta(str(model_file(BPE_VOCABS[name])))


_cache: dict = {}


def built(name: str, machine: str) -> AsmVocab:
    key = (name, machine)
    if key not in _cache:
        m = NativeMachine() if machine == "native" else EmuMachine()
        v = AsmVocab(m, meta_of(name))
        assert v.status == 0, v.error_text()
        _cache[key] = v
    return _cache[key]


@pytest.fixture(scope="module", params=list(BPE_VOCABS))
def native(request):
    return request.param, built(request.param, "native"), oracle(meta_of(request.param))


@pytest.fixture(scope="module", params=EMU_VOCABS)
def emu(request):
    return request.param, built(request.param, "unicorn"), oracle(meta_of(request.param))


def random_texts(seed: int, count: int) -> list[bytes]:
    """Mixed scripts, digits, punctuation, whitespace runs and contractions, in random order."""
    rng = random.Random(seed)
    atoms = ["the", "The", "THEY", "naïve", "café", "Straße", "你好", "世界", "日本", "한국", "😀",
             "🚀", "👍🏽", "مرحبا", "Привет", "Ελλάδα", "12", "3", "4567", "١٢٣", "½", "Ⅻ", "'s", "'LL",
             "'ve", "'", "\"", "(", ")", "...", "!!", "?", "-", "_", "#", "$", "+", "<=", ">", "^", "|",
             "~", "\u00a0", "\u3000", "\u2003", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n",
             "e\u0301", "x", "I", "def", "{", "}", ";", "=", "0x1F", "αβγ", "\u200d", "🇫🇷"]
    out = []
    for _ in range(count):
        n = rng.randrange(1, 24)
        out.append("".join(rng.choice(atoms) for _ in range(n)).encode())
    return out


# ------------------------------------------------------------------------------ build facts

def test_exports():
    img = image()
    for name in ("vocab_workspace_bytes", "vocab_build", "vocab_encode", "vocab_decode",
                 "vocab_find", "vocab_message", "vocab_error_text", "uni_flags", "uni_decode",
                 "pretok_split", "bpe_build", "bpe_encode", "tok_build"):
        assert img.symbol(name).is_global, name


def test_keystone_and_binutils_agree():
    require_tool("as", "ld", "objdump")
    ks, gas = image("keystone"), image("gas")
    for a, b in zip(ks.sections, gas.sections):
        assert a.data == b.data, f"{a.name} differs between keystone and binutils"
    assert ks.relocs == gas.relocs


def test_unicode_classes_match_unicodedata():
    """uni_flags (the generated table and its binary search) against unicodedata on every
    range boundary and a spread of code points, under unicorn."""
    m = EmuMachine()
    cps = set(range(0, 0x300)) | set(range(0x300, 0x110000, 251)) | {0x10FFFF, 0x110000, 0xFFFFFFFF}
    for a, b, _ in unicode_table.ranges():
        cps |= {a - 1, a, b, b + 1}
    for cp in sorted(cps):
        want = unicode_table.flags(cp) if cp < 0x110000 else 0
        assert m.call("uni_flags", cp) == want, hex(cp)


def test_meta_matches_gguf_py():
    """The tests' direct GGUF reading gives what gguf-py's GGUFReader gives."""
    from tests.vocab_support import read_meta_gguf_py
    path = str(model_file(BPE_VOCABS["smollm2"]))
    a, b = read_meta(path), read_meta_gguf_py(path)
    for f in ("model", "pre", "tokens", "token_type", "merges", "bos", "eos", "unk", "add_bos",
              "add_space_prefix"):
        assert getattr(a, f) == getattr(b, f), f


def test_gpt2_byte_map_is_gpt2s():
    """The generated alphabet is the published one: printable Latin-1 stands for itself, the
    rest maps to U+0100.. in byte order; 256 distinct characters."""
    bmap = unicode_table.gpt2_byte_map()
    assert len(set(bmap)) == 256
    assert bmap[ord("A")] == ord("A") and bmap[0x20] == 0x120 and bmap[0] == 0x100
    assert bmap[0xAD] == 0x143 and bmap[0xA1] == 0xA1


# ------------------------------------------------------------------------------ encode

def test_corpus_native(native):
    name, v, tk = native
    for text in corpus():
        assert v.encode(text) == oracle_encode(tk, text), (name, text)


def test_random_texts_native(native):
    name, v, tk = native
    for text in random_texts(seed=len(name), count=300):
        assert v.encode(text) == oracle_encode(tk, text), (name, text)


def test_roundtrip_native(native):
    """decode(encode(text)) == text for every BPE vocabulary (no byte of the corpus lacks a
    token in these vocabularies)."""
    name, v, _ = native
    for text in corpus() + random_texts(seed=99, count=100):
        ids = v.encode(text)
        assert b"".join(v.decode(t) for t in ids) == text, (name, text)


def test_corpus_unicorn(emu):
    name, v, tk = emu
    for text in corpus():
        ids = v.encode(text)
        assert ids == oracle_encode(tk, text), (name, text)
        assert b"".join(v.decode(t) for t in ids) == text


def test_gpt2_llama_cpp_vectors():
    """llama.cpp's published vectors for ggml-vocab-gpt-2.gguf, natively and under unicorn."""
    inp = REFERENCE / "tokenizer" / "ggml-vocab-gpt-2.gguf.inp"
    out = REFERENCE / "tokenizer" / "ggml-vocab-gpt-2.gguf.out"
    if not inp.is_file():
        pytest.skip(f"missing {inp}")
    cases = ggml_vectors(inp, out)
    assert len(cases) > 30
    for machine in ("native", "unicorn"):
        v = built("gpt-2", machine)
        for text, want in cases:
            assert v.encode(text) == want, (machine, text)


def test_long_text_native(native):
    """A 4 KB prompt and the 64 KiB limit: same ids as the oracle, and the limit enforced."""
    name, v, tk = native
    text = b"".join(random_texts(seed=5, count=400))[:4096].decode("utf-8", "ignore").encode()
    assert v.encode(text) == oracle_encode(tk, text)
    big = (b"word " * 20000)[:C["VOCAB_MAX_TEXT"]]
    assert v.encode(big) == oracle_encode(tk, big)
    assert v.encode(big + b"x") == -C["VOCAB_E_TEXT_TOO_LONG"]
    one_word = b"a" * 5000                       # one long word: the merge heap, not a rescan
    assert v.encode(one_word) == oracle_encode(tk, one_word)


def test_capacity_and_bos(emu):
    name, v, tk = emu
    text = "Hello, world! 你好 😀".encode()
    want = oracle_encode(tk, text)
    assert v.encode(text, capacity=len(want)) == want
    assert v.encode(text, capacity=len(want) - 1) == -C["VOCAB_E_CAPACITY"]
    bos = v.field("BOS_ID")
    assert v.encode(text, bos=True) == [bos] + want
    assert v.encode(b"", bos=True) == [bos]
    assert v.encode(b"") == []


# ------------------------------------------------------------------------------ specials

def test_special_tokens_smollm2():
    """Control tokens become their ids only with parse_special; the text between them is
    encoded as text; a typed <|im_end|> without parse_special is plain text."""
    v = built("smollm2", "unicorn")
    meta = meta_of("smollm2")
    plain, added = oracle(meta), oracle(meta, with_added=True)
    text = b"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    got = v.encode(text, special=True)
    assert got == oracle_encode(added, text)
    assert got[0] == v.find(b"<|im_start|>") == 1 and got.count(2) == 2
    assert v.encode(text) == oracle_encode(plain, text)
    assert 2 not in v.encode(b"hi<|im_end|>")
    assert v.encode(b"<|im_end|><|im_end|>", special=True) == [2, 2]


def test_special_tokens_longest_first():
    """llama3's specials share prefixes: the longest text wins, whatever the id order."""
    v = built("llama-bpe", "native")
    added = oracle(meta_of("llama-bpe"), with_added=True)
    text = b"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    assert v.encode(text, special=True) == oracle_encode(added, text)


def test_user_defined_always_matched():
    """Qwen2's user-defined tokens (type 4) are matched even without parse_special (as
    llama.cpp does); its control tokens are not."""
    v = built("qwen2", "native")
    pad = v.find(b"[PAD151646]")
    assert pad == 151646
    assert v.encode(b"a[PAD151646]b") == [v.encode(b"a")[0], pad, v.encode(b"b")[0]]
    assert 151645 not in v.encode(b"<|im_end|>")
    assert v.encode(b"<|im_end|>", special=True) == [151645]


def test_decode_every_id(native):
    """Every id: control tokens give nothing, user-defined ones their text, others the bytes
    of their GPT-2 characters (the oracle's byte-level decoder), ids past the end nothing."""
    name, v, tk = native
    meta = meta_of(name)
    types = meta.token_type
    step = 1 if len(meta.tokens) <= 60000 else 7
    for i in range(0, len(meta.tokens), step):
        got = v.decode(i)
        if types[i] == 3:
            assert got == b"", (name, i)
        elif types[i] == 4:
            assert got == meta.tokens[i]
        else:
            assert got == tk.decode([i]).encode("utf-8", "surrogatepass") or \
                got.decode("utf-8", "replace") == tk.decode([i]), (name, i)
    n = len(meta.tokens)
    for bad in (n, n + 1, 0xFFFF_FFFF, 0x8000_0000):
        assert v.decode(bad) == b""


def test_find(emu):
    name, v, _ = emu
    meta = meta_of(name)
    for i in list(range(0, len(meta.tokens), 997)) + [len(meta.tokens) - 1]:
        assert v.find(meta.tokens[i]) == i
    assert v.find(b"") == -1
    assert v.find(b"\xff\xfe not a token") == -1


# ------------------------------------------------------------------------------ malformed

def _small_bpe() -> Meta:
    """A tiny valid gpt2 vocabulary: the 256 byte characters, a few merges, two specials."""
    bmap = unicode_table.gpt2_byte_map()
    tokens = [chr(bmap[b]).encode() for b in range(256)]
    merges = [b"h e", b"l l", b"he ll", b"hell o"]
    tokens += [b"he", b"ll", b"hell", b"hello", b"<|end|>", b"<|user|>"]
    types = [1] * (len(tokens) - 2) + [3, 4]
    return Meta(model=b"gpt2", pre=b"gpt-2", tokens=tokens, token_type=types, merges=merges,
                bos=len(tokens) - 2, eos=len(tokens) - 2)


def test_small_vocab_works():
    v = AsmVocab(EmuMachine(), _small_bpe())
    assert v.status == 0, v.error_text()
    hello = v.find(b"hello")
    assert v.encode(b"hello hello") == [hello, v.find(b"\xc4\xa0"), hello]
    assert v.encode(b"x<|user|>y") == [v.find(b"x"), v.find(b"<|user|>"), v.find(b"y")]
    assert v.decode(v.find(b"<|user|>")) == b"<|user|>"
    assert v.decode(v.find(b"<|end|>")) == b""


def _variant(kind: str) -> tuple[Meta, str, str | None]:
    m = _small_bpe()
    n = len(m.tokens)
    if kind == "model":
        m.model = b"bert\x01"
        return m, "VOCAB_E_MODEL", "tokenizer: unknown tokenizer.ggml.model 'bert?'"
    if kind == "no_model":
        m.model = None
        return m, "VOCAB_E_MODEL", "tokenizer: unknown tokenizer.ggml.model ''"
    if kind == "pre":
        m.pre = b"klingon"
        return m, "VOCAB_E_PRE", "tokenizer: unknown tokenizer.ggml.pre 'klingon'"
    if kind == "types_length":
        m.token_type = m.token_type[:-1]
        return m, "VOCAB_E_TYPES", None
    if kind == "types_type":
        m.types = {"TOKEN_TYPE": 6}
        return m, "VOCAB_E_TYPES", None
    if kind == "scores_length":
        m.scores = [0.0] * (n + 1)
        return m, "VOCAB_E_SCORES", None
    if kind == "merge_space":
        m.merges = m.merges + [b"hello"]
        return m, "VOCAB_E_MERGE_SPACE", None
    if kind == "merge_leading_space":
        m.merges = m.merges + [b" x"]
        return m, "VOCAB_E_MERGE_SPACE", None
    if kind == "no_merges":
        m.merges = None
        return m, "VOCAB_E_MERGES", None
    if kind == "merges_type":
        m.types = {"MERGES": 5}
        return m, "VOCAB_E_MERGES", None
    if kind == "empty":
        m.tokens = m.tokens[:10] + [b""] + m.tokens[11:]
        return m, "VOCAB_E_EMPTY_TOKEN", None
    if kind == "duplicate":
        m.tokens = m.tokens[:-1] + [b"hello"]
        return m, "VOCAB_E_DUP_TOKEN", None
    if kind == "bos":
        m.bos = n
        return m, "VOCAB_E_SPECIAL_ID", None
    if kind == "eos":
        m.eos = 0x7FFF_FFFF
        return m, "VOCAB_E_SPECIAL_ID", None
    if kind == "no_tokens":
        m.tokens = None
        return m, "VOCAB_E_TOKENS", None
    if kind == "tokens_type":
        m.types = {"TOKENS": 5}
        return m, "VOCAB_E_TOKENS", None
    raise KeyError(kind)


MALFORMED = ["model", "no_model", "pre", "types_length", "types_type", "scores_length",
             "merge_space", "merge_leading_space", "no_merges", "merges_type", "empty",
             "duplicate", "bos", "eos", "no_tokens", "tokens_type"]


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_refused(kind):
    meta, code, text = _variant(kind)
    v = AsmVocab(EmuMachine(), meta)
    assert v.status == C[code], (kind, v.status, v.error_text())
    msg = v.error_text()
    assert "\n" not in msg and msg.startswith("tokenizer: ")
    if text:
        assert msg == text
    assert v.encode(b"hello") == -C["VOCAB_E_NOT_LOADED"]
    assert v.decode(0) == b""


def test_workspace_too_small():
    meta = _small_bpe()
    m = EmuMachine()
    need = AsmVocab(m, meta).ws_need
    v = AsmVocab(m, meta, workspace=need - 17)
    assert v.status == C["VOCAB_E_WORKSPACE"]
    v = AsmVocab(m, meta, workspace=0)
    assert v.status == C["VOCAB_E_WORKSPACE"]


def test_merges_that_cannot_apply_are_ignored():
    """A merge whose parts or result are not tokens, and a repeated pair, change nothing."""
    m = _small_bpe()
    m.merges = [b"q z", b"h e", b"h e", b"x y"] + m.merges[1:]
    v = AsmVocab(EmuMachine(), m)
    assert v.status == 0 and v.field("N_MERGES") == 4
    assert v.encode(b"hello") == [v.find(b"hello")]


def test_unknown_ids_default_to_none():
    m = _small_bpe()
    m.bos = m.eos = NO_ID
    v = AsmVocab(EmuMachine(), m)
    assert v.status == 0 and v.field("BOS_ID") == NO_ID
    assert v.encode(b"he", bos=True) == [v.find(b"he")]
    assert struct.calcsize("<I") == 4
