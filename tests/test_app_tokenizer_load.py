"""app_asm/tokenizer.s on bad and unusual input: every malformed file gets its own status
code and no fault; unusual but valid vocabs (tied scores, NaN/inf scores, duplicate pieces,
embedded NULs, empty pieces, no " " piece, too few ids) encode and decode as the oracle does.

Under unicorn every buffer ends at a guard page (see test_app_tokenizer.py's harness), so a
read past the file's end or a write past the workspace faults. The expected status of a
file comes from `expected_status`, the validation order tokenizer.inc documents, written
again here in Python; where it says the file is fine, the oracle (tests/reference) must
read it too and the asm's ids must equal the oracle's.
"""
from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest

from tests.reference import tokenizer as reftok
from tests.test_app_tokenizer import (C, AsmTokenizer, EmuMachine, NativeMachine, _ref,
                                      random_bytes_cases, ref_encode)

OK = C["TOK_OK"]
E = {k[len("TOK_E_"):]: v for k, v in C.items() if k.startswith("TOK_E_") and k != "TOK_E_LAST"}


def expected_status(data: bytes, vocab_size: int, file_size: int | None = None) -> int:
    """tok_load's status by tokenizer.inc's rules (workspace assumed big enough)."""
    size = len(data) if file_size is None else file_size
    v = vocab_size & 0xFFFF_FFFF
    if not 1 <= v <= C["TOK_MAX_VOCAB"]:
        return E["VOCAB_SIZE"]
    if size > C["TOK_MAX_FILE"]:
        return E["FILE_SIZE"]
    if size < 4:
        return E["HEADER"]
    (mtl,) = struct.unpack_from("<i", data, 0)
    if not 1 <= mtl <= C["TOK_MAX_TOKEN_LEN"]:
        return E["MAX_LEN"]
    off = 4
    for _ in range(v):
        if size - off < 8:
            return E["TRUNCATED"]
        (length,) = struct.unpack_from("<i", data, off + 4)
        off += 8
        if length < 0:
            return E["NEGATIVE_LEN"]
        if length > mtl:
            return E["LONG_PIECE"]
        if length > size - off:
            return E["TRUNCATED"]
        off += length
    return OK


def entry_offsets(data: bytes, n: int) -> list[int]:
    """File offsets of the first n entries (score field) of a valid file."""
    out, off = [], 4
    for _ in range(n):
        out.append(off)
        (length,) = struct.unpack_from("<i", data, off + 4)
        off += 8 + length
    return out


def check_against_oracle(asm: AsmTokenizer, data: bytes, vocab_size: int, rng: random.Random,
                         texts: int = 6) -> None:
    """After a successful load: the oracle reads the same file, and encode/decode agree."""
    ref = reftok.read_tokenizer(data, vocab_size)
    cases = [b"Once upon a time", "héllo 你好 😀".encode()] + random_bytes_cases(rng.randrange(1 << 30), texts)
    for text in cases:
        assert asm.encode(text) == ref_encode(ref, text), text
    for _ in range(8):
        t = rng.randrange(vocab_size)
        prev = rng.choice([reftok.BOS, t, 0])
        assert asm.decode(prev, t) == ref.decode(prev, t)


@pytest.fixture(scope="module")
def emu_tok():
    return AsmTokenizer(EmuMachine())


@pytest.fixture(scope="module")
def tok512():
    return _ref("tok512")


# ------------------------------------------------------------------------------ sizes

def test_workspace_bytes(emu_tok):
    wb = emu_tok.workspace_bytes
    assert wb(1000, 0) == 0
    assert wb(1000, C["TOK_MAX_VOCAB"] + 1) == 0
    assert wb(1000, 0xFFFF_FFFF) == 0
    assert wb(C["TOK_MAX_FILE"] + 1, 512) == 0
    assert wb(2**64 - 1, 512) == 0
    a, b, c = wb(6227, 512), wb(6228, 512), wb(6227, 513)
    assert 0 < a <= b and a < c
    assert a >= 6227 + 20 * 512
    assert wb(433869, 32000) < 6 << 20
    assert wb(C["TOK_MAX_FILE"], C["TOK_MAX_VOCAB"]) > C["TOK_MAX_FILE"]


