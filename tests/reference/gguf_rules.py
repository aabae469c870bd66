"""The GGUF reader's rules (app_asm/gguf.s), restated in Python: the judge of its verdicts.

`check(data)` walks a file exactly as gguf_open's contract says, in the same order, and
returns a `Verdict`: the status code and the ERR_* details of the first rule broken, or on
success what the file holds (every key with its type and value offset, every tensor with
its shape, type, offset and byte size). `message(v, size)` is the line gguf_format_error
must print for it. The facts about the format (value types, sizes) are independent of the
asm: they come from the GGUF specification; the limits and the order of the checks are
this reader's documented choices. Where gguf-py (`gguf.GGUFReader`, the reference
implementation) can read a file, tests/test_app_gguf.py also checks that the two agree on
every key and tensor.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from peasm import ggml
from peasm.layouts import CONSTANTS as K
from peasm.layouts import GGUF_ERRORS, GGUF_TYPES

CODE = {n: i for i, n in enumerate(GGUF_ERRORS)}
TYPE = {n: i for i, n in enumerate(GGUF_TYPES)}
PART = {k[len("GGUF_PART_"):]: v for k, v in K.items() if k.startswith("GGUF_PART_")}
#: bytes of a fixed-size value of each GGUF type (string and array: variable)
VALUE_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
TYPE_NAMES = [n.lower() for n in GGUF_TYPES]
HEADER = K["GGUF_HEADER_BYTES"]
MAX_DEPTH = K["GGUF_MAX_DEPTH"]
MAX_NAME = K["GGUF_MAX_NAME"]
U32_MAX = 0xFFFF_FFFF
U64 = (1 << 64) - 1


@dataclass
class Tensor:
    name: bytes
    n_dims: int
    ne: tuple[int, ...]          # 4 dims, unused ones 1
    type: int
    offset: int                  # from the data section's start
    row_bytes: int
    bytes: int

    @property
    def rows(self) -> int:
        return self.ne[1] * self.ne[2] * self.ne[3]


@dataclass
class Verdict:
    code: int = 0
    index: int = 0
    part: int = 0
    value: int = 0
    aux: int = 0
    name: bytes | None = None
    type: int = 0
    version: int = 0
    alignment: int = 32
    tensor_count: int = 0
    kv_count: int = 0
    infos_start: int = 0
    data_start: int = 0
    data_bytes: int = 0
    n_elements: int = 0
    kvs: list[tuple[bytes, int, int]] = field(default_factory=list)   # key, type, value offset
    tensors: list[Tensor] = field(default_factory=list)

    @property
    def error(self) -> str:
        return GGUF_ERRORS[self.code]


class _Fail(Exception):
    pass


class _Walker:
    def __init__(self, data: bytes, v: Verdict):
        self.d, self.n, self.v = data, len(data), v

    def fail(self, code: str, **details) -> None:
        self.v.code = CODE[code]
        for k, x in details.items():
            setattr(self.v, k, x)
        raise _Fail

    def trunc(self, part: str, value: int, at: int) -> None:
        self.fail("TRUNCATED", part=PART[part], value=value, aux=at)

    def u32(self, at: int) -> int:
        return struct.unpack_from("<I", self.d, at)[0]

    def u64(self, at: int) -> int:
        return struct.unpack_from("<Q", self.d, at)[0]

    def skip(self, t: int, pos: int, depth: int) -> int:
        """gguf_skip_value: the offset past a value of type t at pos."""
        if t >= len(GGUF_TYPES):
            self.fail("VALUE_TYPE", value=t)
        left = self.n - pos
        if t == TYPE["STRING"]:
            if left < 8:
                self.trunc("STRING_LEN", 8, pos)
            ln = self.u64(pos)
            if ln > left - 8:
                self.trunc("STRING", ln, pos)
            return pos + 8 + ln
        if t == TYPE["ARRAY"]:
            if depth >= MAX_DEPTH:
                self.fail("NESTING", value=depth)
            if left < 12:
                self.trunc("ARRAY_HEAD", 12, pos)
            et, count = self.u32(pos), self.u64(pos + 4)
            if et >= len(GGUF_TYPES):
                self.fail("VALUE_TYPE", value=et)
            if et in VALUE_BYTES:
                size = VALUE_BYTES[et]
                if count > (left - 12) // size:
                    self.trunc("ARRAY", count, pos)
                return pos + 12 + count * size
            p = pos + 12
            for _ in range(count):
                p = self.skip(et, p, depth + 1)
            return p
        size = VALUE_BYTES[t]
        if left < size:
            self.trunc("VALUE", size, pos)
        return pos + size

    def run(self) -> None:
        v, d, n = self.v, self.d, self.n
        if n < 4 or d[:4] != b"GGUF":
            self.fail("MAGIC")
        if n < HEADER:
            self.trunc("HEADER", HEADER, 0)
        v.version = self.u32(4)
        if v.version not in (2, 3):
            self.fail("VERSION", value=v.version)
        v.tensor_count, v.kv_count = self.u64(8), self.u64(16)
        if v.kv_count > (n - HEADER) // K["GGUF_MIN_KV_BYTES"]:
            self.fail("COUNT", part=PART["KEY"], value=v.kv_count)
        if v.tensor_count > (n - HEADER) // K["GGUF_MIN_INFO_BYTES"]:
            self.fail("COUNT", part=PART["TENSOR_NAME_LEN"], value=v.tensor_count)
        pos, align_at = HEADER, None
        for i in range(v.kv_count):
            v.index, v.name = i, None
            left = n - pos
            if left < 8:
                self.trunc("KEY_LEN", 8, pos)
            ln = self.u64(pos)
            if ln > left - 8:
                self.trunc("KEY", ln, pos)
            key = d[pos + 8: pos + 8 + ln]
            v.name = key
            pos += 8 + ln
            if align_at is None and key == b"general.alignment":
                align_at = (pos, i)
            if n - pos < 4:
                self.trunc("TYPE", 4, pos)
            t = self.u32(pos)
            pos += 4
            end = self.skip(t, pos, 0)
            v.kvs.append((key, t, pos))
            pos = end
        v.infos_start = pos
        if align_at is not None:
            at, i = align_at
            v.index, v.name = i, b"general.alignment"
            t = self.u32(at)
            if t != TYPE["UINT32"]:
                self.fail("ALIGNMENT_TYPE", type=t)
            a = self.u32(at + 4)
            if a == 0 or a & (a - 1):
                self.fail("ALIGNMENT", value=a)
            v.alignment = a
        infos = []
        for i in range(v.tensor_count):
            v.index, v.name = i, None
            left = n - pos
            if left < 8:
                self.trunc("TENSOR_NAME_LEN", 8, pos)
            ln = self.u64(pos)
            if ln > left - 8:
                self.trunc("TENSOR_NAME", ln, pos)
            name = d[pos + 8: pos + 8 + ln]
            v.name = name
            pos += 8 + ln
            if ln > MAX_NAME:
                self.fail("NAME_LEN", value=ln)
            if n - pos < 4:
                self.trunc("N_DIMS", 4, pos)
            nd = self.u32(pos)
            pos += 4
            if not 1 <= nd <= K["GGUF_MAX_DIMS"]:
                self.fail("N_DIMS", value=nd)
            if n - pos < 8 * nd:
                self.trunc("DIMS", 8 * nd, pos)
            ne, rows = [], 1
            for k in range(nd):
                x = self.u64(pos + 8 * k)
                if not 1 <= x <= U32_MAX:
                    self.fail("DIM", value=x, aux=k)
                if k:
                    rows *= x
                    if rows > U32_MAX:
                        self.fail("ROWS", value=rows)
                ne.append(x)
            pos += 8 * nd
            if n - pos < 12:
                self.trunc("TYPE_OFFSET", 12, pos)
            gt, off = self.u32(pos), self.u64(pos + 4)
            pos += 12
            t = ggml.FILE_BY_ID.get(gt)
            if t is None:
                self.fail("TENSOR_TYPE", type=gt, value=gt)
            v.type = gt
            if ne[0] % t.block_size:
                self.fail("BLOCK", value=ne[0])
            if off % v.alignment:
                self.fail("OFFSET_ALIGN", value=off, aux=v.alignment)
            ne += [1] * (4 - nd)
            row_bytes = ne[0] // t.block_size * t.block_bytes
            nbytes = row_bytes * ne[1] * ne[2] * ne[3]
            infos.append(Tensor(name, nd, tuple(ne), gt, off, row_bytes, min(nbytes, U64)))
        v.data_start = (pos + v.alignment - 1) // v.alignment * v.alignment
        v.data_bytes = max(0, n - v.data_start)
        prev_end = 0
        for i, t in enumerate(infos):
            v.index, v.name = i, t.name
            if t.offset > v.data_bytes or t.bytes > v.data_bytes - t.offset:
                self.fail("DATA_RANGE", value=t.offset, aux=t.bytes)
            if t.offset < prev_end:
                self.fail("OVERLAP", value=t.offset, aux=prev_end)
            prev_end = t.offset + t.bytes
            v.n_elements += t.ne[0] * t.rows
        v.tensors = infos


def check(data: bytes) -> Verdict:
    v = Verdict()
    try:
        _Walker(bytes(data), v).run()
    except _Fail:
        pass
    return v


# ----------------------------------------------------------------------------- messages

def _quoted(name: bytes) -> str:
    shown = "".join(chr(b) if 0x20 <= b <= 0x7E else "?" for b in name[:48])
    return "'" + shown + ("..." if len(name) > 48 else "") + "'"


def _where(v: Verdict, what: str) -> str:
    return f"{what} {v.index}" + (f" {_quoted(v.name)}" if v.name is not None else "")


_PART_TEXT = ("the header", "the key's length", "a key of {} bytes", "the value type",
              "the value", "a string length", "a string of {} bytes", "an array header",
              "an array of {} elements", "the name's length", "a name of {} bytes", "n_dims",
              "the dims", "the type and offset")


def message(v: Verdict, size: int) -> str:
    """The line gguf_format_error prints for a gguf_open verdict."""
    e = v.error
    if e == "VERSION":
        return f"gguf: version {v.version} (supported: 2, 3)"
    if e == "MAGIC":
        return 'gguf: not a GGUF file (it does not start with "GGUF")'
    if e == "TRUNCATED":
        if v.part == PART["HEADER"]:
            return f"gguf: the file is {size} bytes, shorter than the 24-byte header"
        where = _where(v, "tensor" if v.part >= PART["TENSOR_NAME_LEN"] else "metadata key")
        what = _PART_TEXT[v.part].format(v.value)
        return (f"gguf: {where}: {what} at offset {v.aux} runs past the end of the file "
                f"({size} bytes)")
    if e == "COUNT":
        which = "kv_count" if v.part == PART["KEY"] else "tensor_count"
        return f"gguf: {which} {v.value} is more than a {size}-byte file can hold"
    if e == "VALUE_TYPE":
        return f"gguf: {_where(v, 'metadata key')}: value type {v.value} is not a GGUF type (0 to 12)"
    if e == "NESTING":
        return f"gguf: {_where(v, 'metadata key')}: arrays nested more than 4 deep"
    if e == "ALIGNMENT":
        return f"gguf: general.alignment is {v.value}, must be a nonzero power of two"
    if e == "ALIGNMENT_TYPE":
        return f"gguf: general.alignment has type {TYPE_NAMES[v.type]}, must be uint32"
    if e == "NAME_LEN":
        return f"gguf: tensor {v.index} has a name of {v.value} bytes (ggml's limit is 63)"
    t = _where(v, "tensor")
    if e == "N_DIMS":
        return f"gguf: {t} has {v.value} dimensions (must be 1 to 4)"
    if e == "DIM":
        return f"gguf: {t} has dimension {v.aux} = {v.value} (must be 1 to 4294967295)"
    if e == "ROWS":
        return f"gguf: {t} has {v.value} rows (ne1*ne2*ne3 above 4294967295)"
    if e == "TENSOR_TYPE":
        return f"gguf: {t} has unknown ggml type {v.type}"
    if e == "BLOCK":
        gt = ggml.BY_ID[v.type]
        return (f"gguf: {t} has rows of {v.value} elements, not a multiple of the {gt.name} "
                f"block size {gt.block_size}")
    if e == "OFFSET_ALIGN":
        return f"gguf: {t} has data offset {v.value}, not a multiple of the alignment {v.aux}"
    if e == "DATA_RANGE":
        return (f"gguf: {t} has {v.aux} bytes at data offset {v.value}, past the end of the "
                f"file (its data section holds {v.data_bytes} bytes)")
    if e == "OVERLAP":
        return (f"gguf: {t} has data offset {v.value}, inside the previous tensor (which "
                f"ends at {v.aux})")
    raise ValueError(f"no gguf_open message for {e}")


def unsupported_message(index: int, name: bytes, gtype: int) -> str:
    """gguf_check_types's line for a tensor of a type the program cannot run."""
    sup = " ".join(ggml.supported_names())
    return (f"gguf: tensor {index} {_quoted(name)} has type {ggml.BY_ID[gtype].name} (ggml type "
            f"{gtype}), not supported here (supported: {sup})")
