"""The reference sampler against hand-computed cases and an inline re-derivation of xorshift64*."""
from __future__ import annotations

import numpy as np
import pytest

from tests.reference import llama2 as ref

M = 0x2545F4914F6CDD1D
TWO64 = 2 ** 64
F = np.float32


def _xorshift_sequence(seed: int, n: int) -> list[int]:
    """Written separately from the reference: Python ints, explicit mod 2**64."""
    s, out = seed, []
    for _ in range(n):
        s = s ^ (s // 2 ** 12)
        s = (s ^ (s * 2 ** 25)) % TWO64
        s = s ^ (s // 2 ** 27)
        out.append((s * M) % TWO64 // 2 ** 32)
    return out


def test_xorshift_seed1_by_hand():
    # s=1: s^=s>>12 -> 1; s^=s<<25 -> 2**25+1; s^=s>>27 -> unchanged (2**25+1 < 2**27)
    # u32 = ((2**25+1) * M mod 2**64) >> 32 = ((M<<25) + M) mod 2**64 >> 32
    expected = (((M << 25) + M) % TWO64) >> 32
    r = ref.Rng(1)
    assert r.u32() == expected == 1206177355
    assert r.state == 2 ** 25 + 1


@pytest.mark.parametrize("seed", [1, 42, 1337, 2 ** 63 + 12345, TWO64 - 1])
def test_xorshift_matches_inline(seed):
    r = ref.Rng(seed)
    assert [r.u32() for _ in range(20)] == _xorshift_sequence(seed, 20)


def test_xorshift_known_values_seed42():
    r = ref.Rng(42)
    assert [r.u32() for _ in range(5)] == [1456360119, 3359763283, 3393612768, 4054632243, 3283045847]


def test_random_f32():
    r, check = ref.Rng(42), _xorshift_sequence(42, 100)
    for u in check:
        f = r.f32()
        assert isinstance(f, np.float32)
        assert f == F((u >> 8) / 16777216.0) and 0.0 <= f < 1.0
        assert float(f) * 2 ** 24 == u >> 8  # exactly representable


def test_seed_zero_is_stuck():
    r = ref.Rng(0)
    assert [r.u32() for _ in range(3)] == [0, 0, 0]


# ----------------------------------------------------------------------------- pieces

def test_argmax_first_on_ties():
    assert ref.argmax_first(np.array([1, 3, 3, 2], F)) == 1
    s = ref.Sampler(4, temperature=0.0, seed=5)
    st = s.rng.state
    assert s.sample(np.array([0.5, -1, 0.5, 0.1], F)) == 0
    assert s.rng.state == st  # temperature 0 draws no coin


def test_multinomial_by_hand():
    p = np.array([0.1, 0.2, 0.7], F)
    assert ref.sample_mult(p, 0.05) == 0
    assert ref.sample_mult(p, F(0.1)) == 1   # coin < cdf is strict: 0.1 < 0.1 is false
    assert ref.sample_mult(p, 0.3) == 2      # f32: 0.1 + 0.2 == 0.3, so coin 0.3 is not < cdf[1]
    assert ref.sample_mult(p, 0.29) == 1
    assert ref.sample_mult(np.array([0.2, 0.2, 0.2], F), 0.9) == 2  # never reached: n - 1


def test_topp_by_hand():
    # probs in index order; sorted desc: 0.5 (i2), 0.3 (i1), 0.15 (i3), 0.05 (i0)
    p = np.array([0.05, 0.3, 0.5, 0.15], F)
    # topp 0.7: cutoff (1-0.7)/3 = 0.1 -> drop 0.05; cum 0.5, 0.8 > 0.7 -> keep {i2, i1}, cum 0.8
    assert ref.sample_topp(p, 0.7, 0.5) == 2    # r = 0.4 < 0.5
    assert ref.sample_topp(p, 0.7, 0.7) == 1    # r = 0.56 -> second
    assert ref.sample_topp(p, 0.7, 0.999) == 1  # r < 0.8 always lands in the kept set
    # topp 0.95: cutoff (1-0.95)/3 = 0.0167 keeps all four; float32 cum 0.5, 0.8,
    # 0.95000005 > 0.95 -> last = 2 (i2, i1, i3), so i0 (0.05) can never be drawn
    assert ref.sample_topp(p, 0.95, 0.0) == 2
    assert ref.sample_topp(p, 0.95, 0.9) == 3     # r = 0.855 > 0.8
    assert ref.sample_topp(p, 0.95, 0.99999) == 3


def test_topp_cut_is_strictly_greater():
    # exact float32 sums: cum 0.5, 0.75, 1.0; 0.75 > 0.75 is false, so the cut is at the
    # third candidate (cum 1.0), and coin 0.9 -> r 0.9 -> the third
    p = np.array([0.5, 0.25, 0.25], F)
    assert ref.sample_topp(p, 0.75, 0.9) == 2
    assert ref.sample_topp(p, 0.74, 0.9) == 1   # cut after the second: r = 0.9 * 0.75


def test_topp_stable_ties():
    p = np.array([0.25, 0.25, 0.25, 0.25], F)
    # all tie: sorted order is index order; cum 0.25, 0.5 > 0.4 -> keep i0, i1
    assert ref.sample_topp(p, 0.4, 0.0) == 0
    assert ref.sample_topp(p, 0.4, 0.6) == 1   # r = 0.3 -> second
    assert ref.sample_topp(p, 0.4, 0.999) == 1


def test_softmax_float32():
    x = np.array([1.0, 2.0, 3.0], F)
    e = np.exp(np.array([-2.0, -1.0, 0.0]))
    np.testing.assert_allclose(ref.softmax_f32(x), e / e.sum(), rtol=1e-6)
    assert ref.softmax_f32(x).dtype == np.float32
    assert ref.softmax_f32(np.array([1000, 1000], F)).tolist() == [0.5, 0.5]  # max-subtracted


def test_full_sample_by_hand():
    logits = np.array([1.0, 2.0, 3.0, 0.0], F)
    seed = 1337
    coin = F((_xorshift_sequence(seed, 1)[0] >> 8) / 16777216.0)
    # temperature 0.5: softmax(2*logits); multinomial with that coin
    p = ref.softmax_f32(logits / F(0.5))
    cdf = np.cumsum(p, dtype=F)
    expected = int(np.argmax(coin < cdf))
    s = ref.Sampler(4, temperature=0.5, topp=1.0, seed=seed)
    assert s.sample(logits) == expected
    assert s.rng.state != seed  # exactly one draw
    one = ref.Rng(seed)
    one.u32()
    assert s.rng.state == one.state


def test_sequence_reproducible_and_seed_dependent():
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal(50).astype(F) * 2 for _ in range(40)]
    a = ref.Sampler(50, 0.8, 0.9, seed=7)
    b = ref.Sampler(50, 0.8, 0.9, seed=7)
    c = ref.Sampler(50, 0.8, 0.9, seed=8)
    ta = [a.sample(l) for l in logits]
    assert ta == [b.sample(l) for l in logits]
    assert ta != [c.sample(l) for l in logits]


# ----------------------------------------------------------------------------- knobs

def _draws(sampler, logits, history=()):
    return [sampler.sample(l, history) for l in logits]


@pytest.mark.parametrize("temperature,topp", [(0.0, 0.9), (1.0, 0.9), (0.7, 1.0), (1.3, 0.0), (1.0, 0.5)])
def test_neutral_knobs_reproduce_plain(temperature, topp):
    rng = np.random.default_rng(1)
    logits = [rng.standard_normal(64).astype(F) * 3 for _ in range(50)]
    hist = list(rng.integers(0, 64, 30))
    plain = ref.Sampler(64, temperature, topp, seed=99)
    neutral = ref.Sampler(64, temperature, topp, seed=99, top_k=0, min_p=0.0, repeat_penalty=1.0,
                          no_repeat_ngram=0)
    big_k = ref.Sampler(64, temperature, topp, seed=99, top_k=64)
    expect = _draws(plain, logits)
    assert _draws(neutral, logits, hist) == expect
    assert _draws(big_k, logits, hist) == expect


def test_top_k_one_is_argmax():
    rng = np.random.default_rng(2)
    logits = [rng.standard_normal(30).astype(F) for _ in range(30)]
    s = ref.Sampler(30, 1.0, 0.9, seed=3, top_k=1)
    assert _draws(s, logits) == [int(np.argmax(l)) for l in logits]


def test_top_k_and_min_p_restrict_support():
    rng = np.random.default_rng(4)
    logits = [rng.standard_normal(40).astype(F) * 2 for _ in range(200)]
    s = ref.Sampler(40, 1.0, 1.0, seed=11, top_k=3)
    for l in logits:
        assert s.sample(l) in set(np.argsort(-l, kind="stable")[:3].tolist())
    m = ref.Sampler(40, 1.0, 1.0, seed=11, min_p=0.5)
    for l in logits:
        p = ref.softmax_f32(l)
        assert p[m.sample(l)] >= F(0.5) * p.max()


def test_repeat_penalty_by_hand():
    l = np.array([2.0, -2.0, 1.0, 0.5], F)
    out = ref.apply_repeat_penalty(l.copy(), [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]
    # window: only the last 1 token (3) is penalised
    out = ref.apply_repeat_penalty(l.copy(), [0, 1, 3], 2.0, last_n=1)
    assert out.tolist() == [2.0, -2.0, 1.0, 0.25]
    # greedy sees the penalised logits: 0 (2.0 -> 0.8) loses to 2 (1.0)
    s = ref.Sampler(4, 0.0, repeat_penalty=2.5)
    assert s.sample(l, [0]) == 2


def test_no_repeat_ngram_by_hand():
    hist = [5, 6, 7, 5, 6]
    assert ref.banned_ngram_tokens(hist, 3) == {7}        # "5 6" was followed by 7
    assert ref.banned_ngram_tokens(hist, 2) == {7}        # "6" was followed by 7
    assert ref.banned_ngram_tokens(hist, 1) == {5, 6, 7}
    assert ref.banned_ngram_tokens(hist, 6) == set()
    assert ref.banned_ngram_tokens([], 2) == set()
    l = np.zeros(10, F)
    l[7] = 5.0
    l[3] = 1.0
    s = ref.Sampler(10, 0.0, no_repeat_ngram=3)
    assert s.sample(l, hist) == 3
    # everything banned -> nothing banned
    s1 = ref.Sampler(2, 0.0, no_repeat_ngram=1)
    assert s1.sample(np.array([0.0, 1.0], F), [0, 1]) == 1
