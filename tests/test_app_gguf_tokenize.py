"""/tokenize through the whole program (native hosted runner) for every byte-level BPE
vocabulary of ../shared/models/vocab/ and SmolLM2's: each vocabulary is put into a tiny
random llama GGUF (the vocab-only files carry no tensors), the program loads it as a model
with its own tokenizer, and `/tokenize LINE` for each one-line text of the corpus equals the
`tokenizers` oracle (tests/vocab_support.py) built from the same vocabulary and merges.
The encoder modules themselves are checked natively and under unicorn on the whole corpus,
newlines and all, in tests/test_app_bpe.py.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from gguf import GGUFWriter

from peasm.runners.hosted import run
from tests import vocab_support as vs
from tests.app_helpers import make_volume
from tests.support import model_file

VOCABS = ["vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-bpe.gguf", "vocab/ggml-vocab-qwen2.gguf",
          "vocab/ggml-vocab-starcoder.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"]


def one_line_texts() -> list[bytes]:
    """Corpus texts a person can type on one line as a command's argument (no line breaks,
    no leading or trailing whitespace, no control characters)."""
    out = []
    for t in vs.corpus():
        s = t.decode()
        if s and s == s.strip() and not any(ord(c) < 0x20 or c in "\x85\u2028\u2029" for c in s):
            out.append(t)
    return out


def write_tiny_model(path, meta: vs.Meta) -> None:
    """A 1-layer llama GGUF (dim 64) carrying `meta`'s vocabulary: random F32 weights."""
    rng = np.random.default_rng(3)
    n_vocab, dim, hidden = len(meta.tokens), 64, 128
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(hidden)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_context_length(256)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model(meta.model.decode())
    if meta.pre:
        w.add_tokenizer_pre(meta.pre.decode())
    w.add_token_list(meta.tokens)
    if meta.token_type:
        w.add_token_types(meta.token_type)
    if meta.merges:
        w.add_token_merges(meta.merges)
    for value, add in ((meta.bos, w.add_bos_token_id), (meta.eos, w.add_eos_token_id)):
        if value != vs.NO_ID:
            add(value)

    def t(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
    w.add_tensor("token_embd.weight", t(n_vocab, dim))
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(dim, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(dim, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(f"blk.0.{name}.weight", t(dim, dim))
    w.add_tensor("blk.0.ffn_gate.weight", t(hidden, dim))
    w.add_tensor("blk.0.ffn_up.weight", t(hidden, dim))
    w.add_tensor("blk.0.ffn_down.weight", t(dim, hidden))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("vocab", VOCABS)
def test_tokenize_through_the_program_equals_tokenizers(chat_efi, tmp_path, vocab):
    meta = vs.read_meta(str(model_file(vocab)))
    assert meta.model == b"gpt2"
    tk = vs.oracle(meta)
    texts = one_line_texts()
    (tmp_path / "vol").mkdir()
    write_tiny_model(tmp_path / "vol" / "tiny.gguf", meta)
    vol = make_volume(tmp_path / "vol", cfg="model = tiny.gguf\nctx_len = 64\n",
                      autorun=[f"/tokenize {t.decode()}" for t in texts] + ["/shutdown"])
    r = run(chat_efi, vol, cpu="native", mem_mib=1024, timeout_s=900)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-2000:])
    assert "tokenizer: the model's own (byte-level BPE" in r.text, r.text[:2000]
    got = re.findall(r"(?m)^> /tokenize [^\n]*\n([0-9 ]*)$", r.text)
    assert len(got) == len(texts), r.text[-2000:]
    for text, ids in zip(texts, got):
        want = []
        for part in vs.partition(meta, text, False):      # typed text: user-defined specials only
            want.extend([part] if isinstance(part, int) else vs.oracle_encode(tk, part))
        assert [int(x) for x in ids.split()] == want, text
