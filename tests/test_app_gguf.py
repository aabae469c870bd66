"""app_asm/gguf*.s, the GGUF reader, under unicorn (guard pages, ABI checks) and natively.

Judges:
* gguf-py (`gguf.GGUFReader`, the reference reader) on every real file in ../shared/models
  and on files written here with `gguf.GGUFWriter` (every value type, nested arrays, v2 and
  v3, alignment 64, no tensors): every key's type and value (scalars, strings, array element
  type and count, array contents), every tensor's name, type, dims, data offset and size;
* tests/reference/gguf_rules.py, the reader's rules restated in Python, on bad files: the
  same status code, the same ERR_* details and the same message line. Each crafted bad file
  below also names the code it must get, so the restatement is not its own judge.
Every file sits at the end of a buffer that ends at a guard page: a read one byte past the
file faults.
"""
from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from peasm import ggml
from peasm.layouts import CONSTANTS as K
from peasm.layouts import GGUF_ERRORS
from tests.gguf_support import (AsmGguf, EmuMachine, Judge, Key, NativeMachine, gguf_image,
                                judge_gguf_py, judge_reference)
from tests.reference import gguf_rules as R
from tests.support import MODELS, require, require_tool

VT = gguf.GGUFValueType
E = {n: i for i, n in enumerate(GGUF_ERRORS)}
T = R.TYPE
ANY = K["GGUF_TYPE_ANY"]
INT_TYPES = {T[n] for n in ("UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64")}


def real_files() -> list[Path]:
    return sorted(MODELS.glob("*.gguf")) + sorted(MODELS.glob("quant/*.gguf")) + sorted(MODELS.glob("vocab/*.gguf"))


@pytest.fixture(scope="module")
def emu():
    return AsmGguf(EmuMachine(), max_file=100 << 20)


@pytest.fixture(scope="module")
def native():
    from peasm.runners import native as nat
    ok, why = nat.supported()
    require(ok, why)
    return AsmGguf(NativeMachine(), max_file=100 << 20)


# ----------------------------------------------------------------------------- raw files

