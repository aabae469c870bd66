"""Fuzz kind `vocab`: malformed GGUF tokenizer metadata through vocab_build / vocab_encode /
vocab_decode (app_asm/vocab*.s, bpe.s, pretok.s, unicode.s, spm.s, tok_*.s) under
unicorn, every array flush against a guard page.

Cases start from a tiny valid byte-level BPE vocabulary (tests/vocab_support.small_bpe_meta)
or stories260K.gguf's 512-piece SentencePiece one, and apply 1-3 mutations: keys dropped,
element types changed, arrays shortened or lengthened, tokens emptied, duplicated, made
long or random, byte pieces moved, merges without a space or with unknown parts, token
types (more specials, values above 255), BOS/EOS/UNK ids around the vocabulary size, odd
model and pre names. The arrays stay consistent with their counts: the GGUF reader
guarantees that much (its own fuzz kind covers the file).

Judges: vocab_build's verdict equals tests/vocab_support.expected_status (vocab.inc's rules
restated), its message is one line starting "tokenizer: " (naming the value for an unknown
model or pre); a refused VOCAB encodes nothing and decodes empty pieces. An accepted one
encodes texts (random bytes, invalid UTF-8, special texts, with and without parse_special)
into ids inside the vocabulary or a stated error, decodes any id, and for byte-level BPE
with every byte character present gives the text back when no special token came out.
"""
from __future__ import annotations

import json
from functools import lru_cache
from random import Random

from tests.fuzz.runner import MAX_INSTRUCTIONS, TIMEOUT_S, Outcome, Runner
from tests.fuzz.mutate import Case
from tests.vocab_support import (C, NO_ID, Arena, AsmVocab, Meta, expected_status, image,
                                 read_meta, small_bpe_meta)

SPM_BASE = "stories260K.gguf"


@lru_cache(maxsize=None)
def _spm_base() -> Meta:
    from tests.support import model_file
    return read_meta(str(model_file(SPM_BASE)))


def _copy(m: Meta) -> Meta:
    return Meta(model=m.model, pre=m.pre, tokens=list(m.tokens) if m.tokens else m.tokens,
                scores=list(m.scores) if m.scores else m.scores,
                token_type=list(m.token_type) if m.token_type else m.token_type,
                merges=list(m.merges) if m.merges is not None else None, bos=m.bos, eos=m.eos,
                unk=m.unk, add_bos=m.add_bos, add_space_prefix=m.add_space_prefix)


def _id(rng: Random, n: int) -> int:
    return rng.choice((NO_ID, 0, 1, 2, n - 1, n, n + 1, 0x7FFF_FFFF, 0x8000_0000, NO_ID - 1,
                       rng.randrange(0, n)))


