"""The forward pass of a llama / qwen2 GGUF model in numpy, computed as llama.cpp computes it
on a CPU, to judge the asm (tests/test_app_gguf_model.py).

The file is read by gguf-py (`gguf.GGUFReader`, the reference reader). Weights stay in their
ggml types: a matrix-vector product with a quantized weight first converts the f32 input to
the type's vec_dot_type (Q8_0 / Q8_1 / F16 / BF16, ggml's activation formats, modelled in
tests/reference/quant.py) and then does the block dot products, as ggml's CPU backend does;
F32 weights take the input as it is. Everything else follows llama.cpp's graph for these
architectures:

    x = dequantize(token_embd[token])
    per layer: xb = rmsnorm(x) * attn_norm;  q, k, v = wq@xb (+bq), wk@xb (+bk), wv@xb (+bv)
               RoPE(q, k) (llama: pairs (2i, 2i+1), ggml "norm" mode; qwen2: (i, i+n/2), "neox")
               attention over the cache (softmax(q.k / sqrt(hs)) . v, grouped-query heads),
               as ggml's flash attention computes it (flash_attention_row)
               x += wo @ att;  xb = rmsnorm(x) * ffn_norm
               x += w_down @ (silu(w_gate @ xb) * (w_up @ xb))   (ggml's SwiGLU, AVX2
                                                  build: tests/reference/ggml_swiglu.py)
    logits = output @ (rmsnorm(x) * output_norm)      (output tied to token_embd if absent)

RoPE as ggml's rope cache computes it: theta_scale = f32(base^(-2/n_rot)) and
theta_{i+1} = f32(theta_i * theta_scale) from theta_0 = f32(pos), divided by the frequency
factor of pair i when the model has rope_freqs; cos and sin rounded to f32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from peasm import ggml

from . import ggml_swiglu, quant, quant_k

F32 = np.float32


@dataclass
class Tensor:
    name: str
    type: int
    ne: tuple[int, ...]           # GGUF order, ne[0] fastest
    raw: np.ndarray               # the bytes, one row of ne[0] elements per line (uint8)

    @property
    def rows(self) -> int:
        return int(np.prod(self.ne[1:])) if len(self.ne) > 1 else 1

    def dequantized(self) -> np.ndarray:
        return dequantize(self.raw.reshape(self.rows, -1), self.type).astype(F32)


def _field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


class GGUFModel:
    """Config and tensors of a GGUF file, as the asm's model_gguf.s reads them."""

    def __init__(self, path) -> None:
        r = GGUFReader(str(path))
        self.arch = _field(r, "general.architecture")
        a = self.arch
        self.n_layers = int(_field(r, f"{a}.block_count"))
        self.dim = int(_field(r, f"{a}.embedding_length"))
        self.hidden_dim = int(_field(r, f"{a}.feed_forward_length"))
        self.n_heads = int(_field(r, f"{a}.attention.head_count"))
        self.n_kv_heads = int(_field(r, f"{a}.attention.head_count_kv", self.n_heads))
        self.eps = F32(_field(r, f"{a}.attention.layer_norm_rms_epsilon", 1e-5))
        self.theta = F32(_field(r, f"{a}.rope.freq_base", 10000.0))
        self.head_size = self.dim // self.n_heads
        self.n_rot = int(_field(r, f"{a}.rope.dimension_count", self.head_size))
        self.seq_len = int(_field(r, f"{a}.context_length"))
        self.kv_dim = self.n_kv_heads * self.head_size
        self.neox = a == "qwen2"
        self.tensors: dict[str, Tensor] = {}
        for t in r.tensors:
            ne = tuple(int(x) for x in t.shape)
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            self.tensors[t.name] = Tensor(t.name, int(t.tensor_type), ne, raw)
        self.vocab_size = self.tensors["token_embd.weight"].rows
        if "output.weight" not in self.tensors:
            self.tensors["output.weight"] = self.tensors["token_embd.weight"]

    def t(self, name: str) -> Tensor | None:
        return self.tensors.get(name)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps) -> np.ndarray:
    ss = F32(np.dot(x, x)) / F32(x.shape[0]) + F32(eps)
    return (w * (x * (F32(1.0) / np.sqrt(ss, dtype=F32)))).astype(F32)


