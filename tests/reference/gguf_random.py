"""Random-weight llama GGUF files of any shape and ggml type, written with gguf-py's
GGUFWriter, for benchmarks and boots of real model sizes (TinyLlama-1.1B: dim 2048, hidden
5632, 22 layers, 32 heads, 4 KV heads, vocab 32000, context 2048).

Quantized tensors are random blocks in the type's layout (ggml-common.h), written as bytes:
every byte random except the f16 scale fields, which get small finite values, so the model
computes finite numbers without anything being quantized (quantizing 1B floats in numpy
would take minutes). Norms are F32 ones. The vocabulary, when given a vocab-only GGUF (e.g.
ggml-vocab-llama-spm.gguf), is copied into the file so the program finds its tokenizer there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

# byte offsets of the f16 scale fields inside one block (ggml-common.h)
SCALE_FIELDS = {
    "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
}


@dataclass(frozen=True)
class Shape:
    dim: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    ctx: int


SHAPES = {
    "tinyllama": Shape(2048, 5632, 22, 32, 4, 32000, 2048),
    "tiny": Shape(256, 768, 2, 4, 2, 512, 256),
}


def _tensor(rng: np.random.Generator, type_name: str, rows: int, n: int) -> np.ndarray:
    """rows x n elements of `type_name` as gguf-py wants them (uint8 rows of bytes, or floats)."""
    if type_name == "F32":
        return (rng.standard_normal((rows, n), dtype=np.float32) * 0.02).astype(np.float32)
    if type_name == "F16":
        return (rng.standard_normal((rows, n), dtype=np.float32) * 0.02).astype(np.float16)
    q = GGMLQuantizationType[type_name]
    block, nbytes = GGML_QUANT_SIZES[q]
    assert n % block == 0, (type_name, n)
    blocks = rows * (n // block)
    raw = rng.integers(0, 256, (blocks, nbytes), dtype=np.uint8)
    scale = np.full(blocks, 0.002 if type_name.endswith("_K") else 0.01, dtype=np.float16).view(np.uint8)
    for off in SCALE_FIELDS[type_name]:
        raw[:, off:off + 2] = scale.reshape(blocks, 2)
    if type_name in ("Q4_K", "Q5_K", "Q2_K"):            # sub-block scales: keep them small
        start = 4 if type_name != "Q2_K" else 0
        count = 12 if type_name != "Q2_K" else 16
        raw[:, start:start + count] &= 0x3F
    return raw.reshape(rows, -1)


def write_llama_gguf(path: Path, shape: Shape, type_name: str, *, seed: int = 1,
                     vocab_from: Path | None = None, output_type: str | None = None) -> int:
    """Writes the model; returns the bytes of weights one decode step reads (every matrix
    once, the classifier once, the embedding row not counted)."""
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(shape.layers)
    w.add_embedding_length(shape.dim)
    w.add_feed_forward_length(shape.hidden)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_context_length(shape.ctx)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(shape.dim // shape.heads)
    w.add_name(f"random-{type_name}")
    if vocab_from is not None:
        _copy_vocab(w, Path(vocab_from), shape.vocab)
    kv = shape.kv_heads * (shape.dim // shape.heads)
    step_bytes = 0

    def add(name: str, t: str, rows: int, n: int) -> None:
        nonlocal step_bytes
        data = _tensor(rng, t, rows, n)
        raw_dtype = None if t in ("F32", "F16") else GGMLQuantizationType[t]
        w.add_tensor(name, data, raw_dtype=raw_dtype)
        if name != "token_embd.weight" and rows > 1:
            step_bytes += data.nbytes

    add("token_embd.weight", type_name, shape.vocab, shape.dim)
    add("output_norm.weight", "F32", 1, shape.dim)
    add("output.weight", output_type or type_name, shape.vocab, shape.dim)
    for l in range(shape.layers):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", "F32", 1, shape.dim)
        add(p + "ffn_norm.weight", "F32", 1, shape.dim)
        add(p + "attn_q.weight", type_name, shape.dim, shape.dim)
        add(p + "attn_k.weight", type_name, kv, shape.dim)
        add(p + "attn_v.weight", type_name, kv, shape.dim)
        add(p + "attn_output.weight", type_name, shape.dim, shape.dim)
        add(p + "ffn_gate.weight", type_name, shape.hidden, shape.dim)
        add(p + "ffn_up.weight", type_name, shape.hidden, shape.dim)
        add(p + "ffn_down.weight", type_name, shape.dim, shape.hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return step_bytes


def _copy_vocab(w: GGUFWriter, src: Path, vocab: int) -> None:
    r = GGUFReader(str(src))
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]) for i in f.data][:vocab]       # raw bytes, as stored
    assert len(tokens) == vocab, f"{src} has {len(tokens)} tokens, the model {vocab}"
    w.add_tokenizer_model(r.fields["tokenizer.ggml.model"].contents())
    w.add_token_list(tokens)
    if "tokenizer.ggml.scores" in r.fields:
        w.add_token_scores([float(x) for x in r.fields["tokenizer.ggml.scores"].contents()][:vocab])
    if "tokenizer.ggml.token_type" in r.fields:
        w.add_token_types([int(x) for x in r.fields["tokenizer.ggml.token_type"].contents()][:vocab])
    for key, add in (("tokenizer.ggml.bos_token_id", w.add_bos_token_id),
                     ("tokenizer.ggml.eos_token_id", w.add_eos_token_id),
                     ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id)):
        if key in r.fields:
            add(int(r.fields[key].contents()))
