"""Driving app_asm/gguf*.s from Python, under unicorn or natively (tests and the fuzzer).

`gguf_image()` links gguf.s + gguf_get.s + gguf_msg.s with the real ggml type table
(peasm's generated ggml_table.inc). The table names the kernel bodies of every runnable
type; the reader never calls them, so this test link defines each of those names at one
`ud2` (a call would fault loudly) instead of linking the kernels. `AsmGguf` holds one GGUF
struct and a file area whose end touches a guard page, so a read one byte past the file
faults, and wraps each routine; struct offsets and codes come from peasm.layouts.
`judge_gguf_py` / `judge_reference` say what a file holds according to gguf-py and to
tests/reference/gguf.py, in one shape (`Judge`) the tests compare the asm with.
"""
from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gguf
import numpy as np

from peasm import ggml
from peasm.layouts import CONSTANTS as K
from peasm.layouts import GGUF, GGUF_TYPES, GGUF_VALUE, TENSOR
from peasm.linker import link
from tests.reference import gguf as refgguf
from tests.support import Area

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app_asm"
SOURCES = [APP / "gguf.s", APP / "gguf_get.s", APP / "gguf_msg.s"]
U32 = 0xFFFF_FFFF
_T = {n: i for i, n in enumerate(GGUF_TYPES)}

G = GGUF.layout()[0]
V = GGUF_VALUE.layout()[0]
T = TENSOR.layout()[0]


def table_source() -> str:
    bodies = sorted({s for t in ggml.TYPES for k in ggml.BODY_KINDS for p in ggml.PATHS
                     if (s := ggml.body_symbol(t, k, p))})
    return ('.include "ggml_table.inc"\n.section .text\n.global ' + ", ".join(bodies) + "\n"
            + "".join(f"{b}:\n" for b in bodies) + "    ud2\n")


@lru_cache(maxsize=None)
def gguf_image(backend: str = "keystone"):
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "ggml_table_for_tests.s"
        table.write_text(table_source(), encoding="utf-8")
        return link(SOURCES + [table], "gguf_open", backend=backend)


class EmuMachine:
    name = "unicorn"

    def __init__(self, emu=None):
        from peasm.runners.emu import Emu
        self.emu = emu or Emu(gguf_image())

    def alloc(self, size: int) -> int:
        return self.emu.alloc(size, align=1)

    def call(self, fn: str, *args: int, **kw) -> int:
        return self.emu.call(fn, *args, **kw)

    def read(self, address: int, size: int) -> bytes:
        return self.emu.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.emu.write(address, data)


class NativeMachine:
    name = "native"

    def __init__(self):
        from peasm.runners import native
        self.native = native
        self.image = native.NativeImage(gguf_image())
        self._buffers = []

    def alloc(self, size: int) -> int:
        buf = self.native.GuardedBuffer(size, align=1)
        self._buffers.append(buf)
        return buf.address

    def call(self, fn: str, *args: int, **kw) -> int:
        return self.native.call(self.image.address(fn), *args, where=self.image.where).rax

    def read(self, address: int, size: int) -> bytes:
        return self.native.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.native.write_memory(address, data)


