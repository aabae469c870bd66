"""app_asm/sampler.s's knobs against tests/reference's Sampler under unicorn: top-k, min-p,
the repeat penalty and its window, the n-gram ban, alone and together, by hand and at random;
edge-case logits (equal, huge, infinite, NaN), a vocabulary of one, long histories, a real
model's generation, and a fuzz of every field. The harness and the two softmaxes ("exact",
"kernel"): sampler_support.py and test_app_sampler.py.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.reference import llama2 as ref
from tests.sampler_support import F, random_logits, reference, run_both
from tests.sampler_support import machine, make  # noqa: F401 (fixtures)
from tests.support import model_file

# ----------------------------------------------------------------------------- the knobs

def _histories(vocab, count, length, rng):
    # a small alphabet repeats n-grams often; some ids outside [0, vocab) ride along
    base = list(rng.integers(0, min(vocab, 12), length))
    out = []
    for i in range(count):
        h = base[: length - count + i] if length > count else base[:i]
        out.append(h)
    return out


@pytest.mark.parametrize("knobs", [
    dict(top_k=1), dict(top_k=5), dict(top_k=40), dict(top_k=399), dict(top_k=400),
    dict(top_k=10_000), dict(top_k=-1),
    dict(min_p=0.05), dict(min_p=0.3), dict(min_p=1.0), dict(min_p=7.0), dict(min_p=-1.0),
    dict(repeat_penalty=1.3), dict(repeat_penalty=0.7), dict(repeat_penalty=1.3, repeat_last_n=4),
    dict(repeat_penalty=1.3, repeat_last_n=0), dict(repeat_penalty=0.0),
    dict(repeat_penalty=float("inf")), dict(repeat_penalty=-2.0),
    dict(no_repeat_ngram=1), dict(no_repeat_ngram=2), dict(no_repeat_ngram=3),
    dict(no_repeat_ngram=4), dict(no_repeat_ngram=100),
    dict(top_k=20, min_p=0.1, repeat_penalty=1.2, no_repeat_ngram=3, topp=0.8, temperature=0.9),
    dict(top_k=3, topp=1.0), dict(min_p=0.2, topp=0.0, temperature=1.5),
    dict(top_k=7, temperature=0.0, repeat_penalty=1.5, no_repeat_ngram=2),
], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_knob_vs_reference(make, knobs):
    rng = np.random.default_rng(zlib.crc32(repr(sorted(knobs.items())).encode()))
    vocab = 400
    logits = random_logits(rng, vocab, 40, 2.0)
    for x in logits[::3]:
        x[:12] += 3.0              # the history's ids are likely: penalties and bans matter
    histories = _histories(vocab, 40, 120, rng)
    histories[5] = histories[5] + [-1, vocab, 2 ** 31 - 1, -(2 ** 31)]
    s = make(vocab, seed=31, **knobs)
    r = reference(vocab, seed=31, **knobs)
    got, want = run_both(s, r, logits, histories, own=[])
    assert got == want
    assert s.state == r.rng.state


def test_top_k_ties_keep_lower_ids(make):
    s = make(10, seed=4, top_k=3, topp=1.0)
    r = reference(10, seed=4, top_k=3, topp=1.0)
    x = np.array([1, 5, 5, 2, 5, 5, 0, 5, 3, 4], F)      # five ids tie for the maximum
    got, want = run_both(s, r, [x] * 60)
    assert got == want and set(got) == {1, 2, 4}


def test_top_k_equal_probabilities_everywhere(make):
    s = make(64, seed=8, top_k=5)
    r = reference(64, seed=8, top_k=5)
    got, want = run_both(s, r, [np.zeros(64, F)] * 30)
    assert got == want and set(got) <= set(range(5))


def test_ngram_bans_everything_bans_nothing(make):
    s = make(3, seed=2, temperature=0.0, no_repeat_ngram=1)
    x = np.array([0.0, 1.0, 0.5], F)
    assert s.sample(x, [0, 1, 2]) == 1                   # all 3 banned: none is
    assert s.sample(x, [1]) == 2
    assert s.sample(x, [1, 2, 5, -3]) == 0               # out-of-range ids never count


def test_penalty_and_ban_by_hand(make):
    s = make(4, seed=1, temperature=0.0, repeat_penalty=2.5)
    assert s.sample(np.array([2.0, -2.0, 1.0, 0.5], F), [0]) == 2      # 2.0 -> 0.8 < 1.0
    assert s.sample(np.array([-1.0, -2.0, -1.5, -3.0], F), [0, 0, 0]) == 2   # -1 -> -2.5
    s = make(10, seed=1, temperature=0.0, no_repeat_ngram=3)
    x = np.zeros(10, F)
    x[7], x[3] = 5.0, 1.0
    assert s.sample(x, [5, 6, 7, 5, 6]) == 3            # "5 6" was followed by 7: banned


@pytest.mark.parametrize("temperature,topp", [(0.0, 0.9), (1.0, 0.9), (0.7, 1.0), (1.3, 0.0), (1.0, 0.5)])
def test_neutral_knobs_equal_plain_llama2c(make, temperature, topp):
    rng = np.random.default_rng(1)
    logits = random_logits(rng, 64, 50)
    hist = [list(rng.integers(0, 64, 30))] * 50
    s = make(64, seed=99, temperature=temperature, topp=topp, top_k=0, min_p=0.0,
             repeat_penalty=1.0, no_repeat_ngram=0, repeat_last_n=64)
    plain = ref.Sampler(64, temperature, topp, 99)       # no knobs, no history
    got = [s.sample(x, h) for x, h in zip(logits, hist)]
    assert got == [plain.sample(x) for x in logits]
    big_k = make(64, seed=99, temperature=temperature, topp=topp, top_k=64)
    assert [big_k.sample(x, h) for x, h in zip(logits, hist)] == got


# ----------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("softmax", ["exact", "kernel"])
@pytest.mark.parametrize("case", ["equal", "huge", "very_negative", "tiny_t", "huge_t", "inf",
                                  "nan", "all_neg_inf", "max_float"])
def test_edge_logits(make, softmax, case):
    vocab = 257
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(vocab) * 2).astype(F)
    knobs = {}
    if case == "equal":
        x[:] = 0.25
    elif case == "huge":
        x[100] = 1e30
    elif case == "very_negative":
        x = x - F(1e30)
        x[17] = -1e29
    elif case == "tiny_t":
        knobs["temperature"] = 1e-6
    elif case == "huge_t":
        knobs["temperature"] = 1e30
    elif case == "inf":
        x[[5, 9]] = np.inf
        x[11] = -np.inf
    elif case == "nan":
        x[::2] = np.nan
    elif case == "all_neg_inf":
        x[:] = -np.inf
    elif case == "max_float":
        x[:] = np.finfo(F).max
        x[::3] = -np.finfo(F).max
        knobs["temperature"] = 0.5
    for topp in (0.9, 1.0, 1e-6):
        s = make(vocab, seed=13, softmax=softmax, topp=topp, **knobs)
        r = reference(vocab, seed=13, topp=topp, **knobs)
        with np.errstate(all="ignore"):
            got, want = run_both(s, r, [x] * 8, own=[])
        assert got == want, (topp, got, want)
    if case == "huge":
        assert got == [100] * 8


def test_vocab_one(make):
    for topp in (0.9, 1.0):
        s = make(1, seed=3, topp=topp, top_k=5, min_p=0.5, repeat_penalty=1.5, no_repeat_ngram=1)
        for x in (0.0, -np.inf, np.nan, 7.0):
            state = s.state
            assert s.sample(np.array([x], F), [0, 0]) == 0
            assert s.state != state                       # one coin per call, still
        s.set(temperature=0.0)
        assert s.sample(np.array([1.0], F)) == 0


def test_history_long_and_odd(make):
    vocab = 128
    rng = np.random.default_rng(12)
    long_hist = list(rng.integers(0, 6, 5000))
    s = make(vocab, seed=6, repeat_penalty=1.4, repeat_last_n=0, no_repeat_ngram=3)
    r = reference(vocab, seed=6, repeat_penalty=1.4, repeat_last_n=0, no_repeat_ngram=3)
    logits = random_logits(rng, vocab, 4, 1.0)
    got, want = run_both(s, r, logits, [long_hist] * 4)
    assert got == want
    # null history pointer with a nonzero length: treated as empty
    s.m.write(s.logits, logits[0].tobytes())
    t = s.m.call("sampler_sample", s.s, s.logits, 0, 1000).eax
    assert 0 <= t < vocab
    # a huge n-gram length and window: off, no fault
    s.set(no_repeat_ngram=0xFFFFFFFF, repeat_last_n=0xFFFFFFFF)
    assert 0 <= s.sample(logits[1], long_hist[:10]) < vocab


# ----------------------------------------------------------------------------- a real model

def test_stories260k_generation(make):
    """stories260K's own logits, sampled with top-p as run.c does (seed 42): the asm picks the
    reference's tokens all along a 60-token generation, and with every knob on too."""
    model = ref.read_model(model_file("stories260K.bin"))
    tok = ref.read_tokenizer(model_file("tok512.bin"), model.config.vocab_size)
    for knobs in ({}, dict(top_k=40, min_p=0.05, repeat_penalty=1.3, no_repeat_ngram=3)):
        r = reference(model.config.vocab_size, seed=42, **knobs)
        gen = ref.generate(model, tok, "Once upon a time", steps=60, sampler=r, keep_logits=True)
        s = make(model.config.vocab_size, seed=42, softmax="kernel", **knobs)
        n_prompt = gen.n_prompt
        # replay: the logits at position pos produced token pos + 1
        got = []
        for pos, logits in enumerate(gen.logits):
            if pos < n_prompt - 1:
                continue
            got.append(s.sample(logits, gen.tokens[: pos + 1]))
        want = gen.tokens[n_prompt:]
        assert got[: len(want)] == want