def _mutate(rng: Random, m: Meta) -> str:
    if not m.tokens:
        return "(no tokens left to mutate)"
    n = len(m.tokens)
    op = rng.randrange(20)
    if op == 0:
        key = rng.choice(("tokens", "scores", "token_type", "merges", "model", "pre"))
        setattr(m, key, None)
        return f"drop {key}"
    if op == 1:
        key = rng.choice(("TOKENS", "SCORES", "TOKEN_TYPE", "MERGES"))
        t = rng.choice((0, 4, 5, 6, 7, 8, 9, 10, 12, 0xFFFF_FFFF))
        m.types[key] = t
        return f"{key} element type {t}"
    if op == 2:
        key = rng.choice(("scores", "token_type"))
        arr = getattr(m, key)
        if arr is not None:
            if rng.random() < 0.5 and arr:
                del arr[rng.randrange(len(arr)):]
            else:
                arr += [arr[-1] if arr else 1] * rng.randrange(1, 4)
        return f"{key} length changed"
    if op == 3:
        i = rng.randrange(n)
        m.tokens[i] = b""
        return f"token {i} empty"
    if op == 4:
        i, j = rng.randrange(n), rng.randrange(n)
        m.tokens[i] = m.tokens[j]
        return f"token {i} = token {j}"
    if op == 5:
        i = rng.randrange(n)
        size = rng.choice((1023, 1024, 1025, 4096, 65535, 65536, 70000))
        m.tokens[i] = bytes([0x61 + i % 26]) * size
        return f"token {i} {size} bytes"
    if op == 6:
        i = rng.randrange(n)
        m.tokens[i] = rng.randbytes(rng.randrange(1, 12))
        return f"token {i} random bytes"
    if op == 7:
        i, j = rng.randrange(n), rng.randrange(n)
        m.tokens[i], m.tokens[j] = m.tokens[j], m.tokens[i]
        return f"tokens {i} and {j} swapped"
    if op == 8:
        b = rng.randrange(256)
        if f"<0x{b:02X}>".encode() in m.tokens:
            i = m.tokens.index(f"<0x{b:02X}>".encode())
            m.tokens[i] = rng.choice((f"<0x{b:02x}>".encode(), b"<0xZZ>", b"x" + m.tokens[i]))
            return f"byte piece {b:02X} renamed"
        return "no byte piece to rename"
    if op == 9 and m.merges is not None:
        i = rng.randrange(len(m.merges) + 1)
        mg = rng.choice((b"nospace", b" lead", b"", b" ", b"a  b", b"\xff \xfe", b"he ll o",
                         b"hello hello", b"h e"))
        m.merges.insert(i, mg)
        return f"merge {mg!r} at {i}"
    if op == 10 and m.merges is not None:
        m.merges += [rng.choice(m.tokens) + b" " + rng.choice(m.tokens) for _ in range(rng.randrange(1, 40))]
        return "random merges of tokens"
    if op == 11 and m.token_type is not None:
        for _ in range(rng.randrange(1, 20)):
            m.token_type[rng.randrange(n)] = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 255, 256, -1,
                                                         0x7FFF_FFFF))
        return "token types changed"
    if op == 12:
        m.bos = _id(rng, n)
        return f"bos {m.bos}"
    if op == 13:
        m.eos = _id(rng, n)
        return f"eos {m.eos}"
    if op == 14:
        m.unk = _id(rng, n)
        return f"unk {m.unk}"
    if op == 15:
        m.add_bos = rng.choice((0, 1, 2, NO_ID))
        m.add_space_prefix = rng.choice((0, 1, 7, NO_ID))
        return f"add_bos {m.add_bos} add_space_prefix {m.add_space_prefix}"
    if op == 16:
        m.model = rng.choice((b"gpt2", b"llama", b"GPT2", b"gpt", b"llama\x00", b"bert", b"",
                              rng.randbytes(rng.randrange(0, 80))))
        return f"model {m.model!r}"
    if op == 17:
        m.pre = rng.choice((b"default", b"gpt-2", b"llama3", b"llama-bpe", b"qwen2", b"smollm",
                            b"starcoder", b"jais", b"", b"gpt-22", rng.randbytes(rng.randrange(0, 70))))
        return f"pre {m.pre!r}"
    if op == 18:
        m.tokens += [rng.randbytes(rng.randrange(1, 6)) for _ in range(rng.randrange(1, 30))]
        for arr in (m.scores, m.token_type):
            if arr is not None:
                arr += [arr[-1]] * (len(m.tokens) - len(arr))
        return "tokens added (arrays kept in step)"
    i = rng.randrange(n)
    m.tokens[i] = m.tokens[i] + rng.choice((b"\x00", b"\xe2\x96\x81", b"<|end|>", b"\xff"))
    return f"token {i} extended"


def vocab_case(rng: Random, seed: int, index: int) -> Case:
    base = "small-bpe" if rng.random() < 0.6 else "stories260K-spm"
    m = _copy(small_bpe_meta() if base == "small-bpe" else _spm_base())
    ops = [_mutate(rng, m) for _ in range(rng.choice((1, 1, 2, 3)))]
    return Case("vocab", seed, index, base, encode_meta(m), ops)


def encode_meta(m: Meta) -> bytes:
    b = lambda x: None if x is None else x.decode("latin-1")          # noqa: E731
    bl = lambda xs: None if xs is None else [b(x) for x in xs]       # noqa: E731
    return json.dumps({"model": b(m.model), "pre": b(m.pre), "tokens": bl(m.tokens),
                       "scores": m.scores, "token_type": m.token_type, "merges": bl(m.merges),
                       "bos": m.bos, "eos": m.eos, "unk": m.unk, "add_bos": m.add_bos,
                       "add_space_prefix": m.add_space_prefix, "types": m.types}).encode()


