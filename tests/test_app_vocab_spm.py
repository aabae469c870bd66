"""SentencePiece (`llama`) vocabularies from GGUF arrays: vocab_build -> tok_build (spm.s) ->
tok_encode.s/tok_index.s's llama2.c-exact core, on ggml-vocab-llama-spm.gguf (the Llama 2 vocabulary, the
same as tokenizer.bin), ggml-vocab-phi-3.gguf and stories260K.gguf's embedded vocab.

Judges: llama2.c's encoder (tests/reference/tokenizer.py) over the GGUF pieces with U+2581 as
spaces, and for llama-spm the same reference over tokenizer.bin (an independent file of the
same vocabulary); special tokens by llama.cpp's partition rules (tests/vocab_support.partition)
with a space prefix on every text fragment that starts the text or follows a special token.
"""
from __future__ import annotations

import pytest

from tests.reference import tokenizer as reftok
from tests.support import model_file
from tests.vocab_support import (C, AsmVocab, EmuMachine, NativeMachine, corpus, partition,
                                 read_meta, spm_reference)
from tests.test_app_bpe import random_texts

SPM_VOCABS = {
    "llama-spm": "ggml-vocab-llama-spm.gguf",
    "phi-3": "vocab/ggml-vocab-phi-3.gguf",
    "stories260K": "stories260K.gguf",
}
_cache: dict = {}


def meta_of(name):
    return read_meta(str(model_file(SPM_VOCABS[name])))


def built(name: str, machine: str) -> AsmVocab:
    if (name, machine) not in _cache:
        m = NativeMachine() if machine == "native" else EmuMachine()
        v = AsmVocab(m, meta_of(name))
        assert v.status == 0, v.error_text()
        _cache[(name, machine)] = v
    return _cache[(name, machine)]


def expected(name: str, text: bytes, *, bos: bool = False, special: bool = False) -> list[int]:
    meta = meta_of(name)
    ref = spm_reference(meta)
    out = [meta.bos if meta.bos != 0xFFFF_FFFF else 1] if bos else []
    prev_special = True
    for f in partition(meta, text, special):
        if isinstance(f, int):
            out.append(f)
            prev_special = True
            continue
        # llama2.c's dummy prefix where llama.cpp puts its space prefix
        out += ref.encode(f, bos=False) if prev_special else _no_prefix(ref, f)
        prev_special = False
    return out


def _no_prefix(ref, text: bytes) -> list[int]:
    """llama2.c's encode without the dummy prefix (its groups, then its merges)."""
    ids = []
    for g in reftok.utf8_groups(text.split(b"\0", 1)[0]):
        t = ref.lookup(g)
        ids += [t] if t >= 0 else [b + reftok.BYTE_OFFSET for b in g]
    ref._merge(ids)
    return ids


@pytest.fixture(scope="module", params=list(SPM_VOCABS))
def native(request):
    return request.param, built(request.param, "native")


def test_facts():
    from tests.test_app_tokenizer import C as TOK
    from tests.vocab_support import VOCAB
    spm = next(f for f in VOCAB.fields if f.name == "SPM")
    assert TOK["TOK_SIZE"] <= spm.count, "tokenizer.inc's struct outgrew VOCAB_SPM"
    v = built("llama-spm", "native")
    assert v.field("KIND") == C["VOCAB_KIND_SPM"]
    assert (v.field("BOS_ID"), v.field("EOS_ID"), v.field("UNK_ID")) == (1, 2, 0)
    assert v.field("ADD_BOS") == 1 and v.field("ADD_SPACE_PREFIX") == 1
    assert built("phi-3", "native").field("EOS_ID") == 32000


def test_corpus_and_random(native):
    name, v = native
    for text in corpus() + random_texts(seed=3, count=150):
        assert v.encode(text, bos=True) == expected(name, text, bos=True), (name, text)


def test_llama_spm_equals_tokenizer_bin():
    """The GGUF Llama 2 vocabulary encodes as tokenizer.bin does under llama2.c's rules."""
    v = built("llama-spm", "native")
    ref = reftok.read_tokenizer(model_file("tokenizer.bin").read_bytes(), 32000)
    for text in corpus() + random_texts(seed=8, count=100):
        assert v.encode(text, bos=True) == ref.encode(text), text


def test_unicorn():
    v = built("stories260K", "unicorn")
    for text in corpus():
        assert v.encode(text, bos=True) == expected("stories260K", text, bos=True), text
    v = built("phi-3", "unicorn")
    for text in corpus()[:12]:
        assert v.encode(text) == expected("phi-3", text), text


def test_special_tokens_phi3():
    """Phi-3's chat markers are control tokens: ids with parse_special, text without; its
    </s> is user-defined (type 4) and matched always."""
    v = built("phi-3", "native")
    text = b"<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>"
    got = v.encode(text, special=True)
    assert got == expected("phi-3", text, special=True)
    assert got[0] == v.find(b"<|user|>") == 32010
    plain = v.encode(text)
    assert 32010 not in plain and plain == expected("phi-3", text)
    assert v.encode(b"a</s>b") == expected("phi-3", b"a</s>b") and 2 in v.encode(b"a</s>b")