def gstr(b: bytes | str) -> bytes:
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def kv(key: bytes | str, t: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", t) + payload


def u32kv(key: str, v: int) -> bytes:
    return kv(key, T["UINT32"], struct.pack("<I", v))


def info(name: bytes | str, dims, gtype: int, offset: int, n_dims: int | None = None) -> bytes:
    dims = list(dims)
    n = len(dims) if n_dims is None else n_dims
    return gstr(name) + struct.pack("<I", n) + b"".join(struct.pack("<Q", d) for d in dims) \
        + struct.pack("<IQ", gtype, offset)


def build(kvs: list[bytes], infos: list[bytes], data: bytes = b"", *, version: int = 3,
          align: int = 32, n_kv: int | None = None, n_tensors: int | None = None,
          pad: bool = True) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    if pad and (data or infos):
        body += bytes(-len(body) % align)
    return body + data


def small_model() -> bytes:
    """A small valid file: a few keys of several types, three F32/Q8_0/F16 tensors."""
    kvs = [kv("general.architecture", T["STRING"], gstr("llama")),
           u32kv("llama.block_count", 2),
           kv("tokenizer.ggml.tokens", T["ARRAY"], struct.pack("<IQ", T["STRING"], 3)
              + gstr("a") + gstr("") + gstr("ccc")),
           kv("x.f32s", T["ARRAY"], struct.pack("<IQ", T["FLOAT32"], 2) + struct.pack("<2f", 1, 2)),
           kv("x.neg", T["INT8"], struct.pack("<b", -5))]
    infos = [info("a.weight", [4], 0, 0), info("b.weight", [32, 2], 8, 32),
             info("c.weight", [3, 1, 2], 1, 128)]
    data = bytes(range(256)) * 1
    return build(kvs, infos, data[:140])


# ----------------------------------------------------------------------------- helpers

def expect_same_as_reference(a: AsmGguf, data: bytes, want: str | None = None) -> R.Verdict:
    """gguf_open on data: the reference's code, details and message; `want` the code name."""
    code = a.open(data)
    v = R.check(data)
    assert GGUF_ERRORS[code] == v.error, (GGUF_ERRORS[code], v.error, a.format_error(code))
    if want is not None:
        assert v.error == want, (v.error, want)
    assert a.u32("ERROR") == code
    line = a.format_error(code).decode()
    if code:
        assert line == R.message(v, len(data)), (line, R.message(v, len(data)))
        if v.error not in ("MAGIC", "VERSION", "COUNT", "TRUNCATED") or v.part:
            assert a.u64("ERR_INDEX") == v.index
        assert a.err_name() == v.name or v.error in ("MAGIC", "VERSION", "COUNT") \
            or (v.error == "TRUNCATED" and v.part == 0)
        assert a.u32("FLAGS") == 0
    else:
        assert line == "gguf: ok"
        for f, x in (("VERSION", v.version), ("ALIGNMENT", v.alignment)):
            assert a.u32(f) == x, f
        for f, x in (("TENSOR_COUNT", v.tensor_count), ("KV_COUNT", v.kv_count), ("KV_START", 24),
                     ("INFOS_START", v.infos_start), ("DATA_START", v.data_start),
                     ("DATA_BYTES", v.data_bytes), ("N_ELEMENTS", v.n_elements),
                     ("FILE", a.file), ("FILE_SIZE", len(data))):
            assert a.u64(f) == x, f
        assert a.u32("FLAGS") == K["GGUF_F_OPEN"]
    return v


def compare_with_judge(a: AsmGguf, judge: Judge, data: bytes, *, all_keys: bool = True) -> None:
    """gguf_open accepts the file, and every key and tensor agrees with the judge."""
    v = expect_same_as_reference(a, data, "OK")
    assert a.u64("DATA_START") == judge.data_offset
    assert a.u32("ALIGNMENT") == judge.alignment
    assert len(judge.keys) == a.u64("KV_COUNT") == len(v.kvs)
    for key, (name, t, at) in zip(judge.keys if all_keys else judge.keys[:6], v.kvs):
        assert name == key.name and t == key.type
        ptr, _ = a.find_key(name)
        assert ptr == a.file + at and a.u32("ERROR") == 0, name
        check_value(a, key)
    assert a.u64("TENSOR_COUNT") == len(judge.tensors)
    total = 0
    for i, jt in enumerate(judge.tensors):
        code, ten, name = a.tensor_at(i)
        assert code == 0 and name == jt.name
        assert ten["TYPE"] == jt.type
        assert ten["N_DIMS"] == len(jt.dims)
        assert list(ten["NE"][:len(jt.dims)]) == jt.dims
        assert all(x == 1 for x in ten["NE"][len(jt.dims):])
        assert ten["DATA"] == a.file + jt.data_offset
        assert ten["BYTES"] == jt.n_bytes
        gt = ggml.BY_ID[ten["TYPE"]]
        assert ten["N"] == jt.dims[0] and ten["ROW_BYTES"] == jt.dims[0] // gt.block_size * gt.block_bytes
        assert ten["ROWS"] * ten["N"] == int(np.prod(jt.dims))
        total += int(np.prod(jt.dims))
        if i < 8 or i == len(judge.tensors) - 1:
            code, same = a.find_tensor(name)
            assert code == 0 and same == ten and a.u64("ERR_INDEX") == i
    assert a.u64("N_ELEMENTS") == total


def check_value(a: AsmGguf, key: Key) -> None:
    """The typed getters on one key against the judge's value."""
    name, t, s = key.name, key.type, key.name.decode()
    if t in INT_TYPES:
        code, got = a.get("u64", name)
        if key.value < 0:
            assert code == E["NEGATIVE"] and a.u64("ERR_VALUE") == key.value & (2**64 - 1)
            assert a.format_error(code).decode() == \
                f"gguf: metadata key '{s}' is {key.value}, expected a non-negative integer"
        else:
            assert (code, got) == (0, key.value)
        code, _ = a.get("str", name)
        assert code == E["KEY_TYPE"] and a.u32("ERR_TYPE") == t
        assert a.format_error(code).decode() == (f"gguf: metadata key '{s}' has type "
                                                 f"{R.TYPE_NAMES[t]}, expected a string")
    elif t in (T["FLOAT32"], T["FLOAT64"]):
        code, got = a.get("f32", name)
        with np.errstate(over="ignore"):
            assert code == 0 and got == np.float32(key.value)
        assert a.get("u64", name)[0] == E["KEY_TYPE"]
        assert a.format_error(E["KEY_TYPE"]).decode().endswith(", expected an integer")
    elif t == T["BOOL"]:
        assert a.get("bool", name) == (0, int(key.value))
        assert a.get("f32", name)[0] == E["KEY_TYPE"]
    elif t == T["STRING"]:
        assert a.get("str", name) == (0, key.value)
        assert a.get("bool", name)[0] == E["KEY_TYPE"]
        assert a.format_error(E["KEY_TYPE"]).decode().endswith("has type string, expected a bool")
    else:
        code, (et, count, ptr) = a.get("array", name)
        assert code == 0 and count == key.count
        if count:
            assert et == key.elem
            assert a.get("array", name, want=et)[0] == 0
            other = T["INT64"] if et != T["INT64"] else T["UINT8"]
            assert a.get("array", name, want=other)[0] == E["KEY_TYPE"]
            assert a.format_error(E["KEY_TYPE"]).decode() == (
                f"gguf: metadata key '{s}' is an array of {R.TYPE_NAMES[et]}, "
                f"expected an array of {R.TYPE_NAMES[other]}")
            if et in R.VALUE_BYTES:         # packed: read them back from the pointer
                n = min(count, 4096)
                fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                       11: "q", 12: "d"}[et]
                got = list(struct.unpack(f"<{n}{fmt}", a.m.read(ptr, n * R.VALUE_BYTES[et])))
                want = key.value[:n]
                assert np.array_equal(np.array(got, dtype=np.float64 if et in (6, 12) else object),
                                      np.array(want, dtype=np.float64 if et in (6, 12) else object),
                                      equal_nan=et in (6, 12))
            elif et == T["STRING"]:          # walk strings from the pointer: first and last few
                p, seen = ptr, []
                for _ in range(count):
                    (n,) = struct.unpack("<Q", a.m.read(p, 8))
                    if len(seen) < 16 or count - len(seen) <= 4:
                        assert a.m.read(p + 8, n) == key.value[len(seen)]
                    seen.append(n)
                    p += 8 + n
        assert a.get("u64", name)[0] == E["KEY_TYPE"]


