"""Fuzz kind `tokenizer`: tokenizer.bin files through app_asm/tokenizer.s and the
SentencePiece core under unicorn (what is called and what judges it: tests/fuzz/harness.py)."""
from __future__ import annotations

import struct
from functools import lru_cache
from random import Random

from peasm.linker import link

from tests.fuzz.mutate import MAX_FILE, Case
from tests.fuzz.runner import APP, U32, Area, Outcome, Runner, line_problems
from tests.reference import tokenizer as reftok
from tests.support import inc_constants

TC = inc_constants(APP / "tokenizer.inc", {})


@lru_cache(maxsize=None)
def tokenizer_image():
    return link([APP / s for s in ("tokenizer.s", "tok_index.s", "tok_encode.s")], "tok_load")


def tokenizer_status(data: bytes, vocab: int) -> int:
    """tok_load's status by tokenizer.inc's validation order (the workspace being right)."""
    size, v = len(data), vocab & U32
    if not 1 <= v <= TC["TOK_MAX_VOCAB"]:
        return TC["TOK_E_VOCAB_SIZE"]
    if size > TC["TOK_MAX_FILE"]:
        return TC["TOK_E_FILE_SIZE"]
    if size < 4:
        return TC["TOK_E_HEADER"]
    (mtl,) = struct.unpack_from("<i", data)
    if not 1 <= mtl <= TC["TOK_MAX_TOKEN_LEN"]:
        return TC["TOK_E_MAX_LEN"]
    off = 4
    for _ in range(v):
        if size - off < 8:
            return TC["TOK_E_TRUNCATED"]
        (length,) = struct.unpack_from("<i", data, off + 4)
        off += 8
        if length < 0:
            return TC["TOK_E_NEGATIVE_LEN"]
        if length > mtl:
            return TC["TOK_E_LONG_PIECE"]
        if length > size - off:
            return TC["TOK_E_TRUNCATED"]
        off += length
    return TC["TOK_OK"]


FIXED_TEXTS = (b"Once upon a time", b"", b" ", b"the cat sat.", "héllo 你好 😀".encode(),
               b"\xff\xfe\x80abc\xc3", b"a\0b", b"<0x41>", b"\n\n  \t")


def encode_expectation(ref: reftok.Tokenizer, text: bytes, bos: bool, eos: bool):
    """The reference's ids, or the set of tok_encode error codes the text and vocab allow."""
    v = ref.vocab_size
    data = text.split(b"\0", 1)[0]
    errors = set()
    if (bos and v <= reftok.BOS) or (eos and v <= reftok.EOS):
        errors.add(TC["TOK_E_BAD_ID"])
    if data and ref.lookup(b" ") < 0:
        errors.add(TC["TOK_E_NO_SPACE"])
    for g in reftok.utf8_groups(data):
        if ref.lookup(g) < 0 and any(b + reftok.BYTE_OFFSET >= v for b in g):
            errors.add(TC["TOK_E_BAD_ID"])
    if errors:
        return errors
    return ref.encode(text, bos=bos, eos=eos)


