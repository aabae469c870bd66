"""The KV cache's element type (MODEL_KV_TYPE) at the module level: fw_kv_store (the end of
app_asm/forward.s) writes rows bit for bit as numpy's float16 cast (f16 caches) or as given
(f32), on the SSE2 path under unicorn (guard pages) and on the host's path natively; its
refusals; model_state_bytes counts 2 bytes an element for f16; the forward pass with f32
caches still equals the numpy reference with f32 caches (the f16 default is
tests/test_app_gguf_model.py's).
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.reference import gguf_forward as ref
from tests.support import REPO, model_file
from tests.test_app_gguf_model import C, GgufAsmModel, greedy_against_reference, image
from tests.test_app_gguf_model import machine as _machine


def machine(where: str):
    """unicorn (SSE2 bodies, guard pages), native (the host's path: AVX2 + F16C here) or
    native-sse2 (the SSE2 bodies on the host CPU)."""
    if where != "native-sse2":
        return _machine(where)
    from peasm.runners.native import host_cpu_bits
    from tests.model_support import NativeMachine
    nm = NativeMachine(image())
    assert nm.call("kernels_init", host_cpu_bits(), 1) == 1         # K_CHOICE_SSE2 -> K_PATH_SSE2
    return nm

TINY = "quant/tiny256-Q8_0.gguf"
ATT_KV_TYPE = next(int(ln.split(",")[1].split("#")[0], 0)
                   for ln in (REPO / "kernels_asm" / "kernels.inc").read_text().splitlines()
                   if ln.startswith(".equ ATT_KV_TYPE,"))


def _edge_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """f32 values that meet every branch of f32 -> f16 rounding: ties to even at normal and
    subnormal f16 spacing, the overflow edge (65520: the first value that rounds to inf),
    the smallest subnormal's half (a tie to 0) and just above it, f16 normal/subnormal
    boundary, infinities, quiet NaNs with payloads, zeros of both signs, f32 subnormals."""
    bits = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7FD12345,
            0x477FE000, 0x477FEFFF, 0x477FF000, 0xC77FF000, 0x477FFFFF, 0x47800000,   # 65504 .. 65536
            0x33000000, 0x33000001, 0xB3000000, 0x33800000, 0x33C00000, 0x32FFFFFF,  # 2^-25, 2^-24 ...
            0x387FC000, 0x387FE000, 0x387FF000, 0x38800000, 0x38801000, 0x38803000,  # around 2^-14
            0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F802FFF, 0x00000001, 0x807FFFFF, 0x7F7FFFFF]
    out = rng.standard_normal(n).astype(np.float32)
    out *= np.exp2(rng.uniform(-30, 18, n)).astype(np.float32)
    e = np.array(bits, np.uint32).view(np.float32)
    out[:e.size] = e
    # f16 ties: a random normal f16 plus half its ulp (must round to even)
    h = rng.integers(0x0400, 0x7C00, n // 4, dtype=np.uint16)
    tie = (h.view(np.float16).astype(np.float32).view(np.uint32) + 0x1000).view(np.float32)
    out[e.size:e.size + tie.size] = tie[:max(0, min(tie.size, n - e.size))]
    return out


def _cache_row(am: GgufAsmModel, which: str, layer: int, pos: int, count: int) -> bytes:
    mc = am.mc
    base = mc.read_u64(am.m + C[f"MODEL_S_{which}_CACHE"])
    layer_bytes = mc.read_u64(am.m + C["MODEL_KV_LAYER_BYTES"])
    kv_dim = am.u32("MODEL_KV_DIM")
    el = 2 if am.u32("MODEL_KV_TYPE") == C["GGML_TYPE_F16"] else 4
    return mc.read(base + layer * layer_bytes + pos * kv_dim * el, count * kv_dim * el)


def _store(am: GgufAsmModel, layer: int, pos: int, k: np.ndarray, v: np.ndarray, n: int) -> int:
    mc = am.mc
    pk = mc.alloc(max(1, k.nbytes), k.tobytes(), align=4)
    pv = mc.alloc(max(1, v.nbytes), v.tobytes(), align=4)
    return mc.call("fw_kv_store", am.m, layer, pos, pk, pv, n)


@pytest.mark.parametrize("where", ["unicorn", "native", "native-sse2"])
def test_store_rounds_as_numpy_float16(where):
    am = GgufAsmModel(machine(where), model_file(TINY).read_bytes(), ctx=16, kv_type="f16")
    assert am.status == 0, am.message(am.status)
    kv_dim, layers = am.u32("MODEL_KV_DIM"), am.u32("MODEL_N_LAYERS")
    rng = np.random.default_rng(5)
    n = 5
    k = _edge_f32(rng, n * kv_dim)
    v = _edge_f32(rng, n * kv_dim)[::-1].copy()
    assert _store(am, layers - 1, 3, k, v, n) == 0
    with np.errstate(all="ignore"):
        want_k, want_v = k.astype(np.float16).tobytes(), v.astype(np.float16).tobytes()
    assert _cache_row(am, "KEY", layers - 1, 3, n) == want_k
    assert _cache_row(am, "VALUE", layers - 1, 3, n) == want_v
    # the neighbours were not touched: rows 2 and 8, and layer 0
    assert _cache_row(am, "KEY", layers - 1, 2, 1) == bytes(2 * kv_dim)
    assert _cache_row(am, "VALUE", layers - 1, 8, 1) == bytes(2 * kv_dim)
    assert _cache_row(am, "KEY", 0, 3, n) == bytes(2 * kv_dim * n)


@pytest.mark.parametrize("where", ["unicorn", "native", "native-sse2"])
def test_store_signaling_nan_is_made_quiet_as_f16c_does(where):
    """numpy's cast keeps a signaling NaN signaling (0x7f800001 -> 0x7c01); F16C's vcvtps2ph,
    which ggml uses, makes it quiet (-> 0x7e00). Both paths give the hardware's bits."""
    am = GgufAsmModel(machine(where), model_file(TINY).read_bytes(), ctx=8, kv_type="f16")
    kv_dim = am.u32("MODEL_KV_DIM")
    k = np.zeros(kv_dim, np.float32)
    k.view(np.uint32)[:3] = [0x7F800001, 0xFF812345, 0x7FA00000]
    assert _store(am, 0, 0, k, k, 1) == 0
    got = np.frombuffer(_cache_row(am, "KEY", 0, 0, 1), np.uint16)
    assert [hex(x) for x in got[:3]] == ["0x7e00", "0xfe09", "0x7f00"]


@pytest.mark.parametrize("where", ["unicorn", "native"])
def test_store_f32_copies_and_refuses_outside_the_cache(where):
    am = GgufAsmModel(machine(where), model_file(TINY).read_bytes(), ctx=8, kv_type="f32")
    kv_dim, layers = am.u32("MODEL_KV_DIM"), am.u32("MODEL_N_LAYERS")
    k = _edge_f32(np.random.default_rng(9), 2 * kv_dim)
    v = -k
    assert _store(am, 1, 6, k, v, 2) == 0                       # the last two positions
    assert _cache_row(am, "KEY", 1, 6, 2) == k.tobytes()
    assert _cache_row(am, "VALUE", 1, 6, 2) == v.tobytes()
    assert _store(am, 0, 0, k, v, 0) == 0 and _cache_row(am, "KEY", 0, 0, 1) == bytes(4 * kv_dim)
    E_POS = C["MODEL_E_POS"]
    assert _store(am, 0, 7, k, v, 2) == E_POS                   # pos + n > ctx_len
    assert _store(am, 0, 0xFFFFFFFF, k, v, 2) == E_POS
    assert _store(am, layers, 0, k, v, 1) == E_POS              # no such layer
    assert _cache_row(am, "KEY", 0, 0, 8) == bytes(4 * kv_dim * 8)


def test_state_bytes_and_layout_by_kv_type():
    """f16 caches take half the bytes: model_state_bytes (as peasm.layouts declares it),
    KV_LAYER_BYTES, the ATT block's element type; a KV_TYPE that is neither is taken as f32."""
    from peasm.layouts import StateShape, state_bytes
    mc = machine("unicorn")
    sizes = {}
    for kv_type in ("f32", "f16"):
        am = GgufAsmModel(mc, model_file(TINY).read_bytes(), ctx=64, kv_type=kv_type)
        assert am.status == 0
        sizes[kv_type] = mc.call("model_state_bytes", am.m, 64)
        shape = StateShape(*(am.u32(f"MODEL_{f.upper()}") for f in StateShape._fields))
        assert sizes[kv_type] == state_bytes(shape, 64, kv_type.upper())
        layers, kv_dim = am.u32("MODEL_N_LAYERS"), am.u32("MODEL_KV_DIM")
        el = 4 if kv_type == "f32" else 2
        assert mc.read_u64(am.m + C["MODEL_KV_LAYER_BYTES"]) == 64 * kv_dim * el
        att = am.m + C["MODEL_ATT_BLOCK"]
        assert struct.unpack("<I", mc.read(att + ATT_KV_TYPE, 4))[0] == C[f"GGML_TYPE_{kv_type.upper()}"]
        kb, vb = mc.read_u64(am.m + C["MODEL_S_KEY_CACHE"]), mc.read_u64(am.m + C["MODEL_S_VALUE_CACHE"])
        assert vb - kb >= layers * 64 * kv_dim * el
    cache = 2 * layers * 64 * kv_dim
    assert sizes["f32"] - sizes["f16"] == 4 * cache - 2 * cache
    mc.write(am.m + C["MODEL_KV_TYPE"], struct.pack("<I", 7))
    assert mc.call("model_state_bytes", am.m, 64) == sizes["f32"]
    assert am.u32("MODEL_KV_TYPE") == C["GGML_TYPE_F32"]


@pytest.mark.parametrize("name", ["quant/tiny256-Q4_K_M.gguf", "quant/stories260K-Q8_0.gguf"])
def test_f32_caches_equal_the_f32_reference(name):
    path = model_file(name)
    am = GgufAsmModel(machine("native"), path.read_bytes(), kv_type="f32")
    assert am.status == 0, am.message(am.status)
    tr = ref.GGUFTransformer(ref.GGUFModel(path), ctx=96, kv_type="f32")
    assert len(greedy_against_reference(am, tr, 48)) <= 2


def test_f16_caches_change_the_logits_as_the_reference_does():
    """The f16 rounding is really applied: the f16 reference's logits are closer to the asm's
    f16 run than the f32 reference's are (a run that silently kept f32 would not be)."""
    path = model_file("quant/tiny256-f32.gguf")
    am = GgufAsmModel(machine("native"), path.read_bytes(), kv_type="f16")
    m = ref.GGUFModel(path)
    r16, r32 = ref.GGUFTransformer(m, ctx=96, kv_type="f16"), ref.GGUFTransformer(m, ctx=96, kv_type="f32")
    d16 = d32 = 0.0
    for pos, tok in enumerate([1, 50, 120, 7, 99, 200, 31, 64]):
        ours = am.logits(tok, pos)
        d16 = max(d16, float(np.abs(ours - r16.forward(tok, pos)).max()))
        d32 = max(d32, float(np.abs(ours - r32.forward(tok, pos)).max()))
    assert d16 < d32 / 4, (d16, d32)     # (not /10: ggml's f16 sum of the values may round
                                         # the other way than the reference's now and then)


def _write_qwen2(path, seed: int = 3) -> None:
    """A small random qwen2 GGUF (F32 weights, q/k/v biases, NeoX RoPE, GQA, tied output):
    the biases and RoPE happen before the f16 rounding of the stored rows."""
    from gguf import GGUFWriter
    rng = np.random.default_rng(seed)
    dim, hidden, layers, heads, kv_heads, vocab = 64, 160, 2, 4, 2, 96
    kv = kv_heads * dim // heads
    w = GGUFWriter(str(path), "qwen2")
    w.add_block_count(layers)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(hidden)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_context_length(64)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)

    def add(name, *shape, scale=0.3):
        w.add_tensor(name, (scale * rng.standard_normal(shape)).astype(np.float32))

    add("token_embd.weight", vocab, dim, scale=1.0)
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    for l in range(layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, np.float32))
        add(p + "attn_q.weight", dim, dim)
        add(p + "attn_k.weight", kv, dim)
        add(p + "attn_v.weight", kv, dim)
        add(p + "attn_q.bias", dim, scale=2.0)
        add(p + "attn_k.bias", kv, scale=40.0)      # large keys: their f16 rounding shows
        add(p + "attn_v.bias", kv, scale=2.0)
        add(p + "attn_output.weight", dim, dim)
        add(p + "ffn_gate.weight", hidden, dim)
        add(p + "ffn_up.weight", hidden, dim)
        add(p + "ffn_down.weight", dim, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("where", ["native", "unicorn"])
def test_qwen2_biases_and_neox_rope_before_the_f16_store(tmp_path, where):
    """The asm's f16 run equals the f16 reference closely (and is farther from the f32 one):
    bias, then RoPE, then rounding, in llama.cpp's order."""
    path = tmp_path / "qwen2.gguf"
    _write_qwen2(path)
    am = GgufAsmModel(machine(where), path.read_bytes(), ctx=64, kv_type="f16")
    assert am.status == 0, am.message(am.status)
    m = ref.GGUFModel(path)
    r16, r32 = ref.GGUFTransformer(m, ctx=64, kv_type="f16"), ref.GGUFTransformer(m, ctx=64, kv_type="f32")
    d16 = d32 = 0.0
    for pos, tok in enumerate([1, 50, 20, 7, 90, 33, 64, 5, 17, 2, 81, 40]):
        ours, want = am.logits(tok, pos), r16.forward(tok, pos)
        scale = float(np.abs(want).max())
        d16 = max(d16, float(np.abs(ours - want).max()) / scale)
        d32 = max(d32, float(np.abs(ours - r32.forward(tok, pos)).max()) / scale)
    assert d16 < 1e-4 and d16 < d32 / 10, (d16, d32)
