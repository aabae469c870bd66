"""app_asm/sampler.s against tests/reference's Sampler (llama2.c's sampler plus the knobs).

Runs under unicorn (the SSE2 kernels; guard pages after every buffer, ABI checks at every
call and call site) through peasm.runners.unicorn_kernels. Two softmaxes:

* "exact": the k_softmax table slot points at a Python trap computing the reference's
  softmax (correctly rounded exp, sequential float32 sum), so every float the sampler sees
  is the reference's and the tokens must agree bit for bit: this checks the sampler's own
  logic (penalties, clamp, top-k, min-p, renormalisation, sort, cumulative sums, RNG);
* "kernel": the real k_softmax (expf within 2 ulp, vector partial sums), as the app runs:
  the same seeds must still give the same tokens (a difference would need a coin within
  ~1e-7 of a cdf boundary).

This file: the build, the setup calls, the RNG, greedy and llama2.c's paths (top-p,
multinomial); test_app_sampler_knobs.py: the knobs, edge cases, a real model, a fuzz; the
native AVX2 run and the timings: test_app_sampler_native.py. The harness: sampler_support.py.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.reference import llama2 as ref
from tests.reference.sampler import SEED_ZERO_STATE
from tests.sampler_support import (F, MASK64, AsmSampler, image, inc, random_logits,  # noqa: F401
                                   reference, run_both)
from tests.sampler_support import machine, make  # noqa: F401 (fixtures)

# ----------------------------------------------------------------------------- assembly

def test_keystone_and_binutils_agree():
    """The independent encoder: binutils `as` must produce the same image as keystone."""
    from tests.support import require_tool
    require_tool("as", "ld", "objdump")
    ks, gas = image("keystone"), image("gas")
    for a, b in zip(ks.sections, gas.sections, strict=True):
        assert a.name == b.name
        if a.data != b.data:
            first = next(i for i, (x, y) in enumerate(zip(a.data + b"\0", b.data + b"\1")) if x != y)
            pytest.fail(f"{a.name} differs at {ks.locate(a.rva + first)}")
    assert ks.relocs == gas.relocs


def test_layout_constants():
    c = inc()
    assert c["SMP_SIZE"] % 8 == 0 and c["SMP_RNG_STATE"] % 8 == 0 and c["SMP_WORKSPACE"] % 8 == 0
    assert c["SMP_SEED_ZERO_STATE"] == SEED_ZERO_STATE
    assert c["SMP_MAX_VOCAB"] == 1 << 24
    assert c["SMP_DEFAULT_REPEAT_WINDOW"] == ref.Sampler(2).repeat_last_n


# ----------------------------------------------------------------------------- setup calls

def test_workspace_bytes(machine):
    def expected(n):
        return 16 * n + 4096 + (n + 63) // 64 * 8
    for n in (1, 2, 63, 64, 65, 512, 32000, 1 << 24):
        assert machine.call("sampler_workspace_bytes", n).rax == expected(n)
    for bad in (0, (1 << 24) + 1, 0xFFFFFFFF):
        assert machine.call("sampler_workspace_bytes", bad).rax == 0
    assert machine.call("sampler_workspace_bytes", 0x1_0000_0010).rax == expected(16)  # ecx only


def test_init_defaults_and_status(machine, make):
    c = inc()
    s = make(100, seed=42)
    assert s.field("vocab_size") == 100 and s.field("capacity") == 100
    assert s.field("temperature") == 1.0 and s.field("topp") == F(0.9)
    assert s.field("top_k") == 0 and s.field("min_p") == 0.0
    assert s.field("repeat_penalty") == 1.0 and s.field("repeat_last_n") == 64
    assert s.field("no_repeat_ngram") == 0 and s.field("state") == 42
    assert s.field("workspace") == s.ws
    # failures: every field still written, vocab_size 0 -> sample returns 0 touching nothing
    m = machine
    st = m.alloc(c["SMP_SIZE"], "s2")
    ws = m.alloc(64, "tiny")
    assert m.call("sampler_init", st, 0, ws, 5).eax == c["SMP_E_VOCAB"]
    assert m.call("sampler_init", st, (1 << 24) + 1, ws, 5).eax == c["SMP_E_VOCAB"]
    assert m.call("sampler_init", st, 10, 0, 5).eax == c["SMP_E_NULL"]
    assert m.call("sampler_init", 0, 10, ws, 5).eax == c["SMP_E_NULL"]
    assert struct.unpack("<I", m.read(st + c["SMP_VOCAB_SIZE"], 4))[0] == 0
    logits = m.alloc(4 * 10, "l")
    assert m.call("sampler_sample", st, logits, 0, 0).eax == 0
    assert m.call("sampler_sample", 0, logits, 0, 0).eax == 0
    # a vocab_size above what the workspace was sized for is refused, not overrun
    s.set(vocab_size=101)
    logits101 = m.alloc(4 * 101, "l101")
    assert m.call("sampler_sample", s.s, logits101, 0, 0).eax == 0


def test_strerror(machine):
    c = inc()
    seen = set()
    for code in (c["SMP_OK"], c["SMP_E_VOCAB"], c["SMP_E_NULL"], 3, 0xFFFFFFFF):
        p = machine.call("sampler_strerror", code).rax
        raw = b""
        while not raw.endswith(b"\0"):
            raw += machine.read(p + len(raw), 1)
        text = raw[:-1].decode("utf-8")
        assert text.startswith("sampler: ") and "\n" not in text and len(text) < 80
        seen.add(text)
    assert len(seen) == 4   # the two unknown codes share the generic message


# ----------------------------------------------------------------------------- RNG

@pytest.mark.parametrize("seed", [1, 42, 1337, 2 ** 63 + 12345, MASK64, 0])
def test_rng_sequence(make, seed):
    s = make(4, seed=seed)
    r = ref.Sampler(4, seed=seed).rng            # seed 0 -> SEED_ZERO_STATE, as the asm
    assert s.state == r.state
    for i in range(40):
        if i % 2:
            assert s.rng_u32() == r.u32()
        else:
            assert s.rng_f32() == r.f32()
        assert s.state == r.state


def test_seed_zero_state_and_reseed(machine, make):
    s = make(4, seed=0)
    assert s.state == SEED_ZERO_STATE
    machine.call("sampler_seed", s.s, 77)
    assert s.state == 77
    machine.call("sampler_seed", s.s, 0)
    assert s.state == SEED_ZERO_STATE
    machine.call("sampler_seed", 0, 5)            # null sampler: nothing happens


# ----------------------------------------------------------------------------- greedy

def test_argmax_first_maximum_and_no_draw(make):
    s = make(6, seed=9, temperature=0.0)
    for logits, want in [([0.5, -1, 0.5, 0.1, 0.5, 0.2], 0), ([1, 3, 3, 2, 3, 0], 1),
                         ([-5, -5, -5, -5, -5, -4], 5), ([0, 0, 0, 0, 0, 0], 0),
                         ([-np.inf, np.inf, np.inf, 0, np.nan, 1], 1),
                         ([np.nan, -1, np.nan, -2, -3, -4], 1)]:
        state = s.state
        assert s.sample(np.array(logits, F)) == want
        assert s.state == state                   # temperature 0 draws no coin
    for t in (-1.0, float("nan"), -0.0):          # not > 0: greedy too
        s.set(temperature=t)
        assert s.sample(np.array([0, 2, 1, 2, 0, 0], F)) == 1


def test_greedy_random_vs_reference(make):
    rng = np.random.default_rng(5)
    s = make(300, seed=3, temperature=0.0)
    r = reference(300, seed=3, temperature=0.0)
    logits = random_logits(rng, 300, 20)
    logits[3][[7, 200]] = logits[3].max() + 1     # a tie: the first wins
    got, want = run_both(s, r, logits)
    assert got == want


# ----------------------------------------------------------------------------- llama2.c paths

@pytest.mark.parametrize("softmax", ["exact", "kernel"])
@pytest.mark.parametrize("vocab,count,scale", [(512, 200, 3.0), (512, 30, 0.3)])
def test_topp_200_samples(make, softmax, vocab, count, scale):
    """temperature 1.0, top-p 0.9: the same RNG evolving, token for token."""
    rng = np.random.default_rng(vocab + count)
    s = make(vocab, seed=1234, softmax=softmax)
    r = reference(vocab, seed=1234)
    got, want = run_both(s, r, random_logits(rng, vocab, count, scale), own=[])
    assert got == want
    assert s.state == r.rng.state


@pytest.mark.parametrize("softmax", ["exact", "kernel"])
def test_topp_32000(make, softmax):
    """The real vocabulary size, model-like (peaked) logits: token for token."""
    rng = np.random.default_rng(32000)
    s = make(32000, seed=42, softmax=softmax)
    r = reference(32000, seed=42)
    own = []
    got, want = run_both(s, r, random_logits(rng, 32000, 12, 6.0), own=own)
    assert got == want
    assert len(set(got)) > 1


@pytest.mark.parametrize("softmax", ["exact", "kernel"])
def test_topp_32000_flat(make, softmax):
    """Flat logits: ~30000 ids pass the cutoff (the radix sort at full size) and the top-p
    cut lands among thousands of near-equal probabilities. With the reference's softmax the
    tokens agree; with k_softmax the asm's choice is still exactly the reference's on the
    probabilities k_softmax produced (KNOWN_SOFTMAX_DEVIATION says why tokens may differ)."""
    rng = np.random.default_rng(320)
    s = make(32000, seed=42, softmax=softmax)
    r = reference(32000, seed=42)
    own = []
    got, want = run_both(s, r, random_logits(rng, 32000, 4, 1.0), own=own)
    if softmax == "exact":
        assert got == want


@pytest.mark.parametrize("softmax", ["exact", "kernel"])
@pytest.mark.parametrize("topp", [1.0, 0.0, -0.5, 1.5, float("nan")])
def test_multinomial(make, softmax, topp):
    rng = np.random.default_rng(11)
    s = make(512, seed=7, softmax=softmax, topp=topp, temperature=0.8)
    r = reference(512, seed=7, topp=topp, temperature=0.8)
    got, want = run_both(s, r, random_logits(rng, 512, 60, 2.0), own=[])
    assert got == want


@pytest.mark.parametrize("topp,temperature", [(0.5, 1.0), (0.95, 0.7), (0.999, 1.3), (1e-3, 1.0)])
def test_topp_variants(make, topp, temperature):
    rng = np.random.default_rng(17)
    s = make(400, seed=5, topp=topp, temperature=temperature)
    r = reference(400, seed=5, topp=topp, temperature=temperature)
    got, want = run_both(s, r, random_logits(rng, 400, 40, 2.0), own=[])
    assert got == want


def test_topp_ties_order_by_id(make):
    """Equal probabilities: the lower id first in the sorted candidates (stable), which
    decides which id a coin lands on."""
    s = make(8, seed=21, topp=0.6)
    r = reference(8, seed=21, topp=0.6)
    logits = [np.array([1, 2, 2, 0, 2, 2, 1, 2], F), np.array([0, 0, 0, 0, 0, 0, 0, 0], F),
              np.array([3, 1, 3, 1, 3, 1, 3, 1], F)] * 20
    got, want = run_both(s, r, logits)
    assert got == want
    assert len(set(got)) > 2


@pytest.mark.parametrize("probs,topp,coin,want", [
    # multinomial: coin < cdf is strict; coin == cdf[0] goes on to id 1
    ([0.25, 0.25, 0.5], 1.0, 0.25, 1),
    ([0.25, 0.25, 0.5], 1.0, 0.25 - 2 ** -24, 0),
    # the cdf ends below the coin (mass zeroed): n - 1, as llama2.c, even at p = 0
    ([0.25, 0.25, 0.25, 0.0], 1.0, 0.875, 3),
    # top-p cuts where cum > topp strictly: cum 0.5, 0.75 (not > 0.75), 1.0 -> 3 kept,
    # r = 0.875 * 1.0 lands on the third
    ([0.5, 0.25, 0.25], 0.75, 0.875, 2),
    ([0.5, 0.25, 0.25], 0.74, 0.875, 1),
    # p == cutoff is a candidate: cutoff (1 - 0.5) / 4 = 0.125; sorted 0.5 (id 4) then the
    # 0.125s in id order; cum 0.5 is not > 0.5, so id 0 is kept: r = 0.546875 -> id 0
    ([0.125, 0.125, 0.125, 0.125, 0.5], 0.5, 0.875, 0),
    ([0.125, 0.125, 0.125, 0.125, 0.5], 0.5, 0.75, 4),
    # equal probabilities keep id order after the sort
    ([0.1, 0.3, 0.1, 0.3, 0.2], 0.5, 0.6, 3),
    ([0.1, 0.3, 0.1, 0.3, 0.2], 0.5, 0.4, 1),
])
def test_boundaries_by_hand(make, probs, topp, coin, want):
    s = make(len(probs), topp=topp)
    s.use_probabilities(probs)
    s.next_coin(coin)
    assert s.sample(np.zeros(len(probs), F)) == want
    p = np.array(probs, F)
    assert (ref.sample_mult(p, F(coin)) if topp >= 1 else ref.sample_topp(p, topp, F(coin))) == want
