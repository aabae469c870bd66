"""llama2.c's sampler (xorshift64* RNG, argmax / multinomial / top-p) plus the extra knobs.

RNG (``random_u32``), on a 64-bit unsigned state, all arithmetic mod 2**64::

    s ^= s >> 12;  s ^= s << 25;  s ^= s >> 27
    return (s * 0x2545F4914F6CDD1D) >> 32          # low 32 bits of the high half -> u32

``random_f32 = (random_u32 >> 8) / 16777216.0`` (exact in float32: a multiple of 2**-24 in
[0, 1)). ``Rng(seed)`` starts with state = seed, 0 included (a fixed point of xorshift: it
yields 0 forever). run.c substitutes time(NULL) for seed 0; ``Sampler`` (like
app_asm/sampler.s) substitutes the fixed state ``SEED_ZERO_STATE`` instead.

``sample(logits)`` (run.c), with float32 arithmetic everywhere:

* temperature == 0: argmax, the *first* index of the maximum. No RNG draw.
* else: ``logits[i] /= temperature``; softmax (subtract the max, ``exp``, sum sequentially
  in float32 from index 0, divide each by the sum); then **one** coin = random_f32();
  - if ``topp <= 0 or topp >= 1``: multinomial: ``cdf += p[i]`` from i = 0; return the first i
    with ``coin < cdf``; if none, n - 1.
  - else top-p: ``cutoff = (1 - topp) / (n - 1)`` (float32); candidates = indices with
    ``p[i] >= cutoff``, sorted by p descending (stable: equal p keep index order);
    ``cum += p`` over them, ``last`` = the first position where ``cum > topp`` (else the last
    candidate), ``cum`` being the sum up to and including ``last``; ``r = coin * cum``;
    ``cdf += p`` over candidates 0..last, return the first whose ``r < cdf``; else the
    candidate at ``last``.

Float notes: ``exp`` is computed in float64 and rounded to float32 (correctly rounded;
glibc's expf is within 0.502 ulp, so a C build can differ in a last bit, which changes a
token only when the coin lands within ~1e-7 of a cdf boundary). The sort order of equal
probabilities in top-p follows a stable sort; glibc's qsort is not guaranteed stable.

Extra knobs (all off at their neutral values, which give llama2.c exactly)
-------------------------------------------------------------------------
Applied in this order, to a float32 copy of the logits, given ``history`` (the tokens so
far, prompt included, oldest first):

1. ``repeat_penalty`` (neutral 1.0) over the distinct tokens among the last
   ``repeat_last_n`` of history (all of history if ``repeat_last_n <= 0``):
   ``logit = logit / penalty`` if ``logit > 0`` else ``logit * penalty``.
2. ``no_repeat_ngram`` = n (neutral 0): when history has at least n - 1 tokens, every token t
   such that ``history[-(n-1):] + [t]`` already occurs as n consecutive tokens of history
   gets logit ``-inf`` (for n = 1: every token of history). If that would ban every token,
   no token is banned.
3. temperature == 0 -> argmax of these logits (no RNG draw). Otherwise divide by temperature
   and softmax as above.
4. ``top_k`` (neutral 0, also neutral when >= n): keep the k largest probabilities (ties
   broken toward the lower index), set the others to 0.
5. ``min_p`` (neutral 0.0): set to 0 every probability ``< min_p * max(p)``.
6. if 4 or 5 zeroed anything, renormalise: divide every p by their float32 sequential sum.
7. coin, then top-p or multinomial exactly as above (zeroed entries can never be picked:
   multinomial needs ``coin < cdf`` to grow; top-p's cutoff is > 0 for topp < 1).

Inputs llama2.c leaves undefined (they never occur with its defaults and a sane model; the
asm sampler must still return a valid token for them, and does what is written here):

* knob values are read as C floats/ints: ``repeat_penalty`` is off unless
  ``0 < penalty < inf`` and ``penalty != 1``; ``temperature <= 0`` or NaN is greedy;
  ``min_p`` is off unless ``> 0``, and acts as 1 above 1; ``topp`` NaN is multinomial.
* history ids outside ``[0, n)`` are never penalised or banned (they still take part in
  n-gram matching), and do not count toward "every token banned".
* after the division by temperature (greedy: before the argmax), logits are clamped into
  ``[-FLT_MAX, FLT_MAX]`` with NaN -> ``-FLT_MAX``: a tiny temperature or an infinite logit
  can then not make the softmax NaN (it changes nothing for finite quotients).
* top-p with no candidate at all (``topp < 1/n`` on a flat distribution; n = 1, where the
  cutoff divides by zero) returns the first maximum of the probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

MASK64 = (1 << 64) - 1
MULT = 0x2545F4914F6CDD1D
F32 = np.float32
FLT_MAX = np.finfo(np.float32).max
SEED_ZERO_STATE = 0x9E3779B97F4A7C15   # the RNG state a Sampler seeded with 0 starts from


def xorshift_step(state: int) -> tuple[int, int]:
    """One ``random_u32`` call: returns (new_state, u32)."""
    s = state & MASK64
    s ^= s >> 12
    s ^= (s << 25) & MASK64
    s ^= s >> 27
    return s, ((s * MULT) & MASK64) >> 32


class Rng:
    """xorshift64* as llama2.c: ``Rng(seed).u32()`` / ``.f32()``; ``.state`` is public."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def u32(self) -> int:
        self.state, r = xorshift_step(self.state)
        return r

    def f32(self) -> np.float32:
        return F32((self.u32() >> 8) / 16777216.0)