def decode_meta(data: bytes) -> Meta:
    d = json.loads(data)
    b = lambda x: None if x is None else x.encode("latin-1")         # noqa: E731
    bl = lambda xs: None if xs is None else [b(x) for x in xs]       # noqa: E731
    return Meta(model=b(d["model"]), pre=b(d["pre"]), tokens=bl(d["tokens"]), scores=d["scores"],
                token_type=d["token_type"], merges=bl(d["merges"]), bos=d["bos"], eos=d["eos"],
                unk=d["unk"], add_bos=d["add_bos"], add_space_prefix=d["add_space_prefix"],
                types=d["types"])


class FuzzMachine:
    """vocab_support's machine interface over the runner's Emu, with the fuzz limits."""
    name = "unicorn"

    def __init__(self, emu):
        self.emu = emu

    def alloc(self, size: int) -> int:
        return self.emu.alloc(size, align=1)

    def call(self, fn: str, *args: int, limit: int = 0) -> int:
        return self.emu.call(fn, *args, max_instructions=MAX_INSTRUCTIONS, timeout_s=TIMEOUT_S)

    def read(self, address: int, size: int) -> bytes:
        return self.emu.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.emu.write(address, data)


TEXTS = [b"hello hello", b"he<|end|>ll<|user|>o", "héllo 😀 你好\n\n 123".encode(), b"\xff\xfe\x80",
         b"<s>x</s><0x41>", b"   ", b"", b"\x00ab", b"Once upon a time"]


class VocabRunner(Runner):
    kind = "vocab"

    def __init__(self):
        super().__init__(image())
        self.m = FuzzMachine(self.emu)
        self.arena = Arena(self.m)

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        meta = decode_meta(case.data)
        want = expected_status(meta)
        v = AsmVocab(self.m, meta, arena=self.arena)
        msg = v.error_text()
        out.message = msg
        out.verdict = "accepted" if v.status == 0 else f"refused: {msg}"
        if v.status != C[want]:
            out.problems.append(f"status {v.status}, expected {C[want]} ({want})")
        if "\n" in msg or not msg.startswith("tokenizer: "):
            out.problems.append(f"message is not one 'tokenizer: ' line: {msg!r}")
        if want in ("VOCAB_E_MODEL", "VOCAB_E_PRE") and "'" not in msg:
            out.problems.append("the unknown value is not named")
        n = len(meta.tokens or [])
        if v.status != 0:
            if (v.encode(b"hello") != -C["VOCAB_E_NOT_LOADED"] or v.decode(0) != b""
                    or v.find(b"hello") != -1):
                out.problems.append("a refused vocab still encodes, decodes or finds")
            return
        types = meta.token_type or [1] * n
        from peasm import unicode_table
        byte_chars = {chr(c).encode() for c in unicode_table.gpt2_byte_map()}
        all_bytes = byte_chars <= set(meta.tokens)
        for text in TEXTS + [rng.randbytes(rng.randrange(0, 40))]:
            for special in (False, True):
                ids = v.encode(text, special=special)
                if isinstance(ids, int):
                    if ids not in (-C["VOCAB_E_SPM"],):
                        out.problems.append(f"encode {text!r} -> {ids}")
                    continue
                if any(not 0 <= i < n for i in ids):
                    out.problems.append(f"encode {text!r} gave an id outside the vocab: {ids}")
                    continue
                pieces = [v.decode(i) for i in ids]
                if (meta.model == b"gpt2" and all_bytes and
                        all(types[i] not in (3, 4) and types[i] & 0xFFFF_FF00 == 0 for i in ids)):
                    if b"".join(pieces) != text:
                        out.problems.append(f"decode(encode({text!r})) = {b''.join(pieces)!r}")
        for i in (0, n - 1, n, 0xFFFF_FFFF, rng.randrange(max(n, 1))):
            v.decode(i)
        for i in range(0, n, max(1, n // 8)):
            if v.find(meta.tokens[i]) != meta.tokens.index(meta.tokens[i]):
                out.problems.append(f"find(token {i}) = {v.find(meta.tokens[i])}")
