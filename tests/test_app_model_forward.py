"""app_asm/model.s + forward.s: the llama2.c forward pass against the numpy reference
(tests/reference/llama2.py): with numpy stand-in kernels (exact: any difference is the
module's sequencing), with the real SSE2 kernels in unicorn, and natively (the host's AVX2
path too); greedy tokens equal to the reference's, logits within a stated tolerance; and
every file the loader accepts runs without a fault. Harness: tests/model_support.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.model_support import CODES, U32, AsmModel, native_model, numpy_kernel_model, sse2_model
from tests.reference import llama2 as ref
from tests.support import model_file


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
