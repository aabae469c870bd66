"""GGUF RoPE as llama.cpp computes it, bit for bit: the table's cos/sin are glibc's sinf/cosf
(kernels_asm/sincosf_glibc.s, through rope_table_ggml_<path>), the rotations ggml's arithmetic
(rope_apply_ggml_avx2 / rope_apply_sse2, rope_apply_neox_<path>).

The judge is the host's libm (glibc, ctypes): its ifunc runs the FMA build of sinf/cosf on a
CPU with FMA and AVX2 (this machine and CI's), the SSE2 build otherwise. The AVX2 body is held
to it directly; the SSE2 body to the numpy model (tests/reference/glibc_sincosf.py) of the
SSE2 build, and the model of each build to glibc itself: the FMA one in process, the SSE2 one
in a child whose GLIBC_TUNABLES masks FMA and AVX2 (so its ifunc picks the SSE2 build). The two
builds differ on about one argument in 10^7; the arguments below where they do are what makes
that check able to fail. Where the C library is not glibc (2.28 on), these tests skip: the
functions followed are glibc's.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
import subprocess
import sys

import numpy as np
import pytest

from peasm.runners import native
from peasm.runners.kernels import Kernels, open_machine
from tests.reference import glibc_sincosf as G
from tests.reference.ggml_swiglu import fma32
from tests.support import require
from tests.test_kernels import k  # noqa: F401  (fixture: unicorn sse2, native sse2, native avx2)

F32, U32 = np.float32, np.uint32


def _is_glibc() -> bool:
    name, version = platform.libc_ver()
    try:
        return name == "glibc" and tuple(int(p) for p in version.split(".")[:2]) >= (2, 28)
    except ValueError:
        return False


pytestmark = pytest.mark.skipif(
    not _is_glibc(), reason="the judge is glibc's libm (2.28 on, whose sinf/cosf llama.cpp "
                            "takes on Linux); this C library is not glibc")

# arguments where glibc's FMA and SSE2 builds give different bits (found with the model,
# confirmed against both builds of this host's libm)
SPLIT = np.array([0x418A3ADB, 0x418A3ADC, 0x41BC76D9, 0x42687A55, 0x4280CE28, 0x42870E40,
                  0x42A35C07, 0x42A35D44, 0x42CF5854, 0x42E87A55], U32).view(F32)
EDGES = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, 2.0 ** -12, np.nextafter(F32(2.0 ** -12), F32(0)),
                  -(2.0 ** -12), 0.785398, 0.7853982, -0.7853982, 119.99999, 120.0, -120.0,
                  np.nextafter(F32(120.0), F32(0)), 1e6, -1e6, 3.4e38, -3.4e38, 8388608.0,
                  np.inf, -np.inf, np.nan, 1.0, -1.0, 3.1415927, 1.5707964, 6.2831855], F32)


def _libm():
    lib = ctypes.CDLL("libm.so.6")
    for name in ("sinf", "cosf"):
        getattr(lib, name).restype = ctypes.c_float
        getattr(lib, name).argtypes = [ctypes.c_float]
    lib.sincosf.restype = None
    lib.sincosf.argtypes = [ctypes.c_float, ctypes.POINTER(ctypes.c_float),
                            ctypes.POINTER(ctypes.c_float)]
    return lib


def libm_sincosf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lib = _libm()
    s = np.fromiter((lib.sinf(v) for v in x.tolist()), F32, x.size)
    c = np.fromiter((lib.cosf(v) for v in x.tolist()), F32, x.size)
    return s, c


def host_fma() -> bool:
    """Whether glibc's ifunc picks the FMA build here (it asks for FMA and AVX2)."""
    return native.host_has_avx2_fma()


def _same(got, want, args=None) -> None:
    got, want = np.asarray(got, F32), np.asarray(want, F32)
    bad = np.flatnonzero(got.view(U32) != want.view(U32))
    where = args[bad[:6]] if args is not None else bad[:6]
    assert bad.size == 0, (bad.size, where, got[bad[:6]], want[bad[:6]])