def rope_cos_sin(pos: int, n_rot: int, theta: np.float32, factors: np.ndarray | None):
    """ggml's rope cache for one position: (cos, sin) per rotated pair, f32."""
    scale = F32(np.float64(theta) ** np.float64(F32(-2.0) / F32(n_rot)))
    th = F32(pos)
    c, s = np.empty(n_rot // 2, F32), np.empty(n_rot // 2, F32)
    for i in range(n_rot // 2):
        t = th / F32(factors[i]) if factors is not None else th
        c[i], s[i] = F32(np.cos(np.float64(t))), F32(np.sin(np.float64(t)))
        th = F32(th * scale)
    return c, s


def rope(vec: np.ndarray, hs: int, n_rot: int, c: np.ndarray, s: np.ndarray, neox: bool) -> None:
    heads = vec.reshape(-1, hs)
    if neox:
        h = n_rot // 2
        a, b = heads[:, :h].copy(), heads[:, h:n_rot].copy()
        heads[:, :h] = a * c - b * s
        heads[:, h:n_rot] = a * s + b * c
    else:
        a, b = heads[:, 0:n_rot:2].copy(), heads[:, 1:n_rot:2].copy()
        heads[:, 0:n_rot:2] = a * c - b * s
        heads[:, 1:n_rot:2] = a * s + b * c


def _f16(x) -> np.ndarray:
    return np.asarray(x, F32).astype(np.float16).astype(F32)


def flash_attention_row(q: np.ndarray, keys: np.ndarray, values: np.ndarray, kv16: bool) -> np.ndarray:
    """One head's attention for one query as llama.cpp's CPU backend computes it in decode:
    ggml's flash-attention kernel (ops.cpp, the one-query-row loop; flash attention is
    llama.cpp's default on the CPU). keys/values (pos+1, hs) hold the cache's values.
    With an f16 cache q is rounded to f16 (ggml converts Q to K's type) and the running sum
    of the values is kept in f16 (rounded after each scaling and each update); f32: in f32.
    s = (q . k) * (1/sqrtf(hs)), the dot exact in float64 then rounded to f32 (its summation
    order is the kernels' business: the products of f16 values are exact); online softmax:
    a new maximum scales the sum by expf(M_old - M), else the row weighs expf(s - M);
    out = sum * (1/S). Updates as FMA (one rounding), as ggml's AVX2 build."""
    hs = q.shape[0]
    scale = F32(1.0) / np.sqrt(F32(hs), dtype=F32)
    rnd = _f16 if kv16 else (lambda a: np.asarray(a, F32))
    qv = (rnd(q) if kv16 else np.asarray(q, F32)).astype(np.float64)
    m, s_sum = -np.inf, F32(0.0)
    acc = np.zeros(hs, F32)
    for t in range(keys.shape[0]):
        s = F32(F32(np.dot(keys[t].astype(np.float64), qv)) * scale)
        ms, vs = F32(1.0), F32(1.0)
        if s > m:
            ms = F32(0.0) if m == -np.inf else F32(np.exp(np.float64(F32(m - s))))
            m = s
            acc = rnd((acc * ms).astype(F32))
        else:
            vs = F32(np.exp(np.float64(F32(s - m))))
        acc = rnd((values[t].astype(np.float64) * np.float64(vs) + acc.astype(np.float64)).astype(F32))
        s_sum = F32(np.float64(s_sum) * np.float64(ms) + np.float64(vs))
    return (acc * (F32(1.0) / s_sum)).astype(F32)


class GGUFTransformer:
    """A GGUF model and its KV cache; forward(token, pos) -> logits (vocab,) f32.

    kv_type "f16" (llama.cpp's default cache type, and the program's for GGUF models): each
    key and value row is rounded to float16 when stored (round to nearest even, as ggml's
    fp32 -> fp16) and read back as its exact f32 value; "f32" keeps them as computed."""

    def __init__(self, model: GGUFModel, ctx: int | None = None, kv_type: str = "f16") -> None:
        if kv_type not in ("f16", "f32"):
            raise ValueError(f"kv_type {kv_type!r}: use f16 or f32")
        self.m = model
        self.ctx = ctx or model.seq_len
        shape = (model.n_layers, self.ctx, model.kv_dim)
        kv = np.float16 if kv_type == "f16" else F32
        self.key_cache = np.zeros(shape, kv)
        self.value_cache = np.zeros(shape, kv)
        self.kv16 = kv_type == "f16"
        self._f32 = {}
        ff = model.t("rope_freqs.weight")
        self.factors = ff.dequantized().reshape(-1) if ff is not None else None

    def _vec(self, name: str) -> np.ndarray:
        if name not in self._f32:
            self._f32[name] = self.m.tensors[name].dequantized().reshape(-1)
        return self._f32[name]

    def matvec(self, name: str, x: np.ndarray) -> np.ndarray:
        t = self.m.tensors[name]
        if t.type == 0:                               # F32 weights: x as it is
            w = t.raw.view(np.float32).reshape(t.rows, t.ne[0])
            return (w @ x).astype(F32)
        key = ("raw", name)
        if key not in self._f32:
            self._f32[key] = t.raw.tobytes()
        type_name = ggml.BY_ID[t.type].name
        if ggml.BY_ID[t.type].vec_dot_type == "Q8_K":
            return quant_k.matvec(type_name, self._f32[key], quant_k.quantize_q8_k(x)).astype(F32)
        return quant.matvec(type_name, self._f32[key], x, t.ne[0], t.rows).astype(F32)

    def forward(self, token: int, pos: int) -> np.ndarray:
        m = self.m
        emb = m.tensors["token_embd.weight"]
        row = emb.raw.reshape(emb.rows, -1)[token:token + 1]
        x = dequantize(row, emb.type).astype(F32).reshape(-1)
        c, s = rope_cos_sin(pos, m.n_rot, m.theta, self.factors)
        hs, kv_mul = m.head_size, m.n_heads // m.n_kv_heads
        for l in range(m.n_layers):
            p = f"blk.{l}."
            xb = rmsnorm(x, self._vec(p + "attn_norm.weight"), m.eps)
            q = self.matvec(p + "attn_q.weight", xb)
            k = self.matvec(p + "attn_k.weight", xb)
            v = self.matvec(p + "attn_v.weight", xb)
            for vec, bias in ((q, "attn_q.bias"), (k, "attn_k.bias"), (v, "attn_v.bias")):
                if m.t(p + bias) is not None:
                    vec += self._vec(p + bias)
            rope(q, hs, m.n_rot, c, s, m.neox)
            rope(k, hs, m.n_rot, c, s, m.neox)
            self.key_cache[l, pos] = k                # (f16: numpy's cast rounds to nearest even)
            self.value_cache[l, pos] = v
            att = np.empty(m.dim, F32)
            for h in range(m.n_heads):
                kvh = h // kv_mul
                sl = slice(kvh * hs, (kvh + 1) * hs)
                att[h * hs:(h + 1) * hs] = flash_attention_row(
                    q[h * hs:(h + 1) * hs], self.key_cache[l, :pos + 1, sl].astype(F32),
                    self.value_cache[l, :pos + 1, sl].astype(F32), self.kv16)
            x = (x + self.matvec(p + "attn_output.weight", att)).astype(F32)
            xb = rmsnorm(x, self._vec(p + "ffn_norm.weight"), m.eps)
            hb = ggml_swiglu.swiglu(self.matvec(p + "ffn_gate.weight", xb),
                                    self.matvec(p + "ffn_up.weight", xb), fma=True)
            x = (x + self.matvec(p + "ffn_down.weight", hb)).astype(F32)
        x = rmsnorm(x, self._vec("output_norm.weight"), m.eps)
        return self.matvec("output.weight", x)


def greedy(tr: GGUFTransformer, prompt: list[int], steps: int) -> list[int]:
    """Feed the prompt ids, then `steps` greedy tokens; returns the generated ids."""
    out, pos, logits = [], 0, None
    for tok in prompt:
        logits = tr.forward(tok, pos)
        pos += 1
    for _ in range(steps):
        tok = int(np.argmax(logits))
        out.append(tok)
        logits = tr.forward(tok, pos)
        pos += 1
    return out
