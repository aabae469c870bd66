"""app_asm/tokenizer.s against the Python oracle (tests/reference/tokenizer.py), on the real vocabs.

The asm runs under unicorn (peasm.runners.emu: guard pages after every buffer, callee-saved
registers checked on return) and natively (peasm.runners.native, the host CPU). Every buffer
the asm is given (file, workspace, text, output) ends flush against an unmapped page, so a
read or write one byte too far faults instead of passing.

This file holds the harness (also used by test_app_tokenizer_load.py) and the tests on
tok512.bin (512 pieces) and tokenizer.bin (32000 pieces): token ids must equal llama2.c's
encode for ASCII, accented text, CJK, emoji (byte fallback), whitespace runs, leading and
trailing spaces, empty text, NULs and random bytes; decoding every id after BOS and after
another token must equal llama2.c's decode.
"""
from __future__ import annotations

import random
import re
import struct
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import pytest

from peasm.linker import link
from peasm.runners.emu import Emu
from tests.reference import tokenizer as reftok
from tests.support import REFERENCE, Area, model_file, require, require_tool

REPO = Path(__file__).resolve().parent.parent
# the tokenizer.bin loader and the SentencePiece core it fills (index + decode, encoder)
TOKENIZER_SOURCES = [REPO / "app_asm" / s for s in ("tokenizer.s", "tok_index.s", "tok_encode.s")]
TOKENIZER_INC = REPO / "app_asm" / "tokenizer.inc"

# The .inc is the one description of the constants: read them from there.
C = {name: int(value, 0) for name, value in
     re.findall(r"^\.equ\s+(\w+),\s*(0x[0-9A-Fa-f]+|\d+)\b", TOKENIZER_INC.read_text(), re.M)}
ERROR_NAMES = {v: k for k, v in C.items() if k.startswith("TOK_E_") and k != "TOK_E_LAST"}

# A test-only driver: decodes ids 0..count-1 after a fixed previous token in one call, so
# checking all 32000 ids under unicorn is one emulator trip, not 32000.
DRIVER_S = r"""
.section .text
.global decode_all
.extern tok_decode
# decode_all(rcx = Tokenizer*, edx = previous token, r8d = count, r9 = u32 lengths[count],
#            [rsp+40] = blob) -> rax = bytes written to blob (the pieces one after another)
decode_all:
    push rbx
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    sub rsp, 48
    mov rbx, rcx
    mov r12d, edx
    mov r13d, r8d
    mov r14, r9
    mov r15, [rsp + 144]
    xor esi, esi
    xor edi, edi
.Lnext:
    cmp esi, r13d
    jae .Ldone
    mov rcx, rbx
    mov edx, r12d
    mov r8d, esi
    lea r9, [rsp + 32]
    call tok_decode
    mov rcx, [rsp + 32]
    mov [r14 + rsi * 4], ecx
    xor edx, edx
.Lcopy:
    cmp rdx, rcx
    jae .Lcopied
    movzx r8d, byte ptr [rax + rdx]
    mov [r15 + rdi], r8b
    inc rdi
    inc rdx
    jmp .Lcopy
.Lcopied:
    inc esi
    jmp .Lnext
.Ldone:
    mov rax, rdi
    add rsp, 48
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbx
    ret
"""


@lru_cache(maxsize=None)
def tokenizer_image(backend: str = "keystone", driver: bool = True):
    """tokenizer.s and its core (+ the test driver) linked; cached per process."""
    with tempfile.TemporaryDirectory() as tmp:
        sources = list(TOKENIZER_SOURCES)
        if driver:
            drv = Path(tmp) / "decode_all.s"
            drv.write_text(DRIVER_S)
            sources.append(drv)
        return link(sources, "tok_load", backend=backend)