def arguments(seed: int, n: int) -> np.ndarray:
    """Random f32 over [-1e6, 1e6] (uniform and by exponent), near multiples of pi/2 (where
    the reduction cancels), the split arguments and the edges."""
    rng = np.random.default_rng(seed)
    uni = rng.uniform(-1e6, 1e6, n).astype(F32)
    bits = rng.integers(0x30000000, 0x49742400, n, dtype=np.int64).astype(U32)   # to 1e6
    bits |= rng.integers(0, 2, n, dtype=np.int64).astype(U32) << U32(31)
    k = rng.integers(1, 600000, n // 4)
    near = ((k * (np.pi / 2)).astype(F32).view(U32).astype(np.int64)
            + rng.integers(-8, 9, k.size)).astype(U32).view(F32)
    near = np.where(rng.integers(0, 2, near.size) == 1, -near, near).astype(F32)
    return np.concatenate([uni, bits.view(F32), near, SPLIT, -SPLIT, EDGES])


def thetas(pos: int, n_rot: int, scale: np.float32) -> np.ndarray:
    """ggml's iterated angles for one position."""
    out = np.empty(n_rot // 2, F32)
    t = F32(pos)
    for i in range(n_rot // 2):
        out[i] = t
        t = F32(t * scale)
    return out


def powf(base: float, n_rot: int) -> np.float32:
    lib = ctypes.CDLL("libm.so.6")
    lib.powf.restype = ctypes.c_float
    lib.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return F32(lib.powf(F32(base), F32(-2.0) / F32(n_rot)))


def via_table(k: Kernels, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's (sin, cos) of arbitrary f32 arguments: one neox table at pos 1 with
    theta_scale 1 and frequency factors 1/t (so each angle is f32(1 / f32(1/t)), computed
    here the same way and returned as the arguments actually taken)."""
    with np.errstate(divide="ignore", over="ignore"):
        ff = (F32(1.0) / t).astype(F32)
        args = (F32(1.0) / ff).astype(F32)
    n = t.size
    tab = k.rope_table_ggml(1, 2 * n, 2 * n, 1.0, ff, style=1)
    return args, tab[2 * n:3 * n], tab[:n]


# ---------------------------------------------------------------------------------------
# the model against glibc


def test_model_is_the_host_libm():
    x = arguments(1, 60000)
    s, c = libm_sincosf(x)
    ms, mc = G.sincosf(x, fma=host_fma())
    _same(ms, s, x)
    _same(mc, c, x)


def test_sincosf_is_sinf_and_cosf():
    """llama.cpp's compiled rope cache calls sincosf where GCC fused the pair: the same bits."""
    lib = _libm()
    x = arguments(2, 3000)
    sv, cv = ctypes.c_float(), ctypes.c_float()
    s, c = np.empty_like(x), np.empty_like(x)
    for i, v in enumerate(x.tolist()):
        lib.sincosf(v, ctypes.byref(sv), ctypes.byref(cv))
        s[i], c[i] = sv.value, cv.value
    ls, lc = libm_sincosf(x)
    _same(s, ls, x)
    _same(c, lc, x)


CHILD = r"""
import ctypes, sys
import numpy as np
lib = ctypes.CDLL("libm.so.6")
for f in ("sinf", "cosf"):
    getattr(lib, f).restype = ctypes.c_float; getattr(lib, f).argtypes = [ctypes.c_float]
x = np.frombuffer(sys.stdin.buffer.read(), np.float32)
out = np.array([[lib.sinf(v), lib.cosf(v)] for v in x.tolist()], np.float32)
sys.stdout.buffer.write(out.tobytes())
"""


def test_model_of_the_sse2_build_is_glibc_sse2():
    x = np.concatenate([SPLIT, -SPLIT, arguments(3, 4000)])
    fs, fc = G.sincosf(SPLIT, fma=True)
    ss, sc = G.sincosf(SPLIT, fma=False)
    assert np.all((fs.view(U32) != ss.view(U32)) | (fc.view(U32) != sc.view(U32)))  # they differ
    env = dict(os.environ, GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX2,-FMA")
    r = subprocess.run([sys.executable, "-c", CHILD], input=x.tobytes(), capture_output=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    got = np.frombuffer(r.stdout, F32).reshape(-1, 2)
    ms, mc = G.sincosf(x, fma=False)
    _same(got[:, 0], ms, x)
    _same(got[:, 1], mc, x)


def test_model_fma_rounds_once():
    """fma64 (the model's fused multiply-add) against exact rational arithmetic."""
    from fractions import Fraction
    rng = np.random.default_rng(7)
    a = rng.standard_normal(3000)
    b = rng.standard_normal(3000)
    c = rng.standard_normal(3000) * 2.0 ** rng.integers(-60, 5, 3000)
    got = G.fma64(a, b, c)
    for i in range(0, 3000, 3):
        exact = Fraction(a[i]) * Fraction(b[i]) + Fraction(c[i])
        assert got[i] == float(exact), i            # float(Fraction) rounds to nearest even


# ---------------------------------------------------------------------------------------
# the kernels


def test_any_argument(k):
    """sin/cos of arbitrary arguments through the table: the model of the path's build, and
    natively on the AVX2 path the host's libm itself."""
    n = 20000 if k.m.where_name == "native" else 1500
    args, s, c = via_table(k, arguments(10, n))
    fma = k.path == "avx2"
    ms, mc = G.sincosf(args, fma=fma)
    _same(s, ms, args)
    _same(c, mc, args)
    if fma and k.m.where_name == "native" and host_fma():
        ls, lc = libm_sincosf(args)
        _same(s, ls, args)
        _same(c, lc, args)


def exact_arguments(k: Kernels, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of exactly t (finite, nonzero): t = m * 2^-e with m an integer below 2^24,
    the table's first angle at pos m divided by the frequency factor 2^e."""
    s, c = np.empty_like(t), np.empty_like(t)
    for i, v in enumerate(t.tolist()):
        f, e = np.frexp(v)
        m, ff = int(f * 2 ** 24), F32(2.0 ** (24 - int(e)))
        assert F32(m) / ff == F32(v)
        tab = k.rope_table_ggml(m, 2, 2, 1.0, np.array([ff], F32), style=1)
        c[i], s[i] = tab[0], tab[2]
    return s, c


def test_split_arguments_take_the_path_build(k):
    args = np.concatenate([SPLIT, -SPLIT])
    s, c = exact_arguments(k, args)
    ms, mc = G.sincosf(args, fma=k.path == "avx2")
    _same(s, ms, args)
    _same(c, mc, args)
    os_, oc = G.sincosf(args, fma=k.path != "avx2")
    assert np.all((s.view(U32) != os_.view(U32)) | (c.view(U32) != oc.view(U32)))


def _native(path: str) -> Kernels:
    ok, why = native.supported()
    require(ok, why)
    if path == "avx2" and not native.host_has_avx2_fma():
        pytest.skip("this CPU has no AVX2+FMA: the AVX2 bodies cannot run natively here")
    return Kernels(open_machine("native"), path)


@pytest.mark.parametrize("path", ["avx2", "sse2"])
@pytest.mark.parametrize("base,n_rot", [(1e5, 64), (1e4, 64), (1e5, 128), (1e4, 128)])
def test_every_position_of_a_long_context(path, base, n_rot):
    """The whole table for every pos < 8192: the AVX2 body against the host's libm, the SSE2
    body against the model of glibc's SSE2 build."""
    kk = _native(path)
    scale = powf(base, n_rot)
    hs = n_rot
    positions = range(8192)
    th = np.concatenate([thetas(p, n_rot, scale) for p in positions])
    if path == "avx2" and host_fma():
        ws, wc = libm_sincosf(th)
    else:
        ws, wc = G.sincosf(th, fma=path == "avx2")
    h = n_rot // 2
    got_c = np.empty(th.size, F32)
    got_s = np.empty(th.size, F32)
    for p in positions:
        tab = kk.rope_table_ggml(p, hs, n_rot, scale)
        got_c[p * h:(p + 1) * h] = tab[0:n_rot:2]
        got_s[p * h:(p + 1) * h] = tab[hs + 1:hs + n_rot:2]
    _same(got_c, wc, th)
    _same(got_s, ws, th)


def test_table_layouts(k):
    """norm: C[2i] = C[2i+1] = c, S[2i] = -s, S[2i+1] = s, then C = 1, S = 0 past n_rot;
    neox: C[i] = c, S[i] = s; the factors divide the angles."""
    hs, n_rot, pos = 96, 64, 300
    scale = F32(0.7)
    rng = np.random.default_rng(4)
    ff = rng.uniform(0.5, 8.0, n_rot // 2).astype(F32)
    for factors in (None, ff):
        t = thetas(pos, n_rot, scale)
        if factors is not None:
            t = (t / factors).astype(F32)
        s, c = G.sincosf(t, fma=k.path == "avx2")
        norm = k.rope_table_ggml(pos, hs, n_rot, scale, factors, style=0)
        C, S = norm[:hs], norm[hs:]
        _same(C[0:n_rot:2], c)
        _same(C[1:n_rot:2], c)
        _same(S[0:n_rot:2], -s)
        _same(S[1:n_rot:2], s)
        _same(C[n_rot:], np.ones(hs - n_rot, F32))
        _same(S[n_rot:], np.zeros(hs - n_rot, F32))
        neox = k.rope_table_ggml(pos, hs, n_rot, scale, factors, style=1)
        _same(neox[:n_rot // 2], c)
        _same(neox[hs:hs + n_rot // 2], s)


def _ggml_rotate(x0, x1, c, s, fma: bool):
    """ggml's rotation of (x0, x1): its FMA build fuses the first product of each output."""
    if fma:
        return fma32(x0, c, -(x1 * s)), fma32(x0, s, x1 * c)
    return (x0 * c - x1 * s).astype(F32), (x0 * s + x1 * c).astype(F32)


@pytest.mark.parametrize("hs,n_rot", [(64, 64), (128, 128), (96, 64), (10, 6)])
def test_rotations_as_ggml(k, hs, n_rot):
    rng = np.random.default_rng(hs + n_rot)
    heads = 5
    v = (rng.standard_normal(heads * hs) * 3).astype(F32)
    fma = k.path == "avx2"
    pos = 777
    t = thetas(pos, n_rot, F32(0.8))
    s, c = G.sincosf(t, fma=fma)

    table = k.rope_table_ggml(pos, hs, n_rot, 0.8, style=0)
    got = k.rope_apply_ggml(v, table, hs).reshape(heads, hs)
    want = v.reshape(heads, hs).copy()
    a, b = _ggml_rotate(want[:, 0:n_rot:2], want[:, 1:n_rot:2], c, s, fma)
    want[:, 0:n_rot:2], want[:, 1:n_rot:2] = a, b
    _same(got, want)

    table = k.rope_table_ggml(pos, hs, n_rot, 0.8, style=1)
    got = k.rope_apply_neox(v, table, hs, n_rot).reshape(heads, hs)
    want = v.reshape(heads, hs).copy()
    h = n_rot // 2
    a, b = _ggml_rotate(want[:, :h], want[:, h:n_rot], c, s, fma)
    want[:, :h], want[:, h:n_rot] = a, b
    _same(got, want)


# ---------------------------------------------------------------------------------------
# theta_scale: the loader's f32(base^(-2/n_rot)) is glibc's powf, which ggml calls


def test_theta_scale_is_powf():
    from tests.support import model_file
    from tests.test_app_gguf_model import C, GgufAsmModel, machine
    ok, why = native.supported()
    require(ok, why)
    path = model_file("SmolLM2-135M-Instruct.Q4_1.gguf")
    data = path.read_bytes()
    key = b"llama.rope.freq_base"
    at = data.find(key)
    assert at > 0
    at += len(key)                                      # the value's type (GGUF f32 = 6)
    assert struct.unpack_from("<I", data, at)[0] == 6
    at += 4
    mc = machine("native")
    for base in (10000.0, 100000.0, 500000.0, 1000000.0, 5e6, 12345.0):
        d = data[:at] + struct.pack("<f", base) + data[at + 4:]
        am = GgufAsmModel(mc, d, ctx=16)
        assert am.status == 0, am.message(am.status)
        n_rot = am.u32("MODEL_ROPE_DIMS")
        got = F32(struct.unpack("<f", struct.pack("<I", am.u32("MODEL_ROPE_SCALE")))[0])
        assert got == powf(base, n_rot), (base, n_rot, got, powf(base, n_rot))