# ----------------------------------------------------------------------------- primitives

def exp_f32(x: np.ndarray) -> np.ndarray:
    """float32 exp, correctly rounded (computed in float64)."""
    return np.exp(np.asarray(x, dtype=np.float64)).astype(F32)


def seqsum_f32(x: np.ndarray) -> np.float32:
    """Sequential float32 sum from index 0 (``for i: s += x[i]``), not numpy's pairwise sum."""
    x = np.asarray(x, dtype=F32)
    if x.size == 0:
        return F32(0.0)
    return np.cumsum(x, dtype=F32)[-1]


def softmax_f32(x: np.ndarray) -> np.ndarray:
    """llama2.c softmax: max-subtract, exp, sequential float32 sum, divide."""
    x = np.asarray(x, dtype=F32)
    e = exp_f32(x - x.max())
    return (e / seqsum_f32(e)).astype(F32)


def clamp_logits(x: np.ndarray) -> np.ndarray:
    """Into [-FLT_MAX, FLT_MAX], NaN -> -FLT_MAX (float32; finite values unchanged)."""
    x = np.asarray(x, dtype=F32)
    return np.clip(np.where(np.isnan(x), -FLT_MAX, x), -FLT_MAX, FLT_MAX).astype(F32)


def argmax_first(x: np.ndarray) -> int:
    """Index of the first maximum (llama2.c ``sample_argmax`` uses strict ``>``)."""
    return int(np.argmax(np.asarray(x)))


def sample_mult(probs: np.ndarray, coin: float) -> int:
    """First i with ``coin < cdf_i`` (float32 sequential cdf), else n - 1."""
    cdf = np.cumsum(np.asarray(probs, dtype=F32), dtype=F32)
    hit = np.nonzero(F32(coin) < cdf)[0]
    return int(hit[0]) if hit.size else len(cdf) - 1


def sample_topp(probs: np.ndarray, topp: float, coin: float) -> int:
    """llama2.c ``sample_topp`` (module doc), float32, stable descending sort."""
    probs = np.asarray(probs, dtype=F32)
    n = len(probs)
    topp32 = F32(topp)
    with np.errstate(divide="ignore"):
        cutoff = (F32(1.0) - topp32) / F32(n - 1)            # n = 1: +inf
    idx = np.nonzero(probs >= cutoff)[0]
    if idx.size == 0:
        return argmax_first(probs)
    order = idx[np.argsort(-probs[idx], kind="stable")]
    kept = probs[order]
    cum = np.cumsum(kept, dtype=F32)
    over = np.nonzero(cum > topp32)[0]
    last = int(over[0]) if over.size else len(order) - 1
    r = F32(coin) * cum[last]
    hit = np.nonzero(r < cum[: last + 1])[0]
    return int(order[hit[0]]) if hit.size else int(order[last])