# ----------------------------------------------------------------------------- real files

def _slow_for_gguf_py(p: Path) -> bool:
    """gguf-py's reader takes 5-60 s on the files with big vocabularies (every vocab-only
    file and SmolLM2); the others take well under a second."""
    return p.name.startswith("SmolLM2") or "vocab" in p.name


@pytest.mark.parametrize("name", [p.relative_to(MODELS).as_posix() for p in real_files()]
                         or ["(no models)"])
def test_real_files_native(native, name):
    """Every real file natively, judged by tests/reference/gguf.py (fast)."""
    path = MODELS / name
    require(path.is_file(), f"model file {path}")
    data = path.read_bytes()
    compare_with_judge(native, judge_reference(data), data)


@pytest.mark.parametrize("name", [pytest.param(p.relative_to(MODELS).as_posix(),
                                               marks=[pytest.mark.slow] if _slow_for_gguf_py(p) else [])
                                  for p in real_files()] or ["(no models)"])
def test_real_files_gguf_py(native, name):
    """Every real file natively, judged by gguf-py (the files it reads slowly are `slow`)."""
    path = MODELS / name
    require(path.is_file(), f"model file {path}")
    compare_with_judge(native, judge_gguf_py(path), path.read_bytes())


@pytest.mark.parametrize("name", ["stories260K.gguf", "quant/stories260K-Q4_0.gguf",
                                  "quant/tiny256-Q4_K_M.gguf", "quant/tiny256-BF16.gguf",
                                  "vocab/ggml-vocab-phi-3.gguf", "ggml-vocab-llama-spm.gguf",
                                  "SmolLM2-135M-Instruct.Q4_1.gguf"])
def test_real_files_unicorn(emu, name):
    """Under unicorn with guard pages."""
    path = MODELS / name
    require(path.is_file(), f"model file {path}")
    data = path.read_bytes()
    compare_with_judge(emu, judge_reference(data), data)


def test_check_types_on_real_files(native):
    """gguf_check_types: the first tensor of a type the program cannot run, named."""
    for path in real_files():
        data = path.read_bytes()
        assert native.open(data) == 0
        tensors = judge_reference(data).tensors
        bad = [(i, t) for i, t in enumerate(tensors) if not ggml.runnable(ggml.BY_ID[t.type])]
        code = native.check_types()
        if not bad:
            assert code == 0, path
            continue
        i, t = bad[0]
        assert code == E["UNSUPPORTED"] and native.u64("ERR_INDEX") == i
        assert native.format_error(code).decode() == R.unsupported_message(i, t.name, t.type)