def test_workspace_too_small_or_null(emu_tok, tok512):
    data, ref = tok512
    need = emu_tok.workspace_bytes(len(data), 512)
    assert emu_tok.load(data, 512, workspace=need - 1) == E["WORKSPACE"]
    assert emu_tok.load(data, 512, workspace=0) == E["WORKSPACE"]
    assert emu_tok.load(data, 512, workspace=need, null_workspace=True) == E["WORKSPACE"]
    assert emu_tok.load(data, 512, workspace=1 << 40, null_workspace=True) == E["WORKSPACE"]


def test_workspace_any_alignment(emu_tok, tok512):
    """The workspace is placed so it ends at a guard page; its start then takes every
    alignment mod 16. Exactly tok_workspace_bytes is enough for each."""
    data, ref = tok512
    need = emu_tok.workspace_bytes(len(data), 512)
    for extra in range(16):
        assert emu_tok.load(data, 512, workspace=need + extra) == OK
        assert emu_tok.encode(b"Once upon a time, hi") == ref.encode(b"Once upon a time, hi")


# ------------------------------------------------------------------------------ header, vocab_size

def test_header(emu_tok, tok512):
    data, _ = tok512
    for size in range(4):
        assert emu_tok.load(data[:size], 512) == E["HEADER"]
    for mtl, want in [(0, "MAX_LEN"), (-1, "MAX_LEN"), (-2**31, "MAX_LEN"), (2**31 - 1, "MAX_LEN"),
                      (C["TOK_MAX_TOKEN_LEN"] + 1, "MAX_LEN"), (1, "LONG_PIECE"), (6, "LONG_PIECE"),
                      (7, None), (C["TOK_MAX_TOKEN_LEN"], None)]:
        bad = struct.pack("<i", mtl) + data[4:]
        assert emu_tok.load(bad, 512) == (E[want] if want else OK), mtl
        assert expected_status(bad, 512) == (E[want] if want else OK)


def test_vocab_size(emu_tok, tok512):
    data, ref = tok512
    for v, want in [(0, "VOCAB_SIZE"), (-1, "VOCAB_SIZE"), (-512, "VOCAB_SIZE"),
                    (C["TOK_MAX_VOCAB"] + 1, "VOCAB_SIZE"), (513, "TRUNCATED"), (100000, "TRUNCATED"),
                    (C["TOK_MAX_VOCAB"], "TRUNCATED")]:
        assert emu_tok.load(data, v) == E[want], v
    for v in (1, 2, 3, 259, 511, 512):        # fewer entries than the file holds: the rest ignored
        assert emu_tok.load(data, v) == OK
        sub = reftok.read_tokenizer(data, v)
        for t in (0, v - 1, v, v + 7):
            assert emu_tok.decode(5, t) == (sub.decode(5, t) if t < v else b"")


def test_file_size_too_large(emu_tok, tok512):
    """A file size over TOK_MAX_FILE is refused before anything is read (the buffer given is
    much smaller: a read would fault)."""
    data, _ = tok512
    assert emu_tok.load(data[:16], 512, file_size=C["TOK_MAX_FILE"] + 1) == E["FILE_SIZE"]
    assert emu_tok.load(data[:16], 512, file_size=2**64 - 1) == E["FILE_SIZE"]


# ------------------------------------------------------------------------------ truncation, lengths

def test_truncated_every_cut(emu_tok, tok512):
    data, _ = tok512
    cuts = sorted(set(range(0, 300)) | set(range(300, len(data), 7)) | set(range(len(data) - 30, len(data))))
    for cut in cuts:
        want = expected_status(data[:cut], 512)
        assert want != OK
        got = emu_tok.load(data[:cut], 512)
        assert got == want, cut
        if want in (E["TRUNCATED"], E["NEGATIVE_LEN"]):
            with pytest.raises(reftok.TokenizerFormatError):
                reftok.read_tokenizer(data[:cut], 512)
    assert emu_tok.load(data, 512) == OK


