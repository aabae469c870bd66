"""Minimal GGUF (v2/v3) reader: metadata, tensor directory, F32/F16 tensor data.

Layout (little-endian): ``"GGUF"``, u32 version, u64 tensor_count, u64 kv_count; kv_count
pairs of (string key, u32 type, value); tensor_count infos of (string name, u32 n_dims,
u64 dims[n_dims] with dims[0] the fastest-varying, u32 ggml_type, u64 offset); padding to
``general.alignment`` (default 32); the tensor data, each tensor at data_start + offset.
A string is u64 length + bytes. Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32,
7 bool, 8 string, 9 array (u32 element type, u64 count, elements), 10 u64, 11 i64, 12 f64.
Strings are returned as ``bytes`` (a vocab piece need not be valid UTF-8 on its own).
Used by the tests to cross-check the .bin readers; the app's GGUF loader is separate.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
       10: "<u8", 11: "<i8", 12: "<f8"}
GGML_F32, GGML_F16 = 0, 1


class GGUFFormatError(ValueError):
    pass


@dataclass
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # GGUF order, dims[0] fastest
    ggml_type: int
    offset: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy (row-major) shape: the dims reversed."""
        return tuple(reversed(self.dims))


class GGUFFile:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.off = 0
        if data[:4] != b"GGUF":
            raise GGUFFormatError("bad magic")
        self.off = 4
        self.version = self._u("<I")
        n_tensors = self._u("<Q")
        n_kv = self._u("<Q")
        self.metadata: dict[str, object] = {}
        self.types: dict[str, tuple[int, int | None]] = {}   # value type, array element type
        for _ in range(n_kv):
            key = self._str().decode("utf-8")
            t = self._u("<I")
            elem = struct.unpack_from("<I", self.data, self.off)[0] if t == 9 else None
            self.types[key] = (t, elem)
            self.metadata[key] = self._value(t)
        self.tensors: dict[str, TensorInfo] = {}
        for _ in range(n_tensors):
            name = self._str().decode("utf-8")
            nd = self._u("<I")
            dims = tuple(self._u("<Q") for _ in range(nd))
            self.tensors[name] = TensorInfo(name, dims, self._u("<I"), self._u("<Q"))
        align = int(self.metadata.get("general.alignment", 32))
        self.data_start = (self.off + align - 1) // align * align

    def _u(self, fmt: str):
        (v,) = struct.unpack_from(fmt, self.data, self.off)
        self.off += struct.calcsize(fmt)
        return v

    def _str(self) -> bytes:
        n = self._u("<Q")
        s = self.data[self.off: self.off + n]
        if len(s) != n:
            raise GGUFFormatError("truncated string")
        self.off += n
        return s

    def _value(self, t: int):
        if t in _SCALARS:
            return self._u(_SCALARS[t])
        if t == 8:
            return self._str()
        if t == 9:
            et, n = self._u("<I"), self._u("<Q")
            if et in _NP:
                arr = np.frombuffer(self.data, dtype=_NP[et], count=n, offset=self.off)
                self.off += arr.nbytes
                return arr
            return [self._value(et) for _ in range(n)]
        raise GGUFFormatError(f"unknown value type {t}")

    def tensor(self, name: str) -> np.ndarray:
        """F32 or F16 tensor data as float32 in numpy shape."""
        ti = self.tensors[name]
        n = int(np.prod(ti.dims)) if ti.dims else 1
        start = self.data_start + ti.offset
        if ti.ggml_type == GGML_F32:
            a = np.frombuffer(self.data, dtype="<f4", count=n, offset=start)
        elif ti.ggml_type == GGML_F16:
            a = np.frombuffer(self.data, dtype="<f2", count=n, offset=start).astype(np.float32)
        else:
            raise GGUFFormatError(f"{name}: ggml type {ti.ggml_type} not supported here")
        return a.reshape(ti.shape)


def read_gguf(src: str | Path | bytes) -> GGUFFile:
    return GGUFFile(Path(src).read_bytes() if isinstance(src, (str, Path)) else bytes(src))