class AsmGguf:
    """One GGUF struct, a file area and small in/out areas on a machine."""

    def __init__(self, machine, max_file: int = 1 << 20, call_kw: dict | None = None):
        self.m = machine
        self.kw = call_kw or {}
        self.ctx = Area(machine, GGUF.size).place(size=GGUF.size)
        self.file_area = Area(machine, max_file)
        self.key_area = Area(machine, 4096)
        self.out = Area(machine, 256).place(size=256)
        self.tensor = Area(machine, TENSOR.size).place(size=TENSOR.size)
        self.name_out = Area(machine, GGUF_VALUE.size).place(size=GGUF_VALUE.size)
        self.msg = Area(machine, 4096)
        self.file = 0
        self.size = 0

    def call(self, fn: str, *args: int) -> int:
        return self.m.call(fn, *args, **self.kw)

    # -- the struct
    def u32(self, f: str) -> int:
        return struct.unpack("<I", self.m.read(self.ctx + G[f], 4))[0]

    def u64(self, f: str) -> int:
        return struct.unpack("<Q", self.m.read(self.ctx + G[f], 8))[0]

    def err_name(self) -> bytes | None:
        p, n = self.u64("ERR_NAME"), self.u64("ERR_NAME_LEN")
        return None if p == 0 else self.m.read(p, n) if n else b""

    # -- the routines
    def open(self, data: bytes, place: bool = True) -> int:
        if place:
            self.file = self.file_area.place(data)
            self.size = len(data)
        return self.call("gguf_open", self.ctx, self.file, self.size) & U32

    def format_error(self, code: int, cap: int = 1024) -> bytes:
        buf = self.msg.place(size=cap)
        n = self.call("gguf_format_error", self.ctx, code, buf, cap)
        raw = self.m.read(buf, cap) if cap else b""
        assert n < max(cap, 1) and (cap == 0 or raw[n] == 0) and b"\0" not in raw[:n], (n, raw)
        return raw[:n]

    def error_text(self, code: int) -> bytes:
        p = self.call("gguf_error_text", code)
        out = b""
        while not out.endswith(b"\0"):
            out += self.m.read(p + len(out), 1)
        return out[:-1]

    def _key(self, key: bytes) -> tuple[int, int]:
        return self.key_area.place(key), len(key)

    def find_key(self, key: bytes) -> tuple[int, int]:
        """(value address or 0, type or code)."""
        p, n = self._key(key)
        rax = self.call("gguf_find_key", self.ctx, p, n)
        return rax, self.u32("ERROR") if rax == 0 else None

    def get(self, kind: str, key: bytes, want: int = K["GGUF_TYPE_ANY"]):
        """(status, value): u64 / f32 / bool -> int or float; str -> bytes; array ->
        (element type, count, address of the first element)."""
        p, n = self._key(key)
        self.m.write(self.out, b"\xAA" * 32)
        args = [self.ctx, p, n, self.out] + ([want] if kind == "array" else [])
        code = self.call(f"gguf_get_{kind}", *args) & U32
        raw = self.m.read(self.out, 32)
        if code:
            assert raw == b"\xAA" * 32, f"gguf_get_{kind} wrote its output on failure"
            return code, None
        if kind == "u64":
            return code, struct.unpack_from("<Q", raw)[0]
        if kind == "f32":
            return code, struct.unpack_from("<f", raw)[0]
        if kind == "bool":
            return code, struct.unpack_from("<I", raw)[0]
        data, count, typ = struct.unpack_from("<QQI", raw)
        if kind == "str":
            assert typ == K["GGUF_TYPE_STRING"]
            return code, self.m.read(data, count) if count else b""
        return code, (typ, count, data)

    def _tensor(self) -> dict:
        raw = self.m.read(self.tensor, TENSOR.size)
        out = {}
        for f in TENSOR.fields:
            off = T[f.name]
            if f.name == "NE":
                out["NE"] = struct.unpack_from("<4Q", raw, off)
            elif f.type == "u32":
                out[f.name] = struct.unpack_from("<I", raw, off)[0]
            else:
                out[f.name] = struct.unpack_from("<Q", raw, off)[0]
        return out

    def find_tensor(self, name: bytes) -> tuple[int, dict | None]:
        p, n = self._key(name)
        code = self.call("gguf_find_tensor", self.ctx, p, n, self.tensor) & U32
        return code, (self._tensor() if code == 0 else None)

    def tensor_at(self, index: int, with_name: bool = True) -> tuple[int, dict | None, bytes | None]:
        code = self.call("gguf_tensor_at", self.ctx, index, self.tensor,
                         self.name_out if with_name else 0) & U32
        if code:
            return code, None, None
        name = None
        if with_name:
            data, count, _ = struct.unpack("<QQI", self.m.read(self.name_out, 20))
            name = self.m.read(data, count) if count else b""
        return code, self._tensor(), name

    def check_types(self) -> int:
        return self.call("gguf_check_types", self.ctx) & U32


# ----------------------------------------------------------------------------- judges

@dataclass
class Key:
    name: bytes
    type: int
    elem: int | None          # an array's element type (None: not an array, or no elements)
    count: int | None         # an array's element count (outer, for nested arrays)
    value: object             # scalar / bytes / list of elements (None: nested array)


@dataclass
class Ten:
    name: bytes
    type: int
    dims: list[int]
    data_offset: int          # from the start of the file
    n_bytes: int


@dataclass
class Judge:
    keys: list[Key]
    tensors: list[Ten]
    data_offset: int
    alignment: int


@lru_cache(maxsize=None)
def judge_gguf_py(path: Path) -> Judge:
    """What gguf-py's GGUFReader reads (slow on big vocabularies: a minute for 400k strings)."""
    r = gguf.GGUFReader(path)
    keys = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        t = int(f.types[0])
        if t == _T["ARRAY"]:
            count = int(f.parts[4][0])                  # [key len, key, type, elem type, count, ...]
            elem = int(f.types[1]) if count else None
            value = None
            if elem == _T["STRING"]:
                value = [bytes(f.parts[i]) for i in f.data]
            elif elem is not None and elem != _T["ARRAY"]:
                value = [f.parts[i].tolist()[0] for i in f.data]
            keys.append(Key(name.encode(), t, elem, count, value))
        elif t == _T["STRING"]:
            keys.append(Key(name.encode(), t, None, None, bytes(f.parts[-1])))
        else:
            keys.append(Key(name.encode(), t, None, None, f.contents()))
    tensors = [Ten(t.name.encode(), int(t.tensor_type), [int(x) for x in t.shape], t.data_offset,
                   int(t.n_bytes)) for t in r.tensors]
    return Judge(keys, tensors, r.data_offset, int(r.alignment))


def judge_reference(data: bytes) -> Judge:
    """What tests/reference/gguf.py (the project's own small reader, written for the .bin
    cross-checks, not from this asm) reads: fast on any file."""
    r = refgguf.read_gguf(data)
    keys = []
    for name, value in r.metadata.items():
        t, elem = r.types[name]
        if t == _T["ARRAY"]:
            count = len(value)
            v = None
            if elem == _T["STRING"]:
                v = list(value)
            elif elem != _T["ARRAY"]:
                v = [x.item() for x in value] if elem != _T["BOOL"] else [bool(x) for x in value]
            keys.append(Key(name.encode(), t, elem if count else None, count, v))
        else:
            keys.append(Key(name.encode(), t, None, None, value))
    tensors = []
    for ti in r.tensors.values():
        gt = ggml.BY_ID[ti.ggml_type]
        n = int(np.prod(ti.dims))
        tensors.append(Ten(ti.name.encode(), ti.ggml_type, list(ti.dims), r.data_start + ti.offset,
                           n // gt.block_size * gt.block_bytes))
    align = int(r.metadata.get("general.alignment", 32))
    return Judge(keys, tensors, r.data_start, align)