def test_truncated_32000(emu_tok):
    data, _ = _ref("tok32000")
    rng = random.Random(3)
    for cut in [0, 3, 4, 11, 12, 13, len(data) - 1] + [rng.randrange(len(data)) for _ in range(5)]:
        assert emu_tok.load(data[:cut], 32000) == expected_status(data[:cut], 32000) != OK


def test_length_mutations(emu_tok, tok512):
    data, ref = tok512
    offsets = entry_offsets(data, 512)
    rng = random.Random(11)
    for i in (0, 1, 3, 258, 300, 510, 511):
        off = offsets[i]
        for length in (-1, -2, -2**31, 2**31 - 1, 2**31 - 8, 8, 1024, 7, 0, 1,
                       len(ref.pieces[i]) + 1, len(ref.pieces[i]) - 1):
            bad = bytearray(data)
            struct.pack_into("<i", bad, off + 4, length)
            for header in (None, C["TOK_MAX_TOKEN_LEN"]):
                if header is not None:
                    struct.pack_into("<i", bad, 0, header)
                want = expected_status(bytes(bad), 512)
                got = emu_tok.load(bytes(bad), 512)
                assert got == want, (i, length, header)
                if got == OK:
                    check_against_oracle(emu_tok, bytes(bad), 512, rng, texts=2)


@pytest.mark.parametrize("machine", ["unicorn", "native"])
def test_fuzz_mutated_files(machine, tok512):
    """Random byte flips (biased to the header and the length fields), truncations and
    vocab sizes: the status is the documented one, and whatever loads encodes and decodes as
    the oracle does (mutations make NaN/inf scores, duplicates, NULs inside pieces)."""
    data, _ = tok512
    asm = AsmTokenizer(EmuMachine() if machine == "unicorn" else NativeMachine())
    offsets = entry_offsets(data, 512)
    rng = random.Random(2024)
    loaded = 0
    iterations = 250 if machine == "unicorn" else 1500
    for it in range(iterations):
        bad = bytearray(data)
        for _ in range(rng.randrange(1, 6)):
            r = rng.random()
            if r < 0.15:
                pos = rng.randrange(4)
            elif r < 0.55:
                pos = rng.choice(offsets) + rng.randrange(8)      # a score or length byte
            else:
                pos = rng.randrange(len(bad))
            bad[pos] = rng.choice([0, 0xFF, 0x80, 0x7F, rng.randrange(256), bad[pos] ^ (1 << rng.randrange(8))])
        if rng.random() < 0.2:
            bad = bad[:rng.randrange(len(bad) + 1)]
        v = rng.choice([512, 512, 512, 511, 513, 300, 259, 1, 3])
        bad = bytes(bad)
        want = expected_status(bad, v)
        got = asm.load(bad, v)
        assert got == want, (it, v)
        if got == OK:
            loaded += 1
            check_against_oracle(asm, bad, v, rng, texts=3)
    assert loaded > iterations // 5


# ------------------------------------------------------------------------------ state

def test_not_loaded():
    asm = AsmTokenizer(EmuMachine())                 # a zeroed struct: never loaded
    assert asm.encode(b"hi") == -E["NOT_LOADED"]
    assert asm.decode(1, 5) == b""
    assert asm.piece_id(b" ") == -1
    data, ref = _ref("tok512")
    assert asm.load(data, 512) == OK
    assert asm.encode(b"hi") == ref.encode(b"hi")
    assert asm.load(data[:100], 512) == E["TRUNCATED"]   # a failed load leaves it unloaded
    assert asm.encode(b"hi") == -E["NOT_LOADED"]
    assert asm.decode(1, 5) == b""
    assert asm.piece_id(b" ") == -1


