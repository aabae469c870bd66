"""app_asm/model.s + forward.s: the llama2.c .bin loader and forward pass, run in unicorn.

Judges: tests/reference (the numpy oracle: formats, corrupt files, the forward pass) and,
for the header rules this loader adds (limits, exact size), a few lines of Python below
that restate model.inc's rules. Every buffer handed to the asm sits between guard pages
(peasm.runners.emu), so reading one byte past a header, a weight or a cache faults.

Two ways to supply the math kernels:

* the real ones (kernels_asm/*.s, SSE2 bodies: unicorn cannot run AVX): logits within a
  stated tolerance of the numpy reference and greedy tokens equal to its;
* stand-ins written in numpy and reached through emulator traps (the dispatch table's slots
  point at them). They do each kernel's arithmetic exactly as the reference does, so any
  difference from the reference is this module's sequencing (wrong weight, layer, cache
  row, stride or argument), with no kernel rounding to hide behind.

Struct offsets and codes are read from app_asm/model.inc and kernels_asm/kernels.inc, never
typed twice.
"""
from __future__ import annotations

import re
import struct
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from peasm.errors import PeasmError
from peasm.linker import link
from peasm.runners.emu import Emu
from tests.reference import llama2 as ref
from tests.support import REPO, model_file, require

APP = REPO / "app_asm"
KERNELS = REPO / "kernels_asm"
MODEL_SOURCES = [APP / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf_msg.s",
                                   "forward.s")]


# ----------------------------------------------------------------------------- constants

def _equs(path: Path, into: dict[str, int]) -> dict[str, int]:
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*\.equ\s+(\w+)\s*,\s*([^#]+)", line)
        if m:
            into[m.group(1)] = int(eval(m.group(2), {"__builtins__": {}}, dict(into)))
    return into


def _constants() -> dict[str, int]:
    from peasm import generated
    into = generated.constants()
    return _equs(APP / "model.inc", _equs(KERNELS / "kernels.inc", into))


C = _constants()
CODES = {k: v for k, v in C.items() if k.startswith("MODEL_E_") or k == "MODEL_OK"}
FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
LIMITS = (C["MODEL_MAX_DIM"], C["MODEL_MAX_HIDDEN_DIM"], C["MODEL_MAX_LAYERS"], C["MODEL_MAX_HEADS"],
          C["MODEL_MAX_HEADS"], C["MODEL_MAX_VOCAB"], C["MODEL_MAX_SEQ_LEN"])
TENSORS = ("TOKEN_EMBEDDING", "RMS_ATT", "WQ", "WK", "WV", "WO", "RMS_FFN", "W1", "W2", "W3",
           "RMS_FINAL", "WCLS")
STATE = ("X", "XB", "XB2", "HB", "HB2", "Q", "ATT", "LOGITS", "KEY_CACHE", "VALUE_CACHE", "ROPE",
         "XQ", "K", "V")
TABLE = ("k_matvec", "k_rmsnorm", "k_softmax", "k_expf", "k_swiglu", "k_add", "k_scale", "k_axpy",
         "k_dot", "k_argmax", "k_rope_table", "k_rope_apply", "k_attention", "k_stream_read",
         "k_rope_table_ggml", "k_rope_apply_neox", "k_stub_to_float")
U32 = 0xFFFF_FFFF


def expected_code(ints: tuple[int, ...], size: int) -> tuple[int, int | None]:
    """model.inc's header rules restated: (code, offending field index or None)."""
    if size < ref.HEADER_SIZE:
        return CODES["MODEL_E_SHORT"], None
    for i, v in enumerate(ints):
        a = abs(v) if (i == 5 and v != -2**31) else v
        if a <= 0:
            return CODES["MODEL_E_NONPOSITIVE"], i
        if a > LIMITS[i]:
            return CODES["MODEL_E_TOO_BIG"], i
    cfg = ref.Config.from_header(ints)
    if cfg.dim % cfg.n_heads:
        return CODES["MODEL_E_HEADS"], None
    if cfg.head_size % 2:
        return CODES["MODEL_E_HEAD_SIZE"], None
    if cfg.n_heads % cfg.n_kv_heads:
        return CODES["MODEL_E_KV_HEADS"], None
    if size != cfg.file_size():
        return CODES["MODEL_E_SIZE"], None
    return CODES["MODEL_OK"], None


def state_bytes(cfg: ref.Config, ctx: int, kv_bytes: int = 4) -> int:
    """model_state.s's layout restated: 64-byte aligned f32 buffers, the caches of
    kv_bytes-byte elements (4: f32, 2: f16), 64 bytes of slack."""
    r64 = lambda n: (n + 63) // 64 * 64
    kv = cfg.n_layers * ctx * cfg.kv_dim * kv_bytes
    sizes = [4 * n for n in [cfg.dim] * 3 + [cfg.hidden_dim] * 2 + [cfg.dim, cfg.n_heads * ctx, cfg.vocab_size]]
    sizes += [kv, kv] + [4 * n for n in (2 * cfg.head_size, max(cfg.dim, cfg.hidden_dim), cfg.kv_dim, cfg.kv_dim)]
    return sum(r64(n) for n in sizes) + 64


# ----------------------------------------------------------------------------- images

def _stub_type_table() -> str:
    """ggml_type_table with the F32 row only, and a ggml_type_body that answers from the
    stand-in slots: F32 matvec = k_matvec, F32 to_float = k_stub_to_float."""
    from peasm import ggml
    rows = []
    for t_id in range(ggml.TYPE_COUNT):
        if t_id == 0:
            rows.append("    .byte 70, 51, 50, 0, 0, 0, 0, 0\n    .long 1, 4, 0, 1\n"
                        f"    .zero {ggml.ROW.size - 24}\n")
        else:
            rows.append(f"    .zero {ggml.ROW.size}\n")
    return (".section .rdata\n.balign 8\n.global ggml_type_table\nggml_type_table:\n"
            + "".join(rows)
            + ".section .text\n.global ggml_type_body\nggml_type_body:\n"
            f"    xor eax, eax\n    test ecx, ecx\n    jnz 1f\n"
            f"    cmp edx, {C['GGML_TT_MATVEC']}\n    jne 2f\n"
            "    mov rax, qword ptr [rip + k_matvec]\n    ret\n"
            f"2:\n    cmp edx, {C['GGML_TT_TO_FLOAT']}\n    jne 1f\n"
            "    mov rax, qword ptr [rip + k_stub_to_float]\n1:\n    ret\n")


STUB_TABLE = "".join(
    [".section .data\n.balign 8\n.global " + ", ".join(TABLE) + ", k_attention_heads\n"]
    + [f"{name}: .quad 0\n" for name in TABLE + ("k_attention_heads",)]) + _stub_type_table()


@lru_cache(maxsize=None)
def _stub_table_path() -> Path:
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="test_app_model_"))
    p = d / "stub_table.s"
    p.write_text(STUB_TABLE, encoding="utf-8")
    return p