def test_decode(native):
    """Pieces with U+2581 as spaces, <0xXX> as the byte, control tokens as nothing, the
    leading space dropped after BOS (llama2.c)."""
    name, v = native
    meta = meta_of(name)
    ref = spm_reference(meta)
    for i in range(0, len(meta.tokens), 3):
        want = b"" if meta.token_type[i] == 3 else ref.decode(5, i)
        assert v.decode(i, prev=5) == want, (name, i)
    assert v.decode(v.encode(b"Hello")[0], prev=1) == ref.decode(1, v.encode(b"Hello")[0])
    for text in corpus()[:20]:
        ids = v.encode(text, bos=True)
        out, prev = b"", ids[0]
        for t in ids[1:]:
            out += v.decode(t, prev=prev)
            prev = t
        assert out == text, (name, text)


def test_malformed_spm():
    meta = meta_of("stories260K")
    from dataclasses import replace
    m = EmuMachine()
    cases = [
        (replace(meta, scores=None), "VOCAB_E_SCORES"),
        (replace(meta, scores=meta.scores[:-1]), "VOCAB_E_SCORES"),
        (replace(meta, types={"SCORES": 5}), "VOCAB_E_SCORES"),
        (replace(meta, tokens=meta.tokens[:3] + [b"<0x01>", b"<0x00>"] + meta.tokens[5:]),
         "VOCAB_E_BYTE_TOKENS"),
        (replace(meta, tokens=meta.tokens[:-1] + [b"x" * 1025]), "VOCAB_E_LONG_TOKEN"),
        (replace(meta, bos=512), "VOCAB_E_SPECIAL_ID"),
        (replace(meta, unk=600), "VOCAB_E_SPECIAL_ID"),
    ]
    for bad, code in cases:
        v = AsmVocab(m, bad)
        assert v.status == C[code], (code, v.error_text())
        assert v.error_text().startswith("tokenizer: ") and "\n" not in v.error_text()


def test_tokenizer_bin_through_the_vocab_interface():
    """vocab_wrap_tok: tokenizer.bin loaded by tok_load into the VOCAB's SPM struct serves
    vocab_encode / vocab_decode / vocab_find exactly as the GGUF vocabs do (one interface for
    the session); a VOCAB not built answers nothing."""
    import struct
    from tests.vocab_support import VOCAB
    data = model_file("tokenizer.bin").read_bytes()
    ref = reftok.read_tokenizer(data, 32000)
    m = NativeMachine()
    v = AsmVocab.__new__(AsmVocab)                 # the harness's encode/decode on a bare VOCAB
    v.m, v.meta, v.arena = m, None, None
    v.vocab = v._place(bytes(VOCAB.size))
    v.text_end = v._place(size=C["VOCAB_MAX_TEXT"] + 64) + C["VOCAB_MAX_TEXT"] + 64
    v.out_cap = C["VOCAB_MAX_TEXT"] + 64
    v.out_end = v._place(size=4 * v.out_cap) + 4 * v.out_cap
    v.len_slot = v._place(bytes(8))
    assert v.find(b"<unk>") == -1 and v.encode(b"x") == -C["VOCAB_E_NOT_LOADED"]
    assert m.call("vocab_wrap_tok", v.vocab) == C["VOCAB_E_NOT_LOADED"]
    file = v._place(data)
    need = m.call("tok_workspace_bytes", len(data), 32000)
    ws = v._place(size=need)
    spm = v.vocab + VOCAB.layout()[0]["SPM"]
    assert m.call("tok_load", spm, file, len(data), 32000, ws, need) == 0
    assert m.call("vocab_wrap_tok", v.vocab) == 0
    for text in corpus() + random_texts(seed=4, count=50):
        assert v.encode(text, bos=True) == ref.encode(text), text
        assert v.encode(text, bos=True, special=True) == ref.encode(text)   # no specials
    for i in range(0, 32000, 7):
        assert v.decode(i, prev=5) == ref.decode(5, i)
    assert v.decode(29871, prev=1) == ref.decode(1, 29871)
    assert v.find(b"<unk>") == 0 and v.find(b" the") == ref.lookup(b" the")
    assert struct.unpack("<I", m.read(v.vocab + VOCAB.layout()[0]["KIND"], 4))[0] == C["VOCAB_KIND_SPM"]


def test_capacity_and_limits():
    v = built("stories260K", "unicorn")
    text = b"<s>Once upon a time</s> there was"
    want = v.encode(text, bos=True, special=True)
    assert want == expected("stories260K", text, bos=True, special=True)
    assert v.encode(text, bos=True, special=True, capacity=len(want)) == want
    for cap in range(len(want)):
        assert v.encode(text, bos=True, special=True, capacity=cap) == -C["VOCAB_E_CAPACITY"]
    assert v.encode(b"x" * (C["VOCAB_MAX_TEXT"] + 1)) == -C["VOCAB_E_TEXT_TOO_LONG"]
    assert v.encode(b"") == [] and v.encode(b"", bos=True) == [1]
