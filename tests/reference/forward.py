"""Llama-2 forward pass in numpy, as llama2.c's run.c applies the equations, and ``generate``.

One token at position ``pos`` (0-based), float32 throughout (or float64 with
``Transformer(model, dtype=np.float64)``, useful to measure float32 rounding error)::

    x = token_embedding[token]
    for l in layers:
        xb = rmsnorm(x, rms_att[l])
        q = wq[l] @ xb;  k = wk[l] @ xb;  v = wv[l] @ xb          # q: dim, k/v: kv_dim
        rope(q, k, pos)
        key_cache[l, pos] = k;  value_cache[l, pos] = v
        for h in heads:                                         # kvh = h // kv_mul
            q_h = q[h*hs:(h+1)*hs]
            att[t] = q_h . key_cache[l, t, kvh*hs:(kvh+1)*hs] / sqrt(hs)   for t in 0..pos
            att = softmax(att)
            xb[h*hs:(h+1)*hs] = sum_t att[t] * value_cache[l, t, kvh*hs:(kvh+1)*hs]
        x += wo[l] @ xb
        xb = rmsnorm(x, rms_ffn[l])
        hb = silu(w1[l] @ xb) * (w3[l] @ xb)
        x += w2[l] @ hb
    x = rmsnorm(x, rms_final)
    logits = wcls @ x

* ``rmsnorm(x, w) = w * (x * (1 / sqrt(sum(x*x) / n + 1e-5)))``
* ``silu(a) = a * (1 / (1 + exp(-a)))``
* ``softmax``: subtract the max, exp, divide by the sum.
* ``rope``: for i = 0, 2, 4, .. < dim: ``head_dim = i % hs``,
  ``freq = 1 / 10000 ** (head_dim / hs)`` and ``val = pos * freq`` (both float32 in run.c),
  ``(a, b) <- (a*cos(val) - b*sin(val), a*sin(val) + b*cos(val))`` applied to
  ``(q[i], q[i+1])`` and, when ``i < kv_dim``, to ``(k[i], k[i+1])``.

Matrix products use numpy's float32 matmul (BLAS summation order, not C's left-to-right);
scalars that run.c computes in float32 (RoPE angle, 1/sqrt) are rounded to float32 the same
way. Expect agreement with a C/asm float32 implementation to ~1e-5 relative on logits, not
bit-exactness.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .modelfile import Model
from .sampler import Sampler
from .tokenizer import BOS, Tokenizer, printable_piece

F32 = np.float32
EPS = 1e-5


# ----------------------------------------------------------------------------- kernels

def rmsnorm(x: np.ndarray, w: np.ndarray, dtype=F32) -> np.ndarray:
    """``w * (x * (1 / sqrt(mean(x^2) + 1e-5)))``, in ``dtype``."""
    x = np.asarray(x, dtype=dtype)
    ss = dtype(np.dot(x, x)) / dtype(x.shape[-1]) + dtype(EPS)
    inv = dtype(1.0) / np.sqrt(ss, dtype=dtype)
    return (np.asarray(w, dtype=dtype) * (inv * x)).astype(dtype)


def softmax(x: np.ndarray, dtype=F32) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    e = np.exp(x - x.max())
    return (e / e.sum(dtype=dtype)).astype(dtype)


def silu(x: np.ndarray, dtype=F32) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    return (x * (dtype(1.0) / (dtype(1.0) + np.exp(-x)))).astype(dtype)


def matmul(w: np.ndarray, x: np.ndarray, dtype=F32) -> np.ndarray:
    """``w (d, n) @ x (n,) -> (d,)``."""
    return (np.asarray(w, dtype=dtype) @ np.asarray(x, dtype=dtype)).astype(dtype)


def rope_cos_sin(pos: int, dim: int, head_size: int, dtype=F32) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of the rotation angle for each pair i = 0, 2, .. < dim (length dim/2).

    As run.c: ``freq = 1.0f / powf(10000.0f, head_dim / (float)head_size)``,
    ``val = pos * freq`` in float32 (each step rounded to float32 when dtype is float32).
    """
    head_dim = (np.arange(0, dim, 2) % head_size).astype(dtype)
    expo = (head_dim / dtype(head_size)).astype(dtype)
    powv = np.power(np.float64(10000.0), expo.astype(np.float64)).astype(dtype)
    freq = (dtype(1.0) / powv).astype(dtype)
    val = (dtype(pos) * freq).astype(dtype)
    v64 = val.astype(np.float64)
    return np.cos(v64).astype(dtype), np.sin(v64).astype(dtype)