# ----------------------------------------------------------------------------- written files

def write_every_type(path: Path, *, alignment: int | None = None, tensors: bool = True) -> None:
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", 12345)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 0.1)
    w.add_bool("t.bool_t", True)
    w.add_bool("t.bool_f", False)
    w.add_string("t.str", "héllo")
    w.add_key_value("t.empty", "", VT.STRING)      # (add_string skips empty strings)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", 2**62)
    w.add_int64("t.i64neg", -2**63)
    w.add_float64("t.f64", 1e300)
    w.add_float64("t.f64small", 3.25)
    for sub, vals in ((VT.UINT8, [1, 2, 3]), (VT.INT8, [-1]), (VT.UINT16, [7, 8]), (VT.INT16, [-9]),
                      (VT.UINT32, [10, 11, 12]), (VT.INT32, [-13, 14]), (VT.FLOAT32, [1.5, -2.5]),
                      (VT.BOOL, [True, False, True]), (VT.UINT64, [2**63]), (VT.INT64, [-2]),
                      (VT.FLOAT64, [0.5]), (VT.STRING, ["a", "", "ccc" * 50])):
        w.add_key_value(f"a.{sub.name.lower()}", vals, VT.ARRAY, sub_type=sub)
    w.add_key_value("a.nested_str", [["x", "yy"], ["zzz"], ["", "w"]], VT.ARRAY)
    w.add_key_value("a.nested_int", [[1, 2, 3], [4]], VT.ARRAY)
    w.add_key_value("a.nested3", [[["deep"]], [["er", "still"]]], VT.ARRAY)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if tensors:
        rng = np.random.default_rng(1)
        w.add_tensor("f32.weight", rng.standard_normal((3, 5), dtype=np.float32))
        w.add_tensor("f16.weight", rng.standard_normal((2, 2, 7)).astype(np.float16))
        w.add_tensor("i8.bias", np.arange(9, dtype=np.int8))
        q = rng.integers(0, 256, size=(4, 34), dtype=np.uint8)       # 4 rows of one Q8_0 block
        w.add_tensor("q8.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("f64.x", np.ones((1, 1, 2, 3), dtype=np.float64))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("alignment,tensors,version", [(None, True, 3), (64, True, 3),
                                                       (None, False, 3), (None, True, 2),
                                                       (64, False, 2), (1, True, 3)])
def test_written_files(emu, native, tmp_path, alignment, tensors, version):
    path = tmp_path / "t.gguf"
    write_every_type(path, alignment=alignment, tensors=tensors)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, version)        # v2 has v3's layout (u64 counts)
    path.write_bytes(data)
    for a in (emu, native):
        compare_with_judge(a, judge_gguf_py(path), bytes(data))
        compare_with_judge(a, judge_reference(bytes(data)), bytes(data))
        assert a.u32("VERSION") == version
        if alignment:
            assert a.u32("ALIGNMENT") == alignment
    assert emu.get("f32", b"t.f64")[1] == np.float32(np.inf)       # 1e300 rounds to inf in f32
    assert emu.get("u64", b"t.u64") == (0, 2**64 - 1)
    assert emu.get("u64", b"t.i64neg")[0] == E["NEGATIVE"]
    assert emu.get("bool", b"t.bool_t") == (0, 1) and emu.get("bool", b"t.bool_f") == (0, 0)
    assert emu.get("str", b"t.empty") == (0, b"")
    code, (et, count, _) = emu.get("array", b"a.nested_str", want=T["ARRAY"])
    assert (code, et, count) == (0, T["ARRAY"], 3)


# ----------------------------------------------------------------------------- bad files

def test_truncated_at_every_byte(emu):
    """Every prefix of a small file: the reference's code and message, never a fault."""
    data = small_model()
    assert expect_same_as_reference(emu, data, "OK").tensors
    codes = set()
    for n in range(len(data)):
        codes.add(expect_same_as_reference(emu, data[:n]).error)
    assert codes == {"MAGIC", "TRUNCATED", "COUNT", "DATA_RANGE"}, codes