def test_error_texts(emu_tok):
    emu = emu_tok.m.emu

    def text(code):
        return emu.read_cstr(emu.call("tok_error_text", code & 0xFFFF_FFFF)).decode("utf-8")

    seen = set()
    for code in range(C["TOK_E_LAST"] + 1):
        msg = text(code)
        assert msg.startswith("tokenizer: ") and "\n" not in msg and len(msg) < 100
        assert msg not in seen
        seen.add(msg)
        assert text(-code) == msg
    generic = text(C["TOK_E_LAST"] + 1)
    assert generic not in seen and "unknown" in generic
    for code in (99, -99, 2**31 - 1, -2**31, 0x7FFF_0000):
        assert text(code) == generic
    assert "workspace" in text(E["WORKSPACE"]) and "max_token_length" in text(E["MAX_LEN"])


# ------------------------------------------------------------------------------ text limits

def test_text_limits(emu_tok, tok512):
    data, ref = tok512
    assert emu_tok.load(data, 512) == OK
    n = C["TOK_MAX_TEXT"]
    # the longest text: 0xFF bytes never merge, so this is cheap even under unicorn
    ids = emu_tok.encode(b"\xff" * n, capacity=n + 2)
    assert ids == [reftok.BOS, ref.lookup(b" ")] + [0xFF + 3] * n
    assert emu_tok.encode(b"\xff" * n, capacity=n + 1) == -E["CAPACITY"]
    assert emu_tok.encode(b"\xff" * (n + 1)) == -E["TEXT_TOO_LONG"]
    assert emu_tok.encode(b"a" * (n + 1000), capacity=16) == -E["TEXT_TOO_LONG"]
    # a NUL ends the text, however long the length says it is
    text = b"hello\x00" + b"x" * (n + 10)
    assert emu_tok.encode(text, capacity=16) == ref.encode(b"hello")
    assert emu_tok.encode(b"hello\x00", length=2**62) == ref.encode(b"hello")
    assert emu_tok.encode(b"", length=0, capacity=1) == [reftok.BOS]
    assert emu_tok.encode(b"", bos=False, capacity=0) == []


# ------------------------------------------------------------------------------ unusual vocabs

def base_pieces() -> list[bytes]:
    return [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]


def load_synthetic(asm: AsmTokenizer, pieces: list[bytes], scores, mtl: int | None = None):
    tok = reftok.Tokenizer(list(pieces), np.asarray(scores, dtype=np.float32),
                           max_token_length=mtl or max(1, max(len(p) for p in pieces)))
    data = tok.to_bytes()
    assert asm.load(data, len(pieces)) == OK
    return reftok.read_tokenizer(data, len(pieces))


def test_tied_scores(emu_tok):
    """Many pairs with equal scores: the leftmost must merge first, as in llama2.c."""
    rng = random.Random(5)
    alphabet = [b"a", b"b", b"c", b" "]
    pieces = base_pieces() + alphabet
    for _ in range(40):
        p = rng.choice(pieces[259:]) + rng.choice(pieces[259:])
        if p not in pieces and len(p) <= 6:
            pieces.append(p)
    for round_ in range(3):
        scores = [0.0] * 259 + [float(rng.choice([0, -1, -2])) for _ in pieces[259:]]
        ref = load_synthetic(emu_tok, pieces, scores)
        for _ in range(60):
            text = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
            assert emu_tok.encode(text) == ref.encode(text), (round_, text)


def test_special_scores(emu_tok):
    """NaN never merges (C's > is false), nor does a score <= -1e10; +inf and the first float
    above -1e10 do."""
    pieces = base_pieces() + [b" ", b"a", b"b", b"c", b"ab", b"bc", b"ca", b" a", b"abc", b"cab"]
    above = float(np.nextafter(np.float32(-1e10), np.float32(0)))
    for specials in ([math.nan, 0, -1e10, math.inf, above, -math.inf],
                     [-1e10, -1e10, above, math.nan, -1e30, 1e30],
                     [math.inf, math.inf, math.nan, math.nan, 0.0, -0.0]):
        scores = [0.0] * 259 + [0.0] * 4 + list(specials)
        ref = load_synthetic(emu_tok, pieces, scores)
        for text in (b"abc", b"cab", b"abcabc", b"a b c", b"ccab", b"ab ab", b"bca", b"cabcab"):
            assert emu_tok.encode(text) == ref.encode(text), (specials, text)