def rope(vec: np.ndarray, pos: int, head_size: int, dtype=F32) -> np.ndarray:
    """Rotate consecutive pairs of ``vec`` (q, or k with its own length kv_dim) in place.

    The angle for pair i depends only on ``i % head_size``, so rotating k separately with
    its length kv_dim is the same as run.c's "rotate k when i < kv_dim"."""
    c, s = rope_cos_sin(pos, len(vec), head_size, dtype)
    a = vec[0::2].copy()
    b = vec[1::2].copy()
    vec[0::2] = a * c - b * s
    vec[1::2] = a * s + b * c
    return vec


def attention_head(q_h: np.ndarray, keys: np.ndarray, values: np.ndarray, dtype=F32) -> tuple[np.ndarray, np.ndarray]:
    """One head: ``keys``/``values`` are (pos+1, hs). Returns (output hs, softmax weights)."""
    hs = q_h.shape[0]
    scores = (keys @ q_h).astype(dtype) / np.sqrt(dtype(hs), dtype=dtype)
    att = softmax(scores, dtype)
    return (att @ values).astype(dtype), att


# ----------------------------------------------------------------------------- model

class Transformer:
    """Weights + KV cache. ``forward(token, pos)`` returns the logits (vocab,) for that position.

    The KV cache persists between calls (like run.c's RunState), so a caller must feed
    positions 0, 1, 2, ... in order (or rewrite earlier positions). ``reset()`` clears it.
    ``trace``, when a dict, receives per-layer intermediates of the last call
    (keys like ``"l0.xb_att"``, ``"l0.q"``, ``"l0.att_h0"``, ``"final.x"``).
    """

    def __init__(self, model: Model, dtype=F32, max_seq_len: int | None = None) -> None:
        self.model = model
        self.c = model.config
        self.dtype = dtype
        self.seq_len = min(self.c.seq_len, max_seq_len or self.c.seq_len)
        cast = (lambda a: np.asarray(a, dtype=dtype))
        m = model
        self.w = {n: cast(getattr(m, n)) for n in (
            "token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
            "rms_final", "wcls")}
        self.reset()
        self.trace: dict | None = None

    def reset(self) -> None:
        c = self.c
        self.key_cache = np.zeros((c.n_layers, self.seq_len, c.kv_dim), dtype=self.dtype)
        self.value_cache = np.zeros_like(self.key_cache)

    def forward(self, token: int, pos: int) -> np.ndarray:
        c, w, dt = self.c, self.w, self.dtype
        if not 0 <= pos < self.seq_len:
            raise IndexError(f"pos {pos} outside 0..{self.seq_len - 1}")
        hs, kv_mul = c.head_size, c.kv_mul
        tr = self.trace
        x = w["token_embedding"][token].copy()
        for l in range(c.n_layers):
            xb = rmsnorm(x, w["rms_att"][l], dt)
            q = matmul(w["wq"][l], xb, dt)
            k = matmul(w["wk"][l], xb, dt)
            v = matmul(w["wv"][l], xb, dt)
            rope(q, pos, hs, dt)
            rope(k, pos, hs, dt)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            out = np.empty(c.dim, dtype=dt)
            for h in range(c.n_heads):
                kvh = h // kv_mul
                sl = slice(kvh * hs, (kvh + 1) * hs)
                o, att = attention_head(q[h * hs:(h + 1) * hs], self.key_cache[l, : pos + 1, sl],
                                        self.value_cache[l, : pos + 1, sl], dt)
                out[h * hs:(h + 1) * hs] = o
                if tr is not None:
                    tr[f"l{l}.att_h{h}"] = att
            x = (x + matmul(w["wo"][l], out, dt)).astype(dt)
            xb2 = rmsnorm(x, w["rms_ffn"][l], dt)
            hb = (silu(matmul(w["w1"][l], xb2, dt), dt) * matmul(w["w3"][l], xb2, dt)).astype(dt)
            x = (x + matmul(w["w2"][l], hb, dt)).astype(dt)
            if tr is not None:
                tr.update({f"l{l}.xb_att": xb, f"l{l}.q": q, f"l{l}.k": k, f"l{l}.v": v,
                           f"l{l}.att_out": out, f"l{l}.xb_ffn": xb2, f"l{l}.hb": hb, f"l{l}.x": x.copy()})
        x = rmsnorm(x, w["rms_final"], dt)
        if tr is not None:
            tr["final.x"] = x
        return matmul(w["wcls"], x, dt)