def test_every_bit_flip_of_the_header_and_infos(emu):
    data = small_model()
    end = R.check(data).data_start
    for pos in range(0, end):
        for bit in (0, 3, 7):
            d = bytearray(data)
            d[pos] ^= 1 << bit
            expect_same_as_reference(emu, bytes(d))


BIG = 2**64 - 1
GOOD_KVS = [kv("general.architecture", T["STRING"], gstr("llama"))]


def _arr(et: int, count: int, body: bytes = b"") -> bytes:
    return struct.pack("<IQ", et, count) + body


def _nest(depth: int) -> bytes:
    """An array value whose innermost array sits `depth` arrays deep."""
    inner = _arr(T["UINT8"], 1, b"\x07")
    for _ in range(depth):
        inner = _arr(T["ARRAY"], 1, inner)
    return inner


BAD = {
    "magic": (b"GGUf" + bytes(40), "MAGIC"),
    "empty": (b"", "MAGIC"),
    "three bytes": (b"GGU", "MAGIC"),
    "header cut": (b"GGUF" + struct.pack("<I", 3) + bytes(8), "TRUNCATED"),
    "version 1": (build(GOOD_KVS, [], version=1), "VERSION"),
    "version 4": (build(GOOD_KVS, [], version=4), "VERSION"),
    "version 0xffffffff": (build(GOOD_KVS, [], version=0xFFFFFFFF), "VERSION"),
    "kv_count huge": (build(GOOD_KVS, [], n_kv=BIG), "COUNT"),
    "tensor_count huge": (build(GOOD_KVS, [], n_tensors=2**63), "COUNT"),
    "kv_count one more": (build(GOOD_KVS, [], n_kv=2), "TRUNCATED"),
    "key length huge": (build([gstr(b"")[:0] + struct.pack("<Q", BIG) + bytes(16)], []), "TRUNCATED"),
    "key length one past": (build([struct.pack("<Q", 14) + b"general.name" + struct.pack("<I", 0)], []), "TRUNCATED"),
    "string length huge": (build([kv("general.name", T["STRING"], struct.pack("<Q", BIG) + b"abc")], []), "TRUNCATED"),
    "string length 2^63": (build([kv("general.name", T["STRING"], struct.pack("<Q", 2**63) + b"abc")], []), "TRUNCATED"),
    "array count huge u8": (build([kv("a", T["ARRAY"], _arr(T["UINT8"], BIG, b"xyz"))], []), "TRUNCATED"),
    "array count huge f64": (build([kv("a", T["ARRAY"], _arr(T["FLOAT64"], 2**61, bytes(64)))], []), "TRUNCATED"),
    "array count wraps u32": (build([kv("a", T["ARRAY"], _arr(T["UINT32"], 2**62 + 1, bytes(16)))], []), "TRUNCATED"),
    "array of strings huge": (build([kv("a", T["ARRAY"], _arr(T["STRING"], BIG, gstr("x") * 3))], []), "TRUNCATED"),
    "string in array huge": (build([kv("a", T["ARRAY"], _arr(T["STRING"], 2, gstr("x") + struct.pack("<Q", BIG)))], []), "TRUNCATED"),
    "value type 13": (build([kv("a", 13, b"\0" * 8)], []), "VALUE_TYPE"),
    "value type 0xffffffff": (build([kv("a", 0xFFFFFFFF, b"\0" * 8)], []), "VALUE_TYPE"),
    "element type 13, 0 elements": (build([kv("a", T["ARRAY"], _arr(13, 0))], []), "VALUE_TYPE"),
    "nested element type 99": (build([kv("a", T["ARRAY"], _arr(T["ARRAY"], 1, _arr(99, 0)))], []), "VALUE_TYPE"),
    "nesting 3 ok": (build([kv("a", T["ARRAY"], _nest(3))], []), "OK"),
    "nesting 4": (build([kv("a", T["ARRAY"], _nest(4))], []), "NESTING"),
    "nesting 4, no elements": (build([kv("a", T["ARRAY"], _arr(T["ARRAY"], 1, _arr(T["ARRAY"], 1, _arr(T["ARRAY"], 1, _arr(T["ARRAY"], 0)))))], []), "OK"),
    "empty arrays": (build([kv("a", T["ARRAY"], _arr(T["STRING"], 0)), kv("b", T["ARRAY"], _arr(T["FLOAT64"], 0))], []), "OK"),
    "scalar cut": (build([kv("a", T["UINT64"], b"\1\2\3")], []), "TRUNCATED"),
    "alignment 0": (build([u32kv("general.alignment", 0)], []), "ALIGNMENT"),
    "alignment 48": (build([u32kv("general.alignment", 48)], []), "ALIGNMENT"),
    "alignment 2^31 ok": (build([u32kv("general.alignment", 2**31)], []), "OK"),
    "alignment u64": (build([kv("general.alignment", T["UINT64"], struct.pack("<Q", 32))], []), "ALIGNMENT_TYPE"),
    "alignment string": (build([kv("general.alignment", T["STRING"], gstr("32"))], []), "ALIGNMENT_TYPE"),
    "second alignment ignored": (build([u32kv("general.alignment", 64), u32kv("general.alignment", 3)], []), "OK"),
    "name length huge": (build(GOOD_KVS, [struct.pack("<Q", BIG) + bytes(40)]), "TRUNCATED"),
    "name 64 bytes": (build(GOOD_KVS, [info("n" * 64, [32], 0, 0)], bytes(128)), "NAME_LEN"),
    "name 63 bytes ok": (build(GOOD_KVS, [info("n" * 63, [32], 0, 0)], bytes(128)), "OK"),
    "n_dims 0": (build(GOOD_KVS, [info("t", [], 0, 0, n_dims=0) + bytes(8)], bytes(64)), "N_DIMS"),
    "n_dims 5": (build(GOOD_KVS, [info("t", [1, 1, 1, 1, 1], 0, 0)], bytes(64)), "N_DIMS"),
    "n_dims huge": (build(GOOD_KVS, [info("t", [1], 0, 0, n_dims=0x80000001)], bytes(64)), "N_DIMS"),
    "dims cut": (build(GOOD_KVS, [gstr("t") + struct.pack("<I", 4) + bytes(20)], pad=False), "TRUNCATED"),
    "ne 0": (build(GOOD_KVS, [info("t", [4, 0], 0, 0)], bytes(64)), "DIM"),
    "ne 2^32": (build(GOOD_KVS, [info("t", [2**32, 1], 0, 0)], bytes(64)), "DIM"),
    "ne 2^64-1": (build(GOOD_KVS, [info("t", [1, 1, BIG], 0, 0)], bytes(64)), "DIM"),
    "rows 2^32": (build(GOOD_KVS, [info("t", [1, 2**16, 2**16], 0, 0)], bytes(64)), "ROWS"),
    "rows 2^32-1 too big for the file": (build(GOOD_KVS, [info("t", [1, 65535, 65537], 0, 0)], bytes(64)), "DATA_RANGE"),
    "type 4 (retired)": (build(GOOD_KVS, [info("t", [32], 4, 0)], bytes(64)), "TENSOR_TYPE"),
    "type 42": (build(GOOD_KVS, [info("t", [32], 42, 0)], bytes(64)), "TENSOR_TYPE"),
    "type 0xffffffff": (build(GOOD_KVS, [info("t", [32], 0xFFFFFFFF, 0)], bytes(64)), "TENSOR_TYPE"),
    "q4_0 row of 48": (build(GOOD_KVS, [info("t", [48, 2], 2, 0)], bytes(64)), "BLOCK"),
    "q4_k row of 32": (build(GOOD_KVS, [info("t", [32], 12, 0)], bytes(256)), "BLOCK"),
    "offset unaligned": (build(GOOD_KVS, [info("t", [4], 0, 8)], bytes(64)), "OFFSET_ALIGN"),
    "offset past the end": (build(GOOD_KVS, [info("t", [4], 0, 64)], bytes(64)), "DATA_RANGE"),
    "last byte missing": (build(GOOD_KVS, [info("t", [16], 0, 0)], bytes(63)), "DATA_RANGE"),
    "offset wraps": (build(GOOD_KVS, [info("t", [16], 0, 2**64 - 32)], bytes(64)), "DATA_RANGE"),
    "bytes overflow": (build(GOOD_KVS, [info("t", [2**32 - 1, 2**32 - 1], 28, 0)], bytes(64)), "DATA_RANGE"),
    "overlap": (build(GOOD_KVS, [info("a", [16], 0, 0), info("b", [16], 0, 32)], bytes(128)), "OVERLAP"),
    "out of order": (build(GOOD_KVS, [info("a", [8], 0, 64), info("b", [8], 0, 0)], bytes(128)), "OVERLAP"),
    "same offset": (build(GOOD_KVS, [info("a", [8], 0, 0), info("b", [8], 0, 0)], bytes(128)), "OVERLAP"),
    "gap ok": (build(GOOD_KVS, [info("a", [8], 0, 0), info("b", [8], 0, 96)], bytes(128)), "OK"),
    "no data section, no tensors ok": (build(GOOD_KVS, [], pad=False), "OK"),
    "no data section, one tensor": (build(GOOD_KVS, [info("t", [1], 0, 0)], pad=False), "DATA_RANGE"),
    "type and offset cut": (build(GOOD_KVS, [info("t", [4], 0, 0)[:-5]], pad=False), "TRUNCATED"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file(emu, case):
    data, want = BAD[case]
    expect_same_as_reference(emu, data, want)


def test_bad_files_native(native):
    for case, (data, want) in BAD.items():
        expect_same_as_reference(native, data, want)


def test_messages_by_example(emu):
    """A few lines spelled out in full (the reference restates the rest)."""
    def line(data):
        return emu.format_error(emu.open(data)).decode()
    assert line(BAD["version 1"][0]) == "gguf: version 1 (supported: 2, 3)"
    assert line(BAD["string length huge"][0]) == (
        "gguf: metadata key 0 'general.name': a string of 18446744073709551615 bytes at offset 48 "
        f"runs past the end of the file ({len(BAD['string length huge'][0])} bytes)")
    assert line(BAD["q4_0 row of 48"][0]) == ("gguf: tensor 0 't' has rows of 48 elements, not a "
                                              "multiple of the Q4_0 block size 32")
    assert line(BAD["alignment 48"][0]) == "gguf: general.alignment is 48, must be a nonzero power of two"
    assert line(BAD["header cut"][0]) == "gguf: the file is 16 bytes, shorter than the 24-byte header"
    odd = build(GOOD_KVS, [info(b"bad\nname\xff" + b"x" * 50, [4, 0], 0, 0)], bytes(64))
    assert line(odd) == ("gguf: tensor 0 'bad?name?xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' "
                         "has dimension 1 = 0 (must be 1 to 4294967295)")


def test_message_capacity(emu):
    """gguf_format_error cuts to the capacity, NUL-terminated, into a buffer that ends at a
    guard page; capacity 0 writes nothing."""
    code = emu.open(BAD["string length huge"][0])
    full = emu.format_error(code)
    for cap in (1, 2, 5, 17, 40, len(full), len(full) + 1):
        assert full.startswith(emu.format_error(code, cap))
        assert len(emu.format_error(code, cap)) == min(cap - 1, len(full))
    assert emu.format_error(code, 0) == b""


def test_error_text_every_code(emu):
    for code in list(range(len(GGUF_ERRORS))) + [len(GGUF_ERRORS), 0xFFFFFFFF]:
        text = emu.error_text(code)
        assert text.startswith(b"gguf: ") and b"\n" not in text
    assert emu.error_text(999) == b"gguf: unknown error code"
    assert len({emu.error_text(c) for c in range(len(GGUF_ERRORS))}) == len(GGUF_ERRORS)


# ----------------------------------------------------------------------------- lookups

def test_lookups_and_their_errors(emu):
    data = small_model()
    assert emu.open(data) == 0
    assert emu.get("str", b"general.architecture") == (0, b"llama")
    assert emu.get("u64", b"llama.block_count") == (0, 2)
    assert emu.get("u64", b"llama.block_coun") == (E["NO_KEY"], None)
    assert emu.format_error(E["NO_KEY"]) == b"gguf: no metadata key 'llama.block_coun'"
    assert emu.get("u64", b"") == (E["NO_KEY"], None)
    assert emu.get("u64", b"x.neg") == (E["NEGATIVE"], None)
    assert emu.format_error(E["NEGATIVE"]) == b"gguf: metadata key 'x.neg' is -5, expected a non-negative integer"
    code, (et, count, ptr) = emu.get("array", b"x.f32s", want=T["FLOAT32"])
    assert (code, et, count) == (0, T["FLOAT32"], 2)
    assert struct.unpack("<2f", emu.m.read(ptr, 8)) == (1.0, 2.0)
    assert emu.get("array", b"x.f32s", want=T["INT32"])[0] == E["KEY_TYPE"]
    assert emu.get("u64", b"llama.block_count")[0] == 0       # ERR_PART reset after an array error
    assert emu.get("str", b"llama.block_count")[0] == E["KEY_TYPE"]
    assert emu.format_error(E["KEY_TYPE"]) == \
        b"gguf: metadata key 'llama.block_count' has type uint32, expected a string"
    ptr, _ = emu.find_key(b"tokenizer.ggml.tokens")
    assert ptr and emu.u64("ERR_INDEX") == 2
    assert emu.find_key(b"nope") == (0, E["NO_KEY"])
    # tensors
    code, t = emu.find_tensor(b"b.weight")
    assert code == 0 and t["TYPE"] == 8 and t["N"] == 32 and t["ROWS"] == 2 and t["ROW_BYTES"] == 34
    assert t["BYTES"] == 68 and t["DATA"] == emu.file + R.check(data).data_start + 32
    assert emu.find_tensor(b"b.weigh") == (E["NO_TENSOR"], None)
    assert emu.format_error(E["NO_TENSOR"]) == b"gguf: no tensor 'b.weigh'"
    code, t, name = emu.tensor_at(2)
    assert (code, name, t["NE"], t["N_DIMS"], t["ROWS"]) == (0, b"c.weight", (3, 1, 2, 1), 3, 2)
    assert emu.tensor_at(2, with_name=False)[1] == t
    assert emu.tensor_at(3)[0] == E["INDEX"]
    assert emu.format_error(E["INDEX"]) == b"gguf: tensor index 3 is out of range (3 tensors)"
    assert emu.tensor_at(2**64 - 1)[0] == E["INDEX"]
    assert emu.check_types() == 0


def test_duplicates_refused_at_lookup(emu):
    dup = build([u32kv("a.b", 1), u32kv("c", 2), u32kv("a.b", 3)],
                [info("t", [8], 0, 0), info("u", [8], 0, 32), info("t", [8], 0, 64)], bytes(96))
    assert expect_same_as_reference(emu, dup, "OK")
    assert emu.get("u64", b"a.b") == (E["DUP_KEY"], None)
    assert emu.format_error(E["DUP_KEY"]) == b"gguf: metadata key 'a.b' appears more than once"
    assert emu.find_key(b"a.b") == (0, E["DUP_KEY"])
    assert emu.get("u64", b"c") == (0, 2)
    assert emu.find_tensor(b"t")[0] == E["DUP_TENSOR"]
    assert emu.format_error(E["DUP_TENSOR"]) == b"gguf: tensor 't' appears more than once"
    assert emu.find_tensor(b"u")[0] == 0


def test_not_open(emu):
    assert emu.open(b"nope") == E["MAGIC"]
    assert emu.get("u64", b"a") == (E["NOT_OPEN"], None)
    assert emu.find_key(b"a") == (0, E["NOT_OPEN"])
    assert emu.find_tensor(b"a")[0] == E["NOT_OPEN"]
    assert emu.tensor_at(0)[0] == E["NOT_OPEN"]
    assert emu.check_types() == E["NOT_OPEN"]
    assert emu.format_error(E["NOT_OPEN"]) == b"gguf: no GGUF file is open (gguf_open did not succeed)"


def test_unsupported_type(emu):
    data = build(GOOD_KVS, [info("ok.weight", [32], 8, 0), info("blk.0.attn_q.weight", [256], 17, 64)],
                 bytes(64 + 74))
    assert emu.open(data) == 0
    assert emu.check_types() == E["UNSUPPORTED"]
    assert emu.format_error(E["UNSUPPORTED"]).decode() == (
        "gguf: tensor 1 'blk.0.attn_q.weight' has type IQ2_XS (ggml type 17), not supported here "
        "(supported: F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K BF16)")


def test_generated_names_are_unique():
    """layouts.inc: no struct field and constant share a name (the asm would get one)."""
    from peasm import layouts
    names = [ln.split()[1].rstrip(",") for ln in layouts.render_include().splitlines()
             if ln.startswith(".equ ")]
    assert len(names) == len(set(names))


def test_keystone_and_gas_agree():
    """The reader's link, byte for byte, with binutils (as test_binutils_crosscheck does for
    the shipped manifests)."""
    require_tool("as", "ld")
    a, b = gguf_image("keystone"), gguf_image("gas")
    assert a.flat(0x10000000) == b.flat(0x10000000)