@lru_cache(maxsize=None)
def header_image():
    """The loader and its messages (the GGUF lines' module reads the type table: the stub's)."""
    return link([APP / "model.s", APP / "model_state.s", APP / "model_msg.s", APP / "model_gguf_msg.s",
                 _stub_table_path(), KERNELS / "parallel.s"], "model_check_header")


@lru_cache(maxsize=None)
def stub_image(backend: str = "keystone"):
    """model.s + forward.s + an empty dispatch table (the stand-in kernels fill it)."""
    return link(MODEL_SOURCES + [_stub_table_path(), KERNELS / "parallel.s"], "model_forward", backend=backend,
                include_dirs=[KERNELS])   # (the job board: with no workers, one call of the body)


def kernel_sources() -> list[Path]:
    manifest = KERNELS / "kernels.toml"
    if manifest.is_file():
        from peasm.linker import load_manifest
        return [Path(p) for p in load_manifest(manifest).sources]
    return sorted(KERNELS.glob("*.s"))


@lru_cache(maxsize=None)
def _kernel_image():
    try:
        return link(MODEL_SOURCES + kernel_sources(), "model_forward"), None
    except PeasmError as e:
        return None, str(e)


def kernel_image():
    image, err = _kernel_image()
    require(image is not None, f"the math kernels (kernels_asm/*.s do not link yet: {err})")
    return image


# ----------------------------------------------------------------------------- the module

class AsmModel:
    """A Model struct in an Emu (or a NativeMachine), with the loader's calls and readers."""

    def __init__(self, emu):
        self.emu = emu
        self.m = emu.alloc(C["MODEL_SIZE"], align=8)
        self.file = None

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self.emu.read(self.m + C[name], 4))[0]

    def i32(self, name: str) -> int:
        return struct.unpack("<i", self.emu.read(self.m + C[name], 4))[0]

    def u64(self, name: str) -> int:
        return self.emu.read_u64(self.m + C[name])

    def check(self, data: bytes, size: int | None = None, address: int | None = None) -> int:
        """model_check_header on `data` (copied into a guard-paged buffer of exactly its size)."""
        if address is None:
            address = self.emu.alloc(len(data), data, align=1) if data else self.emu.alloc(1, align=1) + 1
        self.file = address
        return self.emu.call("model_check_header", self.m, address, len(data) if size is None else size)

    def load(self, data: bytes, ctx: int | None = None) -> int:
        assert self.check(data) == 0, self.message(self.u32("MODEL_ERROR"))
        assert self.bind() == 0
        return self.init_state(ctx or self.u32("MODEL_SEQ_LEN"))

    def bind(self) -> int:
        """model_bind_weights with a guard-paged layer table of model_layers_bytes."""
        need = self.emu.call("model_layers_bytes", self.m)
        assert need == C["LAYER_SIZE"] * self.u32("MODEL_N_LAYERS")
        return self.emu.call("model_bind_weights", self.m, self.file, self.emu.alloc(need, align=8))

    def tensor(self, field: str, layer: int | None = None) -> dict[str, int]:
        """A TENSOR descriptor of the struct (layer None) or of the layer table."""
        if layer is None:
            base = self.m + C[f"MODEL_{field}"]
        else:
            base = self.u64("MODEL_LAYERS") + layer * C["LAYER_SIZE"] + C[f"LAYER_{field}"]
        raw = self.emu.read(base, C["TENSOR_SIZE"])
        out = {}
        for name in ("DATA", "BYTES", "ROW_BYTES"):
            out[name] = struct.unpack_from("<Q", raw, C[f"TENSOR_{name}"])[0]
        for name in ("TYPE", "N", "ROWS", "N_DIMS"):
            out[name] = struct.unpack_from("<I", raw, C[f"TENSOR_{name}"])[0]
        return out

    def init_state(self, ctx: int, spare: int = 0) -> int:
        need = self.emu.call("model_state_bytes", self.m, ctx)
        assert need, self.message(self.u32("MODEL_ERROR"))
        mem = self.emu.alloc(need + spare, align=1)
        assert self.emu.call("model_init_state", self.m, mem, ctx, need + spare) == 0
        return need

    def forward(self, token: int, pos: int) -> int:
        return self.emu.call("model_forward", self.m, token & U32, pos & U32)

    def logits(self, token: int, pos: int) -> np.ndarray:
        p = self.forward(token, pos)
        assert p, self.message(self.u32("MODEL_ERROR"))
        return np.frombuffer(self.emu.read(p, 4 * self.u32("MODEL_VOCAB_SIZE")), dtype="<f4").copy()

    def message(self, code: int, capacity: int = 256) -> str:
        buf = self.emu.alloc(capacity, align=1)
        n = self.emu.call("model_format_error", self.m, code, buf, capacity)
        raw = self.emu.read(buf, capacity)
        assert raw[n] == 0 and b"\0" not in raw[:n]
        return raw[:n].decode("utf-8")