def forward_all(model: Model, tokens: Sequence[int], dtype=F32) -> np.ndarray:
    """Logits (len(tokens), vocab) for a token sequence fed at positions 0, 1, ..."""
    t = Transformer(model, dtype)
    return np.stack([t.forward(tok, pos) for pos, tok in enumerate(tokens)])


# ----------------------------------------------------------------------------- generate

@dataclass
class Generation:
    """Result of :func:`generate`.

    ``tokens``: prompt tokens (BOS first) followed by the generated ones, i.e. every token
    that was fed or produced (the final stop token, BOS, is not included).
    ``pieces``: decode(prev, next) for each printed step, unfiltered bytes.
    ``stdout``: exactly what run.c writes to stdout: safe_printf of each piece, then ``"\\n"``.
    ``text``: the concatenated pieces as UTF-8 (errors replaced): what a UTF-8 aware
    console shows (run.c's safe_printf drops lone bytes >= 0x80, ``stdout`` keeps that).
    """

    tokens: list[int]
    n_prompt: int
    pieces: list[bytes] = field(default_factory=list)
    logits: list[np.ndarray] | None = None

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.n_prompt:]

    @property
    def raw(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def stdout(self) -> bytes:
        return b"".join(printable_piece(p) for p in self.pieces) + b"\n"

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


def generate(model: Model | Transformer, tokenizer: Tokenizer, prompt: str | bytes = "",
             steps: int = 256, temperature: float = 1.0, topp: float = 0.9, seed: int = 1,
             *, sampler: Sampler | None = None, keep_logits: bool = False,
             on_piece: Callable[[bytes], None] | None = None) -> Generation:
    """run.c's ``generate``.

    ``steps`` <= 0 or > seq_len becomes seq_len (run.c's rule). Prompt tokens =
    ``encode(prompt, bos=True, eos=False)``. Then, for pos = 0 .. steps-1: logits =
    forward(token, pos); next = the next prompt token while ``pos < n_prompt - 1``, else
    ``sampler.sample(logits)``; pos += 1; **stop if next == BOS (1)** (EOS, 2, does not stop
    run.c); emit ``decode(token, next)``; token = next. So at most ``steps`` pieces are
    emitted and the prompt's own pieces (after the first, BOS) are among them.
    ``sampler`` overrides temperature/topp/seed (e.g. to use the extra knobs; it is handed
    the token history).
    """
    tf = model if isinstance(model, Transformer) else Transformer(model)
    tf.reset()
    c = tf.c
    if steps <= 0 or steps > c.seq_len:
        steps = c.seq_len
    steps = min(steps, tf.seq_len)
    prompt_tokens = tokenizer.encode(prompt, bos=True, eos=False)
    if sampler is None:
        sampler = Sampler(c.vocab_size, temperature, topp, seed)
    gen = Generation(tokens=list(prompt_tokens[:1]), n_prompt=len(prompt_tokens),
                     logits=[] if keep_logits else None)
    token = prompt_tokens[0]
    pos = 0
    while pos < steps:
        logits = tf.forward(token, pos)
        if gen.logits is not None:
            gen.logits.append(logits)
        if pos < len(prompt_tokens) - 1:
            nxt = prompt_tokens[pos + 1]
        else:
            nxt = sampler.sample(logits, gen.tokens)
        pos += 1
        if nxt == BOS:
            break
        piece = tokenizer.decode(token, nxt)
        gen.pieces.append(piece)
        if on_piece is not None:
            on_piece(piece)
        gen.tokens.append(nxt)
        token = nxt
    return gen