# ----------------------------------------------------------------------------- knobs

def apply_repeat_penalty(logits: np.ndarray, history: Sequence[int], penalty: float,
                         last_n: int = 64) -> np.ndarray:
    """Step 1 of the module doc (in place on a float32 array; returns it)."""
    p = F32(penalty)
    if not (0 < p < np.inf) or p == 1 or len(history) == 0:
        return logits
    window = history[-last_n:] if last_n > 0 else history
    for t in sorted(set(int(t) for t in window if 0 <= int(t) < len(logits))):
        v = logits[t]
        logits[t] = v / p if v > 0 else v * p
    return logits


def banned_ngram_tokens(history: Sequence[int], n: int) -> set[int]:
    """Step 2 of the module doc: tokens that would repeat an n-gram of ``history``."""
    h = [int(t) for t in history]
    if n <= 0 or len(h) < n - 1:
        return set()
    if n == 1:
        return set(h)
    prefix = h[len(h) - (n - 1):]
    banned = set()
    for i in range(len(h) - n + 1):
        if h[i: i + n - 1] == prefix:
            banned.add(h[i + n - 1])
    return banned


def top_k_filter(probs: np.ndarray, k: int) -> bool:
    """Step 4: zero all but the k largest (ties toward lower index). True if anything changed."""
    n = len(probs)
    if k <= 0 or k >= n:
        return False
    order = np.argsort(-probs, kind="stable")
    drop = order[k:]
    changed = bool(np.any(probs[drop] != 0))
    probs[drop] = 0
    return changed


def min_p_filter(probs: np.ndarray, min_p: float) -> bool:
    """Step 5: zero probabilities below ``min_p * max``. True if anything changed."""
    if not F32(min_p) > 0:
        return False
    thr = min(F32(min_p), F32(1.0)) * probs.max()
    drop = (probs < thr) & (probs != 0)
    probs[drop] = 0
    return bool(drop.any())


# ----------------------------------------------------------------------------- sampler

@dataclass
class Sampler:
    """run.c's Sampler: ``Sampler(vocab_size, temperature, topp, seed).sample(logits)``.

    The extra knobs default to their neutral values. ``history`` is only read by the
    repetition knobs; pass the token list so far (prompt included).
    """

    vocab_size: int
    temperature: float = 1.0
    topp: float = 0.9
    seed: int = 1
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    no_repeat_ngram: int = 0
    rng: Rng = field(init=False)

    def __post_init__(self) -> None:
        self.rng = Rng(self.seed if self.seed & MASK64 else SEED_ZERO_STATE)

    def sample(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        logits = np.array(logits, dtype=F32).reshape(-1)[: self.vocab_size].copy()
        n = len(logits)
        apply_repeat_penalty(logits, history, self.repeat_penalty, self.repeat_last_n)
        if self.no_repeat_ngram > 0:
            banned = {t for t in banned_ngram_tokens(history, self.no_repeat_ngram) if 0 <= t < n}
            if banned and len(banned) < n:
                logits[sorted(banned)] = -np.inf
        temperature = F32(self.temperature)
        if not temperature > 0:
            return argmax_first(clamp_logits(logits))
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            probs = softmax_f32(clamp_logits(logits / temperature))
        changed = top_k_filter(probs, self.top_k)
        changed = min_p_filter(probs, self.min_p) or changed
        if changed:
            probs = (probs / seqsum_f32(probs)).astype(F32)
        coin = self.rng.f32()
        topp = F32(self.topp)  # a C float: 0.99999999 is 1.0f -> multinomial
        if not 0 < topp < 1:                 # NaN too
            return sample_mult(probs, coin)
        return sample_topp(probs, self.topp, coin)