# ----------------------------------------------------------------------------- fuzz

SPECIAL_F32 = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-45, -1e-45, 1e-38, 1e38, 3.4028235e38,
               float("inf"), float("-inf"), float("nan"), 0.9, 0.999, 1e-6, 1.0000001]
SPECIAL_U32 = [0, 1, 2, 3, 5, 64, 255, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def test_fuzz_fields_history_logits(make):
    """Random knob values (special floats, random bit patterns, huge counts), histories with
    garbage ids and logits with NaN/inf: never a fault (every buffer ends at a guard page),
    always an id in range, always the reference's token (exact softmax), and the choice is
    the reference's on the buffer the sampler left."""
    rng = np.random.default_rng(2024)

    def f32():
        if rng.random() < 0.6:
            return F(SPECIAL_F32[rng.integers(len(SPECIAL_F32))])
        return np.frombuffer(rng.integers(0, 2 ** 32, dtype=np.uint64).astype(np.uint32).tobytes(), F)[0]

    def u32(limit):
        return int(SPECIAL_U32[rng.integers(len(SPECIAL_U32))]) if rng.random() < 0.5 \
            else int(rng.integers(0, limit))

    for case in range(120):
        vocab = int(rng.choice([1, 2, 3, 7, 64, 65, 300]))
        knobs = dict(temperature=f32() if rng.random() < 0.5 else F(rng.random() * 2),
                     topp=f32() if rng.random() < 0.5 else F(rng.random()),
                     top_k=u32(vocab + 2), min_p=f32() if rng.random() < 0.3 else F(0),
                     repeat_penalty=f32() if rng.random() < 0.5 else F(1 + rng.random()),
                     repeat_last_n=u32(40), no_repeat_ngram=u32(5))
        seed = int(rng.integers(0, 2 ** 63))
        s = make(vocab, seed=seed, **knobs)
        r = reference(vocab, seed=seed, **knobs)
        for _ in range(3):
            x = (rng.standard_normal(vocab) * rng.choice([0.1, 3, 1e20])).astype(F)
            k = int(rng.integers(0, 4))
            if k == 1:
                x[rng.integers(0, vocab, 3)] = rng.choice([np.inf, -np.inf, np.nan], 3)
            elif k == 2:
                x[:] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
            n_hist = int(rng.choice([0, 1, 2, 5, 50]))
            h = list(rng.integers(-2, vocab + 2, n_hist))
            with np.errstate(all="ignore"):
                got, want = run_both(s, r, [x], [h], own=[])
            assert got == want, (case, vocab, knobs, x, h)
            assert s.state == r.rng.state