# ----------------------------------------------------------------------------- stand-in kernels

def _f32(emu: Emu, address: int, n: int) -> np.ndarray:
    return np.frombuffer(emu.read(address, 4 * n), dtype="<f4").copy()


def _put(emu: Emu, address: int, arr: np.ndarray) -> None:
    emu.write(address, np.ascontiguousarray(arr, dtype="<f4").tobytes())


def _as_f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & U32))[0]


def install_numpy_kernels(emu: Emu) -> dict[str, int]:
    """Point the dispatch table at traps that do the reference's arithmetic; count calls."""
    calls: dict[str, int] = {}

    def matvec(e, a):
        n, d = a(3) & U32, a(4) & U32
        w = _f32(e, a(1), n * d).reshape(d, n)
        _put(e, a(0), ref.matmul(w, _f32(e, a(2), n)))

    def rmsnorm(e, a):
        n = a(3) & U32
        assert _as_f32(a(4)) == np.float32(1e-5)
        _put(e, a(0), ref.rmsnorm(_f32(e, a(1), n), _f32(e, a(2), n)))

    def rope_table(e, a):
        hs = a(2) & U32
        c, s = ref.rope_cos_sin(a(1) & U32, hs, hs)
        sign = np.tile(np.array([-1, 1], dtype=np.float32), hs // 2)
        _put(e, a(0), np.concatenate([np.repeat(c, 2), np.repeat(s, 2) * sign]))

    def rope_apply(e, a):
        n, hs = a(2) & U32, a(3) & U32
        assert n % hs == 0
        t = _f32(e, a(1), 2 * hs)
        v = _f32(e, a(0), n).reshape(-1, hs)
        swapped = v.reshape(-1, hs // 2, 2)[:, :, ::-1].reshape(-1, hs)
        _put(e, a(0), v * t[:hs] + swapped * t[hs:])

    def attention(e, a):
        blk = e.read(a(0), C["ATT_SIZE"])
        q8 = lambda off: struct.unpack_from("<Q", blk, off)[0]
        d4 = lambda off: struct.unpack_from("<I", blk, off)[0]
        pos, nh, nkv, hs, seq = (d4(C[k]) for k in ("ATT_POS", "ATT_N_HEADS", "ATT_N_KV_HEADS",
                                                     "ATT_HEAD_SIZE", "ATT_SEQ_LEN"))
        assert pos < seq
        kvd = nkv * hs
        q = _f32(e, q8(C["ATT_Q"]), nh * hs)
        keys = _f32(e, q8(C["ATT_KCACHE"]), (pos + 1) * kvd).reshape(pos + 1, kvd)
        vals = _f32(e, q8(C["ATT_VCACHE"]), (pos + 1) * kvd).reshape(pos + 1, kvd)
        out = np.empty(nh * hs, dtype=np.float32)
        for h in range(nh):
            kvh = h // (nh // nkv)
            sl = slice(kvh * hs, (kvh + 1) * hs)
            o, att = ref.attention_head(q[h * hs:(h + 1) * hs], keys[:, sl], vals[:, sl])
            out[h * hs:(h + 1) * hs] = o
            _put(e, q8(C["ATT_SCRATCH"]) + 4 * h * seq, att)
        _put(e, q8(C["ATT_OUT"]), out)

    def add(e, a):
        n = a(2) & U32
        _put(e, a(0), _f32(e, a(0), n) + _f32(e, a(1), n))

    def swiglu(e, a):
        n = a(2) & U32
        _put(e, a(0), (ref.silu(_f32(e, a(0), n)) * _f32(e, a(1), n)).astype(np.float32))

    def unexpected(e, a):
        raise AssertionError("the forward pass called a kernel it does not need")

    def to_float(e, a):          # F32 rows: a copy
        n = a(2) & U32
        _put(e, a(0), _f32(e, a(1), n))

    impl = {"k_matvec": matvec, "k_stub_to_float": to_float, "k_rmsnorm": rmsnorm,
            "k_rope_table": rope_table,
            "k_rope_apply": rope_apply, "k_attention": attention, "k_add": add, "k_swiglu": swiglu}
    for slot in TABLE:
        fn = impl.get(slot, unexpected)

        def counted(e, a, fn=fn, slot=slot):
            calls[slot] = calls.get(slot, 0) + 1
            fn(e, a)
        emu.write_u64(emu.address(slot), emu.trap(counted, slot))
    return calls


def numpy_kernel_model() -> tuple[AsmModel, dict[str, int]]:
    emu = Emu(stub_image())
    return AsmModel(emu), install_numpy_kernels(emu)


def sse2_model() -> AsmModel:
    emu = Emu(kernel_image())
    assert emu.call("kernels_init", 1, 0) == C["K_PATH_SSE2"]
    return AsmModel(emu)


class NativeMachine:
    """The subset of Emu's interface AsmModel uses, on the host CPU (peasm.runners.native):
    guard-paged buffers, callee-saved registers checked after every call."""

    def __init__(self, image):
        from peasm.runners import native
        self.native = native
        self.loaded = native.NativeImage(image)
        self.buffers: list = []

    def alloc(self, size: int, data: bytes | None = None, *, align: int = 4) -> int:
        buf = self.native.GuardedBuffer(max(size, len(data or b"")), align=align)
        self.buffers.append(buf)
        if data:
            self.native.write_memory(buf.address, data)
        return buf.address

    def read(self, address: int, size: int) -> bytes:
        return self.native.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        self.native.write_memory(address, data)

    def read_u64(self, address: int) -> int:
        return struct.unpack("<Q", self.read(address, 8))[0]

    def read_cstr(self, address: int) -> bytes:
        import ctypes
        return ctypes.string_at(address)

    def call(self, function: str, *args: int) -> int:
        return self.native.call(self.loaded.address(function), *args, where=self.loaded.where).rax

    def free(self) -> None:
        for b in self.buffers:
            b.free()
        self.buffers.clear()


def native_model(choice: str) -> AsmModel:
    """The real kernels on the host: choice "auto" (AVX2/FMA when the host has them) or "sse2"."""
    from peasm.runners import native
    ok, why = native.supported()
    require(ok, why)
    machine = NativeMachine(kernel_image())
    want = C["K_CHOICE_SSE2"] if choice == "sse2" else C["K_CHOICE_AUTO"]
    path = machine.call("kernels_init", native.host_cpu_bits(), want)
    if choice == "sse2":
        assert path == C["K_PATH_SSE2"]
    else:
        assert path == (C["K_PATH_AVX2"] if native.host_has_avx2_fma() else C["K_PATH_SSE2"])
    return AsmModel(machine)


# ----------------------------------------------------------------------------- header

def test_keystone_and_binutils_agree():
    """The two backends encode model.s and forward.s identically (keystone mis-encodes
    `[reg - EQU]` and `[reg + EQU + EQU]`; the sources avoid both, this keeps it so)."""
    from tests.support import require_tool
    require_tool("as", "ld")
    ks, gas = stub_image("keystone"), stub_image("gas")
    assert [(s.name, s.data, s.vsize) for s in ks.sections] == [(s.name, s.data, s.vsize) for s in gas.sections]
    assert ks.relocs == gas.relocs == []


@pytest.mark.parametrize("shape", ["stories260K", "stories15M", "stories110M", "tiny_gqa", "micro"])
def test_header_fields_and_offsets(shape):
    cfg = ref.SHAPES[shape]
    am = AsmModel(Emu(header_image()))
    assert am.check(cfg.header_bytes(), size=cfg.file_size(), address=None) == 0
    for i, name in enumerate(("MODEL_DIM", "MODEL_HIDDEN_DIM", "MODEL_N_LAYERS", "MODEL_N_HEADS",
                              "MODEL_N_KV_HEADS", "MODEL_VOCAB_SIZE", "MODEL_SEQ_LEN")):
        assert am.u32(name) == getattr(cfg, FIELDS[i])
    assert am.u32("MODEL_SHARED_CLASSIFIER") == int(cfg.shared_classifier)
    assert (am.u32("MODEL_HEAD_SIZE"), am.u32("MODEL_KV_DIM"), am.u32("MODEL_KV_MUL")) == \
        (cfg.head_size, cfg.kv_dim, cfg.kv_mul)
    assert am.u64("MODEL_EXPECTED_SIZE") == am.u64("MODEL_FILE_SIZE") == cfg.file_size()
    assert am.u64("MODEL_N_PARAMS") == cfg.n_params()
    assert am.u32("MODEL_FLAGS") == C["MODEL_F_CHECKED"]
    off, offsets = ref.HEADER_SIZE, {}
    for name, shape_ in cfg.tensor_shapes():
        offsets[name] = off
        off += 4 * int(np.prod(shape_))
    offsets.setdefault("wcls", offsets["token_embedding"])
    for t in TENSORS:
        assert am.u64(f"MODEL_OFF_{t}") == offsets[t.lower()], t


def test_real_header_and_binding():
    path = model_file("stories260K.bin")
    data = path.read_bytes()
    cfg = ref.read_header(data)
    am = AsmModel(Emu(header_image()))
    assert am.check(data) == 0
    assert am.u64("MODEL_EXPECTED_SIZE") == len(data) == cfg.file_size()
    assert am.bind() == 0
    assert am.u32("MODEL_FLAGS") == C["MODEL_F_CHECKED"] | C["MODEL_F_BOUND"]
    off = lambda t: am.file + am.u64(f"MODEL_OFF_{t}")
    D, H, K, V = cfg.dim, cfg.hidden_dim, cfg.kv_dim, cfg.vocab_size
    want = {("TOK_EMBD", None): (off("TOKEN_EMBEDDING"), D, V),
            ("OUTPUT", None): (off("WCLS"), D, V), ("OUTPUT_NORM", None): (off("RMS_FINAL"), D, 1)}
    per_layer = {"ATTN_NORM": ("RMS_ATT", D, 1), "ATTN_Q": ("WQ", D, D), "ATTN_K": ("WK", D, K),
                 "ATTN_V": ("WV", D, K), "ATTN_OUTPUT": ("WO", D, D), "FFN_NORM": ("RMS_FFN", D, 1),
                 "FFN_GATE": ("W1", D, H), "FFN_DOWN": ("W2", H, D), "FFN_UP": ("W3", D, H)}
    for layer in range(cfg.n_layers):
        for field, (t, n, rows) in per_layer.items():
            want[(field, layer)] = (off(t) + layer * 4 * n * rows, n, rows)
        for bias in ("ATTN_Q_BIAS", "ATTN_K_BIAS", "ATTN_V_BIAS"):
            assert am.tensor(bias, layer)["DATA"] == 0
    for (field, layer), (data_at, n, rows) in want.items():
        t = am.tensor(field, layer)
        assert (t["DATA"], t["TYPE"], t["N"], t["ROWS"]) == (data_at, 0, n, rows), (field, layer)
        assert t["ROW_BYTES"] == 4 * n and t["BYTES"] == 4 * n * rows
        assert t["N_DIMS"] == (1 if rows == 1 else 2)
    m = ref.read_model(data)
    rms_final = np.frombuffer(am.emu.read(am.tensor("OUTPUT_NORM")["DATA"], 4 * cfg.dim), "<f4")
    assert np.array_equal(rms_final, m.rms_final)


CORRUPT_CODES = {
    "empty": "SHORT", "short_header": "SHORT", "truncated": "SIZE", "truncated_one_byte": "SIZE",
    "trailing_bytes": "SIZE", "zero_dim": "NONPOSITIVE", "zero_layers": "NONPOSITIVE",
    "zero_heads": "NONPOSITIVE", "zero_kv_heads": "NONPOSITIVE", "zero_vocab": "NONPOSITIVE",
    "zero_seq_len": "NONPOSITIVE", "negative_dim": "NONPOSITIVE", "negative_hidden": "NONPOSITIVE",
    "negative_layers": "NONPOSITIVE", "negative_seq_len": "NONPOSITIVE", "huge_dim": "TOO_BIG",
    "huge_vocab": "TOO_BIG", "huge_seq_len": "TOO_BIG", "int_max_all": "TOO_BIG",
    "heads_not_dividing_dim": "HEADS", "kv_heads_gt_heads": "KV_HEADS",
    "kv_heads_not_dividing": "KV_HEADS", "odd_head_size": "HEAD_SIZE", "sign_flipped_vocab": "SIZE",
}


@pytest.mark.parametrize("shape", ["tiny_gqa", "micro"])
def test_corrupt_models_refused_with_a_clear_code(shape):
    assert set(CORRUPT_CODES) == set(ref.CORRUPTIONS)
    good = ref.model_bytes(ref.random_model(shape, seed=3))
    am = AsmModel(Emu(header_image()))
    seen = set()
    for kind in ref.CORRUPTIONS:
        bad = ref.corrupt_model_bytes(good, kind)
        code = am.check(bad)
        want = CODES["MODEL_E_" + CORRUPT_CODES[kind]]
        assert code == want == am.u32("MODEL_ERROR"), (kind, code)
        assert am.u32("MODEL_FLAGS") == 0, kind
        if len(bad) >= ref.HEADER_SIZE:
            ints = struct.unpack_from("<7i", bad, 0)
            exp, field = expected_code(ints, len(bad))
            assert exp == code, kind
            if field is not None:
                assert am.u32("MODEL_ERR_FIELD") == field and am.i32("MODEL_ERR_VALUE") == ints[field]
        line = am.message(code)
        seen.add(line)
        assert line and "\n" not in line, kind
        # a refused model cannot be bound or run
        assert am.emu.call("model_bind_weights", am.m, am.file, 0) == CODES["MODEL_E_NOT_READY"]
        assert am.emu.call("model_state_bytes", am.m, 8) == 0
    assert len(seen) >= 10                                  # specific lines, not one for all


def test_header_fuzz_never_faults_and_follows_the_rules():
    """Random headers (positive, negative, near the limits, valid ones with the right or a
    slightly wrong size): the code always matches the rules and nothing is read past the
    28 bytes (the header buffer ends at a guard page)."""
    rng = np.random.default_rng(1234)
    am = AsmModel(Emu(header_image()))
    hdr = am.emu.alloc(28, align=1)
    interesting = [0, 1, 2, 3, -1, -2, 2**31 - 1, -2**31, 65536, 65537, 262144, 262145, 4096, 4097,
                   1 << 20, (1 << 20) + 1, 6, 8, 12, 48, 288]
    counts: dict[int, int] = {}
    for i in range(800):
        kind = i % 4
        if kind == 0:
            ints = tuple(int(rng.choice(interesting)) for _ in range(7))
            size = int(rng.integers(0, 1 << 40))
        else:                                               # a runnable shape, or nearly
            heads = int(rng.integers(1, 9))
            kv = int(rng.choice([h for h in range(1, heads + 1) if heads % h == 0]))
            dim = heads * 2 * int(rng.integers(1, 40))
            cfg = ref.Config(dim, int(rng.integers(1, 3000)), int(rng.integers(1, 40)), heads, kv,
                             int(rng.integers(1, 40000)), int(rng.integers(1, 5000)),
                             bool(rng.integers(0, 2)))
            ints = cfg.header_ints()
            size = cfg.file_size() + (0 if kind == 1 else int(rng.choice([-4, -1, 1, 4, 12])))
            if kind == 3:                                   # one field changed: relations break
                ints = list(ints)
                ints[int(rng.integers(0, 7))] = int(rng.choice(interesting + list(range(-3, 50))))
                ints = tuple(ints)
        am.emu.write(hdr, struct.pack("<7i", *ints))
        code = am.emu.call("model_check_header", am.m, hdr, size)
        exp, field = expected_code(ints, size)
        assert code == exp, (ints, size, code, exp)
        if field is not None:
            assert am.u32("MODEL_ERR_FIELD") == field
        if code == 0:
            assert am.u64("MODEL_EXPECTED_SIZE") == size
        counts[code] = counts.get(code, 0) + 1
    assert counts.get(0, 0) > 100 and counts.get(CODES["MODEL_E_SIZE"], 0) > 100
    assert len(counts) >= 7, counts


def test_short_file_header_is_not_read():
    am = AsmModel(Emu(header_image()))
    for n in range(28):
        buf = am.emu.alloc(max(n, 1), b"\x01" * n, align=1)
        assert am.emu.call("model_check_header", am.m, buf + (1 if n == 0 else 0), n) == CODES["MODEL_E_SHORT"]
        assert am.message(CODES["MODEL_E_SHORT"]) == \
            f"model file is {n} bytes, shorter than the 28-byte header"


def test_messages():
    am = AsmModel(Emu(header_image()))
    texts = []
    for code in list(range(C["MODEL_E_COUNT"] + 2)) + [999, U32]:
        p = am.emu.call("model_error_text", code)
        line = am.emu.read_cstr(p).decode("utf-8")
        assert line and "\n" not in line
        texts.append(line)
    assert len(set(texts[:C["MODEL_E_COUNT"]])) == C["MODEL_E_COUNT"]
    assert texts[C["MODEL_E_COUNT"]] == texts[-1] == "model: unknown error code"

    cfg = ref.SHAPES["tiny_gqa"]
    n = cfg.file_size()
    assert am.check(cfg.header_bytes(), size=n - 1) == CODES["MODEL_E_SIZE"]
    assert am.message(CODES["MODEL_E_SIZE"]) == \
        f"model file size mismatch: header implies {n} bytes, file has {n - 1}"
    bad = struct.pack("<7i", 48, 100, -1, 6, 2, -300, 64)
    assert am.check(bad, size=1000) == CODES["MODEL_E_NONPOSITIVE"]
    assert am.message(CODES["MODEL_E_NONPOSITIVE"]) == "model header: n_layers is -1, must be > 0"
    bad = struct.pack("<7i", 48, 100, 3, 6, 2, -(1 << 30), 64)
    assert am.check(bad, size=1000) == CODES["MODEL_E_TOO_BIG"]
    assert am.message(CODES["MODEL_E_TOO_BIG"]) == \
        "model header: vocab_size is -1073741824, above this loader's limit of 1048576"
    bad = struct.pack("<7i", 48, 100, 3, 7, 1, 300, 64)
    assert am.check(bad, size=1000) == CODES["MODEL_E_HEADS"]
    assert am.message(CODES["MODEL_E_HEADS"]).endswith("(dim 48, n_heads 7)")
    bad = struct.pack("<7i", 48, 100, 3, 6, 4, 300, 64)
    assert am.check(bad, size=1000) == CODES["MODEL_E_KV_HEADS"]
    assert am.message(CODES["MODEL_E_KV_HEADS"]).endswith("(n_heads 6, n_kv_heads 4)")
    # the text is cut to the capacity, always NUL-terminated; capacity 0 writes nothing
    full = am.message(CODES["MODEL_E_KV_HEADS"])
    for cap in (1, 2, 10, len(full), len(full) + 1):
        assert am.message(CODES["MODEL_E_KV_HEADS"], cap) == full[:cap - 1]
    buf = am.emu.alloc(1, b"\xAA", align=1)
    assert am.emu.call("model_format_error", am.m, 5, buf, 0) == 0
    assert am.emu.read(buf, 1) == b"\xAA"


def test_state_bytes_and_init_refusals():
    cfg = ref.SHAPES["tiny_gqa"]
    am, _ = numpy_kernel_model()
    good = ref.model_bytes(ref.random_model("tiny_gqa", seed=1))
    E = CODES
    # nothing checked yet: every later step refuses
    assert am.emu.call("model_state_bytes", am.m, 8) == 0
    assert am.u32("MODEL_ERROR") == E["MODEL_E_NOT_READY"]
    assert am.emu.call("model_bind_weights", am.m, 0, 0) == E["MODEL_E_NOT_READY"]
    assert am.emu.call("model_layers_bytes", am.m) == 0
    assert am.emu.call("model_init_state", am.m, 0, 8, 0) == E["MODEL_E_NOT_READY"]
    assert am.forward(1, 0) == 0 and am.u32("MODEL_ERROR") == E["MODEL_E_NOT_READY"]
    assert am.check(good) == 0
    for ctx in (1, 7, 16, cfg.seq_len):
        assert am.emu.call("model_state_bytes", am.m, ctx) == state_bytes(cfg, ctx)
    for ctx in (0, cfg.seq_len + 1, U32, 1 << 31):
        assert am.emu.call("model_state_bytes", am.m, ctx) == 0
        assert am.u32("MODEL_ERROR") == E["MODEL_E_CTX"]
        assert am.emu.call("model_init_state", am.m, 0, ctx, 1 << 40) == E["MODEL_E_CTX"]
    assert am.message(E["MODEL_E_CTX"]) == f"model: context length {1 << 31} is 0 or above seq_len 64"
    need = state_bytes(cfg, 16)
    mem = am.emu.alloc(need, align=1)
    assert am.emu.call("model_init_state", am.m, mem, 16, need - 1) == E["MODEL_E_MEMORY"]
    # weights not bound yet: the state is set up but forward still refuses
    assert am.emu.call("model_init_state", am.m, mem, 16, need) == 0
    assert am.forward(1, 0) == 0 and am.u32("MODEL_ERROR") == E["MODEL_E_NOT_READY"]
    # the layout: 64-aligned buffers inside [mem, mem + need), in order, zeroed
    ptrs = [am.u64(f"MODEL_S_{s}") for s in STATE]
    assert all(p % 64 == 0 for p in ptrs) and ptrs == sorted(ptrs)
    assert mem <= ptrs[0] and ptrs[-1] + 4 * cfg.kv_dim <= mem + need
    assert am.emu.read(ptrs[0], ptrs[-1] - ptrs[0]) == bytes(ptrs[-1] - ptrs[0])
    assert am.u32("MODEL_CTX_LEN") == 16
    assert am.u64("MODEL_KV_LAYER_BYTES") == 16 * cfg.kv_dim * 4


# ----------------------------------------------------------------------------- forward (numpy kernels)

def _greedy(am: AsmModel, tf: ref.Transformer, steps: int, *, token: int = ref.BOS,
            check_logits: int = 0, rtol: float = 0.0, atol: float = 0.0) -> tuple[list[int], list[int], float]:
    """Greedy decode `steps` positions on both; returns (asm tokens, ref tokens, max |dlogit|)."""
    ours, theirs, worst = [token], [token], 0.0
    for pos in range(steps):
        a = am.logits(ours[-1], pos)
        r = tf.forward(theirs[-1], pos)
        if ours[-1] == theirs[-1]:
            worst = max(worst, float(np.max(np.abs(a - r))))
            if pos < check_logits:
                np.testing.assert_allclose(a, r, rtol=rtol, atol=atol, err_msg=f"pos {pos}")
        ours.append(int(np.argmax(a)))
        theirs.append(int(np.argmax(r)))
    return ours, theirs, worst


@pytest.mark.parametrize("shape, steps", [("tiny_gqa", 64), ("micro", 64)])
def test_forward_numpy_kernels_random(shape, steps):
    """Sequencing check: with the reference's own arithmetic in the kernels, the asm forward
    pass gives the reference's logits (to float32 noise from BLAS alignment) at every
    position, over a whole context, for GQA + unshared classifier and MHA + shared."""
    m = ref.random_model(shape, seed=7)
    am, calls = numpy_kernel_model()
    am.load(ref.model_bytes(m))
    ours, theirs, worst = _greedy(am, ref.Transformer(m), steps, check_logits=steps, rtol=1e-5, atol=1e-5)
    assert ours == theirs
    L = m.config.n_layers
    assert calls == {"k_rope_table": steps, "k_rmsnorm": steps * (2 * L + 1), "k_matvec": steps * (7 * L + 1),
                     "k_rope_apply": steps * 2 * L, "k_attention": steps * L, "k_add": steps * 2 * L,
                     "k_swiglu": steps * L,
                     # the embedding row, then each layer's k and v rows into the f32 caches
                     # (fw_kv_store copies them with F32's to_float body)
                     "k_stub_to_float": steps * (1 + 2 * L)}


def test_forward_numpy_kernels_stories260k():
    m = ref.read_model(model_file("stories260K.bin"))
    am, _ = numpy_kernel_model()
    am.load(model_file("stories260K.bin").read_bytes())
    ours, theirs, _ = _greedy(am, ref.Transformer(m), 32, check_logits=32, rtol=1e-5, atol=1e-5)
    assert ours == theirs


def test_forward_refuses_bad_token_and_pos_and_short_context():
    """ctx_len < seq_len works (same logits as a reference limited to it) and pos >= ctx_len,
    token >= vocab or < 0 come back as 0 with a code, not a fault; the state still works."""
    m = ref.random_model("tiny_gqa", seed=11)
    am, _ = numpy_kernel_model()
    ctx = 16
    am.load(ref.model_bytes(m), ctx=ctx)
    tf = ref.Transformer(m, max_seq_len=ctx)
    ours, theirs, _ = _greedy(am, tf, ctx, check_logits=ctx, rtol=1e-5, atol=1e-5)
    assert ours == theirs
    E = CODES
    for token, pos, code in [(1, ctx, "POS"), (1, ctx + 1000, "POS"), (1, -1, "POS"), (1, U32, "POS"),
                             (m.config.vocab_size, 0, "TOKEN"), (-1, 0, "TOKEN"), (1 << 31, 0, "TOKEN")]:
        assert am.forward(token, pos) == 0
        assert am.u32("MODEL_ERROR") == E["MODEL_E_" + code]
        assert am.message(am.u32("MODEL_ERROR"))
    # the cache is intact: position 5 again gives the same logits as before
    tf2 = ref.Transformer(m, max_seq_len=ctx)
    for pos in range(6):
        r = tf2.forward(theirs[pos], pos)
    np.testing.assert_allclose(am.logits(ours[5], 5), r, rtol=1e-5, atol=1e-5)
    # re-initialising resets the conversation: zeroed cache, position 0 again
    am.init_state(ctx)
    np.testing.assert_allclose(am.logits(ref.BOS, 0), ref.Transformer(m).forward(ref.BOS, 0),
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- forward (SSE2 kernels)

# Stated tolerance for asm kernels vs numpy float32 (different summation orders, polynomial
# exp): |a - r| <= ATOL + RTOL * |r| on every logit of the first positions.
ATOL, RTOL = 2e-4, 1e-4


def test_forward_sse2_stories260k():
    """The real model: logits of the first 8 positions within tolerance of the reference,
    greedy tokens equal over 96 steps (natively: the 200 of the app's -t 0 reference text)."""
    path = model_file("stories260K.bin")
    m = ref.read_model(path)
    am = sse2_model()
    am.load(path.read_bytes())
    t0 = time.perf_counter()
    ours, theirs, worst = _greedy(am, ref.Transformer(m), 96, check_logits=8, rtol=RTOL, atol=ATOL)
    assert ours == theirs
    print(f"stories260K sse2 in unicorn: 96 steps in {time.perf_counter() - t0:.1f}s, "
          f"max |logit - ref| {worst:.2e}")


@pytest.mark.parametrize("shape, steps", [("tiny_gqa", 64), ("micro", 64)])
def test_forward_sse2_random(shape, steps):
    m = ref.random_model(shape, seed=5)
    am = sse2_model()
    am.load(ref.model_bytes(m))
    ours, theirs, worst = _greedy(am, ref.Transformer(m), steps, check_logits=steps, rtol=RTOL, atol=ATOL)
    assert ours == theirs


def test_forward_sse2_short_context():
    m = ref.random_model("tiny_gqa", seed=9)
    am = sse2_model()
    ctx = 10
    am.load(ref.model_bytes(m), ctx=ctx)
    ours, theirs, _ = _greedy(am, ref.Transformer(m, max_seq_len=ctx), ctx, check_logits=ctx,
                              rtol=RTOL, atol=ATOL)
    assert ours == theirs
    assert am.forward(ours[-1], ctx) == 0 and am.u32("MODEL_ERROR") == CODES["MODEL_E_POS"]


def test_forward_sse2_stories15m_shape():
    """stories15M's shape (288/768/6 layers/32000 vocab) with random weights: a few steps
    (unicorn runs ~15M multiply-adds per token slowly); natively the full 64."""
    m = ref.random_model("stories15M", seed=2)
    am = sse2_model()
    am.load(ref.model_bytes(m), ctx=8)
    t0 = time.perf_counter()
    steps = 4
    ours, theirs, worst = _greedy(am, ref.Transformer(m, max_seq_len=8), steps, check_logits=steps,
                                  rtol=RTOL, atol=ATOL)
    assert ours == theirs
    print(f"stories15M sse2 in unicorn: {(time.perf_counter() - t0) / steps:.2f}s/token, "
          f"max |logit - ref| {worst:.2e}")


# ----------------------------------------------------------------------------- forward (native)

@pytest.fixture(scope="module")
def stories15m_random():
    m = ref.random_model("stories15M", seed=2)
    return m, ref.model_bytes(m)


@pytest.mark.parametrize("choice", ["auto", "sse2"])
def test_forward_native(choice, stories15m_random):
    """The same code on the host CPU (AVX2/FMA bodies under "auto" when the host has them):
    stories260K 200 greedy steps, stories15M-shaped random weights 64 steps, the GQA +
    unshared variant 64 steps, a short context; logits of the first positions within the
    stated tolerance, greedy tokens equal to the reference's."""
    am = native_model(choice)
    path = model_file("stories260K.bin")
    am.load(path.read_bytes())
    ours, theirs, worst = _greedy(am, ref.Transformer(ref.read_model(path)), 200, check_logits=8,
                                  rtol=RTOL, atol=ATOL)
    assert ours == theirs

    m, data = stories15m_random
    am = native_model(choice)
    am.load(data, ctx=64)
    t0 = time.perf_counter()
    ours, theirs, worst15 = _greedy(am, ref.Transformer(m, max_seq_len=64), 64, check_logits=4,
                                    rtol=RTOL, atol=ATOL)
    assert ours == theirs
    t_asm = time.perf_counter() - t0
    # speed: asm forward alone (no reference) over 32 positions
    t0 = time.perf_counter()
    for pos in range(32):
        assert am.forward(ours[pos], pos)
    per_token = (time.perf_counter() - t0) / 32
    print(f"native {choice}: stories15M-shape {per_token * 1e3:.1f} ms/token "
          f"({1 / per_token:.0f} tok/s incl. Python call overhead), max |logit - ref| "
          f"{max(worst, worst15):.2e}, 64 checked steps in {t_asm:.1f}s")

    m = ref.random_model("tiny_gqa", seed=5)
    am = native_model(choice)
    am.load(ref.model_bytes(m), ctx=12)
    ours, theirs, _ = _greedy(am, ref.Transformer(m, max_seq_len=12), 12, check_logits=12,
                              rtol=RTOL, atol=ATOL)
    assert ours == theirs
    assert am.forward(ours[-1], 12) == 0 and am.u32("MODEL_ERROR") == CODES["MODEL_E_POS"]
    assert am.forward(m.config.vocab_size, 0) == 0 and am.u32("MODEL_ERROR") == CODES["MODEL_E_TOKEN"]
    m = ref.random_model("tiny_gqa", seed=6)
    am = native_model(choice)
    am.load(ref.model_bytes(m))
    ours, theirs, _ = _greedy(am, ref.Transformer(m), 64, check_logits=64, rtol=RTOL, atol=ATOL)
    assert ours == theirs


def test_fuzz_accepted_files_run_without_fault():
    """Any file the loader accepts is safe to run: random small shapes (every field, GQA or
    not, shared or not, odd sizes) over random bytes (NaN, inf and denormals included), a
    random context; forward at the first positions, the last one and one past it. The
    file, the state and the struct all end at guard pages."""
    rng = np.random.default_rng(99)
    am = sse2_model()
    for i in range(120):
        heads = int(rng.integers(1, 5))
        kv = int(rng.choice([h for h in range(1, heads + 1) if heads % h == 0]))
        cfg = ref.Config(heads * 2 * int(rng.integers(1, 5)), int(rng.integers(1, 40)),
                         int(rng.integers(1, 4)), heads, kv, int(rng.integers(1, 70)),
                         int(rng.integers(1, 12)), bool(rng.integers(0, 2)))
        body = rng.integers(0, 256, cfg.file_size() - ref.HEADER_SIZE, dtype=np.uint8).tobytes()
        if i % 2:                                               # half of them finite, O(1)
            body = rng.standard_normal(len(body) // 4, dtype=np.float32).tobytes()
        ctx = int(rng.integers(1, cfg.seq_len + 1))
        am.load(cfg.header_bytes() + body, ctx=ctx)
        tok = int(rng.integers(0, cfg.vocab_size))
        for pos in sorted({0, min(1, ctx - 1), ctx - 1}):
            assert am.forward(tok, pos), (cfg, ctx, pos)
        assert am.forward(tok, ctx) == 0
        assert am.forward(cfg.vocab_size, 0) == 0
        if i % 2:
            assert np.isfinite(am.logits(tok, 0)).all()