def test_duplicates_nuls_and_empty_pieces(emu_tok):
    """Duplicate pieces answer with the lowest id; a piece counts up to its first NUL (as a
    C string); empty pieces exist."""
    pieces = base_pieces() + [b" ", b"a", b"b", b"ab", b"ab", b"a\x00zz", b"", b"b\x00", b"ba",
                              b"\x00", b"aba", b"ab"]
    scores = [0.0] * 259 + [-5.0, -5.0, -5.0, -3.0, -1.0, 2.0, 0.0, 1.0, -2.0, 3.0, -4.0, 9.0]
    ref = load_synthetic(emu_tok, pieces, scores)
    assert ref.duplicates
    for p in (b"ab", b"a", b"b", b"", b"ba", b"aba", b"zz"):
        assert emu_tok.piece_id(p) == ref.lookup(p), p
    for text in (b"ab", b"aba", b"abab", b"ba", b"bab", b"a", b"b a", b"abba", b"aab"):
        assert emu_tok.encode(text) == ref.encode(text), text
    for t in range(len(pieces)):
        for prev in (reftok.BOS, 0):
            assert emu_tok.decode(prev, t) == ref.decode(prev, t), t


def test_decode_byte_pieces(emu_tok):
    """<0xXX> with either case becomes the raw byte (also after BOS strips a space); near
    misses stay as they are."""
    extra = [b"<0xab>", b"<0xAb>", b" <0x41>", b"<0x4G>", b"<0x41", b"<0x411>", b"<1x41>",
             b"<0X41>", b"(0x41>", b"<0x41)", b"<0x\x0041>", b" ", b"  x"]
    pieces = base_pieces() + extra
    ref = load_synthetic(emu_tok, pieces, [0.0] * len(pieces))
    for t in range(len(pieces)):
        for prev in (reftok.BOS, 2):
            assert emu_tok.decode(prev, t) == ref.decode(prev, t), pieces[t]
    assert emu_tok.decode(reftok.BOS, 259 + 2) == b"A"
    assert emu_tok.decode(2, 259 + 2) == b" <0x41>"
    assert emu_tok.decode(2, 3 + 0x00) == b"\x00"


def test_vocab_without_space_or_ids(emu_tok):
    # no " " piece: non-empty text cannot get its dummy prefix
    pieces = base_pieces() + [b"a", b"b"]
    ref = load_synthetic(emu_tok, pieces, [0.0] * len(pieces))
    assert emu_tok.encode(b"ab") == -E["NO_SPACE"] == ref_encode(ref, b"ab")
    assert emu_tok.encode(b"") == [reftok.BOS]
    assert emu_tok.encode(b"", bos=False, eos=True) == [reftok.EOS]
    # too few ids for byte fallback, BOS or EOS
    small = [b"<unk>", b" ", b"a", b"b"]
    ref = load_synthetic(emu_tok, small, [0.0] * 4)
    assert emu_tok.encode(b"ab") == ref_encode(ref, b"ab")              # all found: fine
    assert emu_tok.encode(b"abc") == -E["BAD_ID"] == ref_encode(ref, b"abc")
    assert emu_tok.encode(b"ab", eos=True) == ref_encode(ref, b"ab", eos=True)
    ref = load_synthetic(emu_tok, [b" "], [0.0])
    assert emu_tok.encode(b"  ", bos=False) == [0, 0, 0] == ref.encode(b"  ", bos=False)
    assert emu_tok.encode(b" ", bos=True) == -E["BAD_ID"]
    ref = load_synthetic(emu_tok, [b" ", b"x"], [0.0, 0.0])
    assert emu_tok.encode(b"x", bos=True) == [1, 0, 1] == ref.encode(b"x")
    assert emu_tok.encode(b"x", bos=False, eos=True) == -E["BAD_ID"]
