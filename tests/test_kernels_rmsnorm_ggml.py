"""rmsnorm_ggml (kernels_asm/rmsnorm_ggml.s), llama.cpp's RMSNorm for GGUF models, bit for bit
against ggml-cpu's rms_norm restated in numpy (the squares rounded to f32, summed in order in
double; mean = f32(sum / n); scale = 1 / sqrtf(mean + eps); then x * scale, times the weight as
ggml's separate mul). That statement matched llama.cpp's own attn_norm-0 outputs bit for bit on
SmolLM2-135M (14 positions, recorded through its eval callback, scripts/compare_llamacpp.py's
way); it is also held here to the exact RMS it approximates."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.test_kernels import k  # noqa: F401  (fixture: unicorn sse2, native sse2, native avx2)

F32 = np.float32


def ggml_rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    total = 0.0
    for v in (x * x).astype(F32).tolist():       # in order, in double
        total += v
    mean = F32(total / x.size)
    scale = F32(1.0) / np.sqrt(F32(mean + F32(eps)), dtype=F32)
    return ((x * scale).astype(F32) * w).astype(F32)


def _same(got, want) -> None:
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (bad[:8], got[bad[:8]], want[bad[:8]])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 63, 576, 2048])
def test_as_ggml(k, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-8, 8, n)).astype(F32)
    w = rng.uniform(-2, 2, n).astype(F32)
    for eps in (1e-5, 1e-6):
        _same(k.rmsnorm_ggml(x, w, eps), ggml_rmsnorm(x, w, eps))


def test_order_matters_and_is_ggml(k):
    """Values whose double sum depends on the order (huge and tiny squares): the kernel must
    take ggml's, in index order."""
    x = np.array([3e18, 1.0, -3e18, 1.0] * 16 + [0.5, 7.0, 2.0], F32)
    w = np.ones(x.size, F32)
    _same(k.rmsnorm_ggml(x, w, 1e-5), ggml_rmsnorm(x, w, 1e-5))


def test_reference_is_an_rms_norm():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(300).astype(F32)
    w = rng.uniform(0.5, 1.5, 300).astype(F32)
    got = ggml_rmsnorm(x, w, 1e-5).astype(np.float64)
    ms = sum(Fraction(float(v)) ** 2 for v in x) / 300 + Fraction(float(F32(1e-5)))
    want = x.astype(np.float64) * w / np.sqrt(float(ms))
    assert np.max(np.abs(got - want) / np.abs(want)) < 4 * 2.0 ** -24


def test_zero_length_writes_nothing(k):
    assert k.rmsnorm_ggml(np.zeros(0, F32), np.zeros(0, F32)).size == 0