class TokenizerRunner(Runner):
    kind = "tokenizer"

    def __init__(self):
        super().__init__(tokenizer_image())
        self.tok = self.emu.alloc(TC["TOK_SIZE"], align=8)
        self.file = Area(self.emu, MAX_FILE + 4096)
        ws_max = self.emu.call("tok_workspace_bytes", MAX_FILE + 4096, TC["TOK_MAX_VOCAB"])
        self.ws = Area(self.emu, ws_max)
        self.text = Area(self.emu, 4096)
        self.out = Area(self.emu, 4 * 4096)
        self.len_slot = Area(self.emu, 8).place(size=8)

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        emu, data, vocab = self.emu, case.data, case.vocab_size & U32
        fp = self.file.place(data)
        need = self.call("tok_workspace_bytes", len(data), vocab)
        if need > self.ws.size:
            out.problems.append(f"tok_workspace_bytes({len(data)}, {vocab}) = {need}, more "
                                f"than for the largest file and vocab ({self.ws.size})")
            return
        ws = self.ws.place(size=max(need, 1))
        status = self.call("tok_load", self.tok, fp, len(data), vocab, ws, need) & U32
        text = emu.read_cstr(self.call("tok_error_text", status), 4096)
        out.message = text.decode("utf-8", "replace")
        out.problems += line_problems("tok_error_text", text)
        want = tokenizer_status(data, vocab)
        if need == 0 and want in (TC["TOK_OK"],):
            out.problems.append("tok_workspace_bytes is 0 for a file that loads")
        if status != want:
            out.problems.append(f"tok_load gave {status}, tokenizer.inc's rules say {want}")
        # the reference reader: reads every file tok_load loads, and tok_load loads every
        # file it reads whose pieces fit max_token_length
        try:
            ref = reftok.read_tokenizer(data, vocab) if 1 <= vocab <= TC["TOK_MAX_VOCAB"] else None
        except reftok.TokenizerFormatError:
            ref = None
        if status == 0 and ref is None:
            out.problems.append("tok_load loaded a file the reference cannot read")
        mtl = struct.unpack_from("<i", data)[0] if len(data) >= 4 else 0   # as in the file
        if ref is not None and status != 0 and 1 <= mtl <= TC["TOK_MAX_TOKEN_LEN"] \
                and all(len(p) <= mtl for p in ref.pieces):
            out.problems.append(f"tok_load refused ({status}) a file the reference reads")
        if status != 0:
            out.verdict = f"refused: code {status}"
            if self.call("tok_encode", self.tok, self.text.place(b"a"), 1, 1,
                         self.out.place(size=16), 4) & U32 != (-TC["TOK_E_NOT_LOADED"]) & U32:
                out.problems.append("tok_encode accepted a tokenizer that did not load")
            return
        out.verdict = "loaded"
        if ref is not None:
            self._use(out, ref, rng)

    def _use(self, out: Outcome, ref: reftok.Tokenizer, rng: Random) -> None:
        emu = self.emu
        v = ref.vocab_size
        texts = list(FIXED_TEXTS[:4]) + [rng.choice(FIXED_TEXTS)]
        texts += [rng.randbytes(rng.randrange(1, 24)) for _ in range(2)]
        texts.append(b"".join(rng.choice(ref.pieces[:64] or [b"x"]) for _ in range(rng.randrange(1, 6))))
        for text in texts:
            bos, eos = rng.random() < 0.8, rng.random() < 0.2
            flags = (TC["TOK_ADD_BOS"] if bos else 0) | (TC["TOK_ADD_EOS"] if eos else 0)
            tp = self.text.place(text)
            cap = len(text) + 3
            op = self.out.place(size=4 * cap)
            n = struct.unpack("<i", struct.pack("<I", self.call("tok_encode", self.tok, tp, len(text),
                                                                flags, op, cap) & U32))[0]
            want = encode_expectation(ref, text, bos, eos)
            if n < 0:
                msg = emu.read_cstr(self.call("tok_error_text", n & U32), 4096)
                out.problems += line_problems(f"tok_error_text({n})", msg)
                if not isinstance(want, set) or -n not in want:
                    out.problems.append(f"tok_encode({text!r}) = {n}, the reference gives {want}")
                continue
            ids = list(struct.unpack(f"<{n}i", emu.read(op, 4 * n)))
            if isinstance(want, set) or ids != want:
                out.problems.append(f"tok_encode({text!r}) = {ids}, the reference gives {want}")
                continue
            if n >= 1:        # one slot short: refused, nothing written past the capacity
                op = self.out.place(size=4 * (n - 1))
                r = self.call("tok_encode", self.tok, tp, len(text), flags, op, n - 1) & U32
                if r != (-TC["TOK_E_CAPACITY"]) & U32:
                    out.problems.append(f"tok_encode({text!r}) with capacity {n - 1} < {n} gave {r}")
        for _ in range(8):
            tok = rng.choice((rng.randrange(v), rng.randrange(v), 0, 1, 2, v - 1, v, U32))
            prev = rng.choice((reftok.BOS, 0, tok & 0xFFFF, rng.randrange(v)))
            emu.write(self.len_slot, b"\xAA" * 8)
            p = self.call("tok_decode", self.tok, prev, tok, self.len_slot)
            (n,) = struct.unpack("<Q", emu.read(self.len_slot, 8))
            if n > TC["TOK_MAX_TOKEN_LEN"]:
                out.problems.append(f"tok_decode({prev}, {tok}) length {n}")
                continue
            got = emu.read(p, n)
            want = ref.decode(prev, tok) if tok < v else b""
            if got != want:
                out.problems.append(f"tok_decode({prev}, {tok}) = {got!r}, the reference gives {want!r}")