def s32(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v & 0x8000_0000 else v


# ------------------------------------------------------------------------------ machines

class EmuMachine:
    """Unicorn: guard-paged buffers, ABI checked on every call."""
    name = "unicorn"

    def __init__(self):
        self.emu = Emu(tokenizer_image())

    def alloc(self, size: int) -> int:
        return self.emu.alloc(size, align=1)          # end flush against the guard page

    def call(self, fn: str, *args: int) -> int:
        return self.emu.call(fn, *args)

    def read(self, address: int, size: int) -> bytes:
        return self.emu.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.emu.write(address, data)


class NativeMachine:
    """The host CPU: GuardedBuffers, callee-saved registers checked on every call."""
    name = "native"

    def __init__(self):
        from peasm.runners import native
        ok, why = native.supported()
        require(ok, why)
        self.native = native
        self.image = native.NativeImage(tokenizer_image())
        self._buffers = []

    def alloc(self, size: int) -> int:
        buf = self.native.GuardedBuffer(size, align=1)
        self._buffers.append(buf)
        return buf.address

    def call(self, fn: str, *args: int) -> int:
        return self.native.call(self.image.address(fn), *args, where=self.image.where).rax

    def read(self, address: int, size: int) -> bytes:
        return self.native.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.native.write_memory(address, data)


class AsmTokenizer:
    """One Tokenizer struct + workspace on a machine, driven like the app will drive it."""

    def __init__(self, machine, *, max_file: int = 1 << 19, max_workspace: int = 6 << 20):
        self.m = machine
        self.struct_area = Area(machine, C["TOK_SIZE"])
        self.tok = self.struct_area.place(bytes(C["TOK_SIZE"]))
        self.file_area = Area(machine, max_file)
        self.ws_area = Area(machine, max_workspace)
        self.text_area = Area(machine, C["TOK_MAX_TEXT"] + 4096)
        self.out_area = Area(machine, 4 * (C["TOK_MAX_TEXT"] + 16))
        self.len_slot = Area(machine, 8).place(size=8)
        self.vocab_size = 0
        self.max_token_length = 1

    def workspace_bytes(self, file_size: int, vocab_size: int) -> int:
        return self.m.call("tok_workspace_bytes", file_size, vocab_size)

    def load(self, data: bytes, vocab_size: int, *, workspace: int | None = None,
             file_size: int | None = None, null_workspace: bool = False) -> int:
        """tok_load; returns the status. `workspace` = bytes given (default: what
        tok_workspace_bytes asks), placed flush against the guard page."""
        file_size = len(data) if file_size is None else file_size
        fp = self.file_area.place(data)
        need = self.workspace_bytes(file_size, vocab_size & 0xFFFF_FFFF)
        ws_size = need if workspace is None else workspace
        if ws_size > self.ws_area.size and not null_workspace:
            self.ws_area = Area(self.m, ws_size)
        ws = 0 if null_workspace else self.ws_area.place(size=ws_size)
        status = self.m.call("tok_load", self.tok, fp, file_size, vocab_size & 0xFFFF_FFFF, ws, ws_size)
        self.vocab_size = vocab_size
        if len(data) >= 4:
            self.max_token_length = max(1, min(struct.unpack_from("<i", data)[0], C["TOK_MAX_TOKEN_LEN"]))
        return s32(status)

    def encode(self, text: bytes, bos: bool = True, eos: bool = False, *,
               capacity: int | None = None, length: int | None = None, flags: int | None = None):
        """Token ids, or the negative status tok_encode returned."""
        tp = self.text_area.place(text)
        capacity = len(text) + 3 if capacity is None else capacity
        out = self.out_area.place(size=4 * capacity)
        if flags is None:
            flags = (C["TOK_ADD_BOS"] if bos else 0) | (C["TOK_ADD_EOS"] if eos else 0)
        n = s32(self.m.call("tok_encode", self.tok, tp, len(text) if length is None else length,
                            flags, out, capacity))
        if n < 0:
            return n
        assert n <= capacity
        return list(struct.unpack(f"<{n}i", self.m.read(out, 4 * n)))

    def decode(self, prev: int, token: int) -> bytes:
        self.m.write(self.len_slot, b"\xAA" * 8)
        p = self.m.call("tok_decode", self.tok, prev & 0xFFFF_FFFF, token, self.len_slot)
        (n,) = struct.unpack("<Q", self.m.read(self.len_slot, 8))
        assert n <= C["TOK_MAX_TOKEN_LEN"]
        return self.m.read(p, n)

    def decode_all(self, prev: int, count: int) -> list[bytes]:
        lens_at = Area(self.m, 4 * count).place(size=4 * count)
        size = self.max_token_length * count + 64
        blob = Area(self.m, size).place(size=size)
        total = self.m.call("decode_all", self.tok, prev & 0xFFFF_FFFF, count, lens_at, blob)
        lens = struct.unpack(f"<{count}I", self.m.read(lens_at, 4 * count))
        data = self.m.read(blob, total)
        out, pos = [], 0
        for n in lens:
            out.append(data[pos:pos + n])
            pos += n
        assert pos == total
        return out

    def piece_id(self, piece: bytes) -> int:
        p = self.text_area.place(piece)
        return s32(self.m.call("tok_piece_id", self.tok, p, len(piece)))


def ref_encode(ref: reftok.Tokenizer, text: bytes, bos: bool = True, eos: bool = False):
    """The oracle's ids, or the status the asm must give where llama2.c would misbehave,
    checked in tokenizer.inc's order: BOS id, " " piece, byte-fallback ids, EOS id."""
    if bos and ref.vocab_size <= reftok.BOS:
        return -C["TOK_E_BAD_ID"]
    try:
        ids = ref.encode(text, bos=bos, eos=eos)
    except ValueError:                   # no " " piece for the dummy prefix
        return -C["TOK_E_NO_SPACE"]
    except IndexError:                   # a byte-fallback id beyond the vocab
        return -C["TOK_E_BAD_ID"]
    if eos and ref.vocab_size <= reftok.EOS:
        return -C["TOK_E_BAD_ID"]
    return ids


# ------------------------------------------------------------------------------ fixtures

VOCABS = {"tok512": ("tok512.bin", 512), "tok32000": ("tokenizer.bin", 32000)}


@lru_cache(maxsize=None)
def _ref(name: str) -> tuple[bytes, reftok.Tokenizer]:
    fname, n = VOCABS[name]
    data = model_file(fname).read_bytes()
    return data, reftok.read_tokenizer(data, n)


@pytest.fixture(scope="module", params=["tok512", "tok32000"])
def vocab(request):
    """(name, file bytes, reference, asm tokenizer loaded under unicorn)."""
    name = request.param
    data, ref = _ref(name)
    asm = AsmTokenizer(EmuMachine())
    assert asm.load(data, ref.vocab_size) == 0
    return name, data, ref, asm


@pytest.fixture(scope="module", params=["tok512", "tok32000"])
def native_vocab(request):
    name = request.param
    data, ref = _ref(name)
    asm = AsmTokenizer(NativeMachine())
    assert asm.load(data, ref.vocab_size) == 0
    return name, data, ref, asm


# ------------------------------------------------------------------------------ texts

STORY = (REFERENCE / "stories260K_greedy.txt")

TEXTS = [
    "Once upon a time", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
    "héllo wörld", "Ünïcödé ßtraße, naïve café", "你好世界", "日本語のテキストです", "Привет, мир",
    "مرحبا بالعالم", "😀🚀", "mixed 中文 and English 😀 text", "e\u0301 combining", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ℌ𝔢𝔩𝔩𝔬",
    "a   b\t\tc\n\n", "  leading", "trailing  ", "   ", " ", "\n", "\t", "", "x",
    "<0x41> <s> </s> <unk>", "\x7f\x01\x02 ctrl", "line one\nline two\r\n", "1234567890 3.14159",
    "I'm don't won't can't", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "...!!!???", "A" * 100,
    "Lily's mom said, \"Lily, let's go to the park.\"",
]


def text_cases() -> list[bytes]:
    out = [t.encode() for t in TEXTS]
    out += [b"ab\x00cd", b"\x00", b"\x00abc", "héllo\x00wörld".encode()]          # NUL ends the text
    out += [b"\xff\xfe", b"\x80\x80\x80\x80\x80\x80", b"\xc3", b"\xe4\xbd", b"\xf0\x9f\x98",
            b"\xf8\x88\x80\x80\x80", b"a\x80\x80\x80\x80\x80b", b"\xc3\xa9\xa9\xa9\xa9",
            b"\xed\xa0\x80", "😀".encode()[:3] + b"x"]                            # invalid UTF-8
    return out


def random_bytes_cases(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randrange(0, 48)
        kind = rng.randrange(3)
        if kind == 0:
            out.append(bytes(rng.randrange(256) for _ in range(n)))
        elif kind == 1:   # continuation-heavy: runs longer than 4, stray leads
            out.append(bytes(rng.choice([0x80, 0x9F, 0xBF, 0xC3, 0xE2, 0xF0, 0xFF, 0x61, 0x20])
                             for _ in range(n)))
        else:             # mostly ASCII with some high bytes
            out.append(bytes(rng.choice(b"abcdefghij klmnop.,\n\t\x00\xc3\xa9") for _ in range(n)))
    return out


def piece_soup_cases(ref: reftok.Tokenizer, seed: int, count: int) -> list[bytes]:
    """Concatenations of real pieces: every kind of merge the vocab knows."""
    rng = random.Random(seed)
    pieces = [p for p in ref.pieces[3:] if p and not p.startswith(b"<0x")]
    return [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(count)]


# ------------------------------------------------------------------------------ tests

def test_keystone_and_binutils_agree():
    """The cross-check the manifest test does, on tokenizer.s itself: `as` must encode every
    instruction as keystone did."""
    require_tool("as", "ld", "objdump")
    ks = tokenizer_image("keystone", driver=False)
    gas = tokenizer_image("gas", driver=False)
    assert [s.name for s in ks.sections] == [s.name for s in gas.sections]
    for a, b in zip(ks.sections, gas.sections):
        assert a.data == b.data, f"{a.name} differs between keystone and binutils"
        assert a.vsize == b.vsize
    assert ks.relocs == gas.relocs
    assert [(s.name, s.rva) for s in ks.symbols] == [(s.name, s.rva) for s in gas.symbols]


def test_exports():
    image = tokenizer_image(driver=False)
    for name in ("tok_workspace_bytes", "tok_load", "tok_encode", "tok_decode", "tok_piece_id",
                 "tok_error_text"):
        assert image.symbol(name).is_global


def test_encode_texts(vocab):
    name, _, ref, asm = vocab
    for text in text_cases():
        assert asm.encode(text) == ref_encode(ref, text), (name, text)


def test_encode_story(vocab):
    """A whole paragraph of the reference story (hundreds of merges)."""
    name, _, ref, asm = vocab
    require(STORY.is_file(), f"reference text {STORY}")
    text = STORY.read_bytes()
    assert asm.encode(text) == ref_encode(ref, text)


def test_encode_flags(vocab):
    name, _, ref, asm = vocab
    for text in (b"", b"Once upon a time", "héllo 😀".encode()):
        for bos in (False, True):
            for eos in (False, True):
                assert asm.encode(text, bos, eos) == ref_encode(ref, text, bos, eos), (text, bos, eos)
    # unknown flag bits are ignored; TOK_NO_PREFIX drops the dummy prefix
    assert asm.encode(b"hi", flags=0xFFFF_FFF8) == ref.encode(b"hi", bos=False, eos=False)
    for text in (b"hi", b"Once upon"):
        want = [ref.lookup(bytes([c])) for c in text]      # the groups, no dummy prefix
        ref._merge(want)
        assert asm.encode(text, flags=C["TOK_NO_PREFIX"]) == want


def test_encode_random_bytes(vocab):
    name, _, ref, asm = vocab
    for text in random_bytes_cases(seed=len(name), count=150):
        assert asm.encode(text) == ref_encode(ref, text), (name, text)


def test_encode_piece_soup(vocab):
    name, _, ref, asm = vocab
    for text in piece_soup_cases(ref, seed=7, count=150):
        assert asm.encode(text, bos=False) == ref_encode(ref, text, bos=False), (name, text)


def test_encode_capacity_exact(vocab):
    """Capacity = the token count works (the out buffer ends at a guard page); one less is
    TOK_E_CAPACITY and nothing is written."""
    name, _, ref, asm = vocab
    for text in (b"Once upon a time", "你好世界 😀".encode(), b""):
        want = ref.encode(text, bos=True, eos=True)
        assert asm.encode(text, True, True, capacity=len(want)) == want
        assert asm.encode(text, True, True, capacity=len(want) - 1) == -C["TOK_E_CAPACITY"]
    assert asm.encode(b"", False, False, capacity=0) == []


def test_piece_id_every_piece(vocab):
    """tok_piece_id (the lookup encode uses) finds every piece at its own id; the binary
    search also answers -1 for keys between and around the pieces."""
    name, _, ref, asm = vocab
    ids = range(ref.vocab_size) if name == "tok512" else range(0, ref.vocab_size, 37)
    for i in ids:
        assert asm.piece_id(ref.pieces[i]) == ref.lookup(ref.pieces[i]) == i
    for key in (b"", b"\x00", b"\xff" * 8, b"zzzzzzzzzzzz", b"\x01", b"<0x", b" t h e"):
        assert asm.piece_id(key) == ref.lookup(key)


@pytest.mark.parametrize("prev", [reftok.BOS, 1000])
def test_decode_every_id(vocab, prev):
    """Every id after BOS (leading space dropped) and after another token, plus ids past the
    end (empty pieces)."""
    name, _, ref, asm = vocab
    n = ref.vocab_size
    got = asm.decode_all(prev, n + 5)
    want = [ref.decode(prev, t) for t in range(n)] + [b""] * 5
    assert got == want


def test_decode_odd_ids(vocab):
    name, _, ref, asm = vocab
    n = ref.vocab_size
    for token in (n, n + 1, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000):
        assert asm.decode(reftok.BOS, token) == b""
        assert asm.decode(5, token) == b""
    # only the low dword of the token register counts; any previous token works
    assert asm.decode(reftok.BOS, (0xDEAD_BEEF << 32) | 100) == ref.decode(reftok.BOS, 100)
    assert asm.decode(-1, 3 + 0x41) == b"A"
    assert asm.decode(reftok.BOS, reftok.BOS) == ref.decode(reftok.BOS, reftok.BOS)


def test_roundtrip_decode_of_encode(vocab):
    """Decoding llama2.c-style (each piece after its predecessor, the first after BOS) gives
    back the text: the asm's two halves agree with each other, not only with the oracle."""
    name, _, ref, asm = vocab
    for text in text_cases()[:30] + random_bytes_cases(seed=99, count=20):
        text = text.split(b"\0", 1)[0]
        ids = asm.encode(text)
        out, prev = b"", ids[0]
        for t in ids[1:]:
            out += asm.decode(prev, t)
            prev = t
        assert out == text, (name, text)


# ------------------------------------------------------------------------------ native

def test_native_matches(native_vocab):
    """The same machine code on the host CPU: same ids, same pieces."""
    name, _, ref, asm = native_vocab
    cases = text_cases() + random_bytes_cases(seed=5, count=100) + piece_soup_cases(ref, 11, 100)
    for text in cases:
        assert asm.encode(text) == ref_encode(ref, text), (name, text)
    n = ref.vocab_size
    assert asm.decode_all(reftok.BOS, n) == [ref.decode(reftok.BOS, t) for t in range(n)]
    assert asm.decode_all(7, n) == [ref.decode(7, t) for t in range(n)]


def test_native_long_text(native_vocab):
    """A few KB against the oracle, and TOK_MAX_TEXT bytes of prose round-tripping (timed)."""
    name, _, ref, asm = native_vocab
    require(STORY.is_file(), f"reference text {STORY}")
    story = STORY.read_bytes()
    text = (story * 5)[:2000]
    assert asm.encode(text) == ref.encode(text)
    big = (story * (C["TOK_MAX_TEXT"] // len(story) + 1))[:C["TOK_MAX_TEXT"]]
    t0 = time.perf_counter()
    ids = asm.encode(big, capacity=len(big) + 3)
    dt = time.perf_counter() - t0
    assert isinstance(ids, list)
    assert ref.decode_ids(ids[1:], prev=ids[0]) == big
    print(f"\n[tokenizer] native encode of {len(big)} bytes ({name}): {len(ids)} tokens "
          f"in {dt * 1e3:.1f} ms")


def test_load_timing():
    """tok_load of the 32000-piece vocab, under unicorn and natively (printed, not asserted)."""
    data, ref = _ref("tok32000")
    for machine_cls in (EmuMachine, NativeMachine):
        try:
            machine = machine_cls()
        except pytest.skip.Exception:
            continue
        asm = AsmTokenizer(machine)
        best = None
        for _ in range(3 if machine_cls is NativeMachine else 1):
            t0 = time.perf_counter()
            assert asm.load(data, 32000) == 0
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        print(f"\n[tokenizer] tok_load 32000 pieces, {machine.name}: {best * 1e3:.1f} ms")
        assert asm.encode(b"Once upon a time") == ref.encode(b"Once upon a time")
