"""The load-time repack of Q4_0/Q4_1/Q4_K/F32 weights into 8-row groups (app_asm/model_repack.s over
kernels_asm/ggml_repack.s; the layout: peasm/ggml.py, peasm/ggml_r8.py), natively on the
AVX2 path, the only one with the R8 bodies:

* after model_repack, every eligible weight (each layer's q/k/v/o/gate/up/down and an
  classifier, untied, or tied to the token embedding when F32: the embedding's descriptor
  then takes F32_R8 too, its rows gathered by model_embed_row) that peasm.ggml_r8.packable
  says the repack takes (a type with an R8 form, rows a multiple of 8, F32 rows of whole
  8-column chunks) holds exactly peasm.ggml_r8.pack of its file bytes and has the R8 type
  id; every other weight, an untied token embedding and a tied Q4 classifier are untouched; repack off (want 0) puts everything
  back bit for bit; a second call moves nothing;
* the SSE2 path (no R8 bodies) never repacks, and a repacked model switched to it is put back;
* decode with 1, 2 and 4 worker threads gives one core's bits;
* the batched prefill equals token-by-token decode BIT FOR BIT (logits and KV cache) once
  every Q4 product weight is repacked (the R8 matvec rounds as the batched bodies do;
  test_app_prefill.py keeps the tolerance rule for models with Q4 weights left plain), and
  for f32 models (.bin and GGUF: F32_R8's batched body, matmat_f32_r8_avx2, rounds as its matvec;
  the f32 weights left plain round alike in both passes too);
* repack on and off give the same greedy tokens, near-ties excepted (test_app_prefill's
  rule: the two passes differ only by f32 roundings of the same exact block sums);
* the whole program: `repack = on|off` in repl.cfg, the load line, /cfg, /attn sse2 and back,
  a bad value's one line.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from peasm import ggml, ggml_r8
from peasm.runners import native
from tests.support import model_file, require
from tests.test_app_prefill import (B, C, Machine, Model, PRODUCT_FIELDS, assert_close, assert_same,
                                    batched, one_by_one, product_types, prompt, tolerance)

R8_IDS = {t.id for t in ggml.INTERNAL_TYPES}


def _need_avx2():
    ok, why = native.supported()
    require(ok, why)
    require(native.host_has_avx2_fma(), "host CPU has no AVX2+FMA: no R8 bodies to repack for")


def write_model(path: Path, layer_type: str, *, output: str | None, embd: str = "Q4_0",
                hidden: int = 320, vocab: int = 296, seed: int = 3) -> Path:
    """A small random llama GGUF (gguf-py's writer): layers of `layer_type`, the token
    embedding `embd`, a classifier of type `output` (None: tied to the embedding)."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from tests.reference.gguf_random import _tensor
    dim, layers, heads, kv_heads = 128, 2, 4, 2
    rng = np.random.default_rng(seed)
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(hidden)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_context_length(128)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)

    def add(name, t, rows, n):
        w.add_tensor(name, _tensor(rng, t, rows, n),
                     raw_dtype=None if t in ("F32", "F16") else GGMLQuantizationType[t])

    kv = kv_heads * dim // heads
    add("token_embd.weight", embd, vocab, dim)
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    if output:
        add("output.weight", output, vocab, dim)
    for l in range(layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(dim, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(dim, np.float32))
        add(p + "attn_q.weight", layer_type, dim, dim)
        add(p + "attn_k.weight", layer_type, kv, dim)
        add(p + "attn_v.weight", layer_type, kv, dim)
        add(p + "attn_output.weight", layer_type, dim, dim)
        add(p + "ffn_gate.weight", layer_type, hidden, dim)
        add(p + "ffn_up.weight", layer_type, hidden, dim)
        add(p + "ffn_down.weight", layer_type, dim, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# (name, layer type, classifier type or None: tied, embedding type, hidden)
GENERATED = [
    ("q4_0_tied", "Q4_0", None, "Q4_0", 320),       # a tied Q4_0 classifier: never repacked
    ("q4_1_own", "Q4_1", "Q4_1", "Q4_0", 320),      # an own Q4_1 classifier: repacked
    ("f32_own", "F32", "F32", "F32", 320),          # f32 throughout, an own classifier
]
# f32 model files: stories260K's ffn_gate/up (172 rows) and ffn_down (172 columns) stay plain
F32_FILES = ("stories260K.bin", "stories260K.gguf", "quant/tiny256-f32.gguf")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("repack")
    out = {name: write_model(d / f"{name}.gguf", lt, output=o, embd=e, hidden=h)
           for name, lt, o, e, h in GENERATED}
    for name in ("quant/tiny256-Q4_0.gguf", "quant/tiny256-Q4_1.gguf", "quant/stories260K-Q4_0.gguf",
                 "quant/tiny256-Q4_K_M.gguf") + F32_FILES:
        out[name] = model_file(name)
    return out


@pytest.fixture(scope="module")
def native1():
    _need_avx2()
    m = Machine("native")
    yield m
    m.close()


def _tensors(model: Model) -> dict[str, tuple[int, int, int, int, int]]:
    """name -> (descriptor address, data, type, rows, n) of every weight a product or the
    embedding reads."""
    mc, layers = model.mc, model.u64("MODEL_LAYERS")
    out = {}

    def desc(name, at):
        data, = struct.unpack("<Q", mc.read(at + C["TENSOR_DATA"], 8))
        t, n, rows = struct.unpack("<III", mc.read(at + C["TENSOR_TYPE"], 12))
        out[name] = (at, data, t, rows, n)

    for l in range(model.u32("MODEL_N_LAYERS")):
        for f in PRODUCT_FIELDS:
            desc(f"{l}.{f}", layers + l * C["LAYER_SIZE"] + C[f"LAYER_{f}"])
    desc("OUTPUT", model.m + C["MODEL_OUTPUT"])
    desc("TOK_EMBD", model.m + C["MODEL_TOK_EMBD"])
    return out


def _bytes(model: Model, t: tuple) -> bytes:
    _, data, tid, rows, n = t
    tt = ggml.BY_ID[tid]
    return model.mc.read(data, rows * n // tt.block_size * tt.block_bytes)


@pytest.mark.parametrize("name", [g[0] for g in GENERATED] + ["quant/tiny256-Q4_0.gguf",
                                                             "quant/tiny256-Q4_1.gguf",
                                                             "quant/stories260K-Q4_0.gguf",
                                                             "quant/tiny256-Q4_K_M.gguf",
                                                             *F32_FILES])
def test_repack_bytes_types_and_back(native1, files, name):
    model = Model(native1, files[name])
    before = _tensors(model)
    raw = {k: _bytes(model, t) for k, t in before.items()}
    tied = before["OUTPUT"][1] == before["TOK_EMBD"][1]
    tied_f32 = tied and ggml.BY_ID[before["OUTPUT"][2]].name == "F32"   # gathered by rows
    count = native1.mc.call("model_repack", model.m, 1)
    after = _tensors(model)
    moved = 0
    for k, (at, data, tid, rows, n) in before.items():
        base = ggml.BY_ID[tid].name
        if k == "TOK_EMBD" and tied_f32 and ggml_r8.packable(base, rows, n):
            assert after[k][2] == after["OUTPUT"][2] == ggml.BY_NAME["F32_R8"].id   # one layout
            assert _bytes(model, after[k]) == ggml_r8.pack(raw[k], base, rows, n), k
            continue
        eligible = k != "TOK_EMBD" and not (k == "OUTPUT" and tied and not tied_f32)
        if eligible and ggml_r8.packable(base, rows, n):
            r8 = ggml.BY_NAME[ggml.R8_OF[base]]
            assert after[k][2] == r8.id, k
            assert _bytes(model, after[k]) == ggml_r8.pack(raw[k], base, rows, n), k
            moved += 1
        else:
            assert after[k][2] == tid, k
            assert _bytes(model, after[k]) == raw[k], k
    assert count == moved > 0
    if name == "q4_0_tied":
        assert tied and after["OUTPUT"][2] == after["TOK_EMBD"][2] == ggml.BY_NAME["Q4_0"].id
    if name == "q4_1_own":
        assert after["OUTPUT"][2] == ggml.BY_NAME["Q4_1_R8"].id
    if name == "quant/stories260K-Q4_0.gguf":                     # gate/up of 172 rows: plain
        assert after["0.FFN_GATE"][2] == ggml.BY_NAME["Q4_0"].id
    if name == "quant/tiny256-Q4_K_M.gguf":                       # Q4_K -> Q4_K_R8, Q6_K stays
        assert count == 12 and after["0.ATTN_Q"][2] == ggml.BY_NAME["Q4_K_R8"].id
        assert after["OUTPUT"][2] == ggml.BY_NAME["Q6_K"].id
    if name == "stories260K.bin":                                 # llama2.c: a shared classifier
        assert tied and after["OUTPUT"][2] == after["TOK_EMBD"][2] == ggml.BY_NAME["F32_R8"].id
    if name in ("stories260K.bin", "stories260K.gguf"):            # 172 rows or columns: plain
        assert after["0.ATTN_Q"][2] == ggml.BY_NAME["F32_R8"].id
        assert after["0.FFN_GATE"][2] == after["0.FFN_DOWN"][2] == ggml.BY_NAME["F32"].id
    if name == "f32_own":
        assert after["OUTPUT"][2] == after["0.FFN_DOWN"][2] == ggml.BY_NAME["F32_R8"].id
    snap = {k: _bytes(model, t) for k, t in after.items()}
    assert native1.mc.call("model_repack", model.m, 1) == count      # idempotent
    assert _tensors(model) == after and {k: _bytes(model, t) for k, t in after.items()} == snap
    assert native1.mc.call("model_repack", model.m, 0) == 0          # repack off: all back
    assert _tensors(model) == before
    assert {k: _bytes(model, t) for k, t in before.items()} == raw


def test_not_ready_and_sse2_path_never_repack(files):
    _need_avx2()
    m = Machine("native")
    try:
        model = Model(m, files["quant/tiny256-Q4_0.gguf"])
        before = _tensors(model)
        fresh = m.mc.alloc(C["MODEL_SIZE"], align=8)                  # no model: refused
        assert m.mc.call("model_repack", fresh, 1) == 0
        assert m.mc.call("kernels_init", native.host_cpu_bits(), 1) == 1   # force sse2
        assert m.mc.call("model_repack", model.m, 1) == 0
        assert _tensors(model) == before
        assert m.mc.call("kernels_init", native.host_cpu_bits(), 0) == 2   # avx2: repacked
        assert m.mc.call("model_repack", model.m, 1) == 14
        assert set(product_types(model)) - {ggml.BY_NAME["Q6_K"].id} <= R8_IDS
        raw_after = {k: _bytes(model, t) for k, t in _tensors(model).items()}
        assert m.mc.call("kernels_init", native.host_cpu_bits(), 1) == 1   # sse2: put back
        assert m.mc.call("model_repack", model.m, 1) == 0
        assert _tensors(model) == before
        logits = model.forward(1, 0)                                  # runs on sse2
        assert np.isfinite(logits).all()
        assert raw_after                                              # (packed bytes were read)
    finally:
        m.close()


def test_unicorn_sse2_never_repacks(files):
    """Under unicorn (SSE2 bodies only: the R8 types have no body there) nothing moves."""
    m = Machine("unicorn")
    model = Model(m, files["quant/tiny256-Q4_1.gguf"])
    before = _tensors(model)
    assert m.mc.call("model_repack", model.m, 1) == 0
    assert _tensors(model) == before


@pytest.mark.parametrize("name", ["q4_1_own", "quant/tiny256-Q4_0.gguf", "quant/tiny256-Q4_K_M.gguf"])
def test_decode_and_prefill_workers_bit_identical(native1, files, name):
    """Decode (the queued jobs, cut at whole 8-row groups) and the batched prefill
    (k_par_matmat, the same) with 1, 2, 4 worker threads: one core's bits."""
    turns = lambda model: [prompt(model.vocab, 5, 1)]
    long = lambda model: [prompt(model.vocab, B + 5, 2)]
    alone = Model(native1, files[name], repack=True)
    want, want_b = one_by_one(alone, turns(alone), 6), batched(alone, long(alone), 2)
    for workers in (1, 2, 4):
        m = Machine("native", workers)
        try:
            model = Model(m, files[name], repack=True)
            assert model.repacked > 0
            got, got_b = one_by_one(model, turns(model), 6), batched(model, long(model), 2)
        finally:
            m.close()
        for g, w in ((got, want), (got_b, want_b)):
            assert [x.tobytes() for x in g[0]] == [x.tobytes() for x in w[0]], workers
            assert g[1:] == w[1:], workers


@pytest.mark.parametrize("name", ["q4_0_tied", "q4_1_own", "quant/tiny256-Q4_0.gguf",
                                  "quant/tiny256-Q4_1.gguf", "quant/tiny256-Q4_K_M.gguf",
                                  "f32_own", *F32_FILES])
def test_prefill_equals_decode_bit_for_bit_when_repacked(native1, files, name):
    """Every Q4 product weight repacked (the tied classifier is Q4_0 but read as the
    embedding's file form through the plain bodies: q4_0_tied keeps the tolerance path for
    it): bit for bit, logits, KV cache and the greedy tokens after."""
    from tests.test_app_prefill import plain_rounded_products
    model = Model(native1, files[name], repack=True)
    assert model.repacked > 0
    path = files[name]
    if plain_rounded_products(model):
        assert name == "q4_0_tied"
        for n in (3, B + 5):
            assert_close(model, one_by_one(model, [prompt(model.vocab, n, n)], 0),
                         batched(model, [prompt(model.vocab, n, n)], 0))
        return
    for n in (1, 7, B, B + 5):
        assert_same(model, [prompt(model.vocab, n, seed=n)], decode=3, path=path)
    assert_same(model, [prompt(model.vocab, 9, 1), prompt(model.vocab, B + 3, 2)], decode=4, path=path)


@pytest.mark.parametrize("name", ["q4_1_own", "quant/tiny256-Q4_0.gguf", "quant/tiny256-Q4_1.gguf",
                                  "quant/tiny256-Q4_K_M.gguf", "f32_own", "stories260K.bin"])
def test_repack_on_and_off_same_greedy_tokens(native1, files, name):
    """On against off: the same exact block sums rounded otherwise (8 lanes per row reduced,
    against one FMA per block in row order), so the same tokens, near-ties excepted, and
    logits within test_app_prefill's tolerance."""
    on, off = Model(native1, files[name], repack=True), Model(native1, files[name])
    assert on.repacked > 0
    turns = [prompt(on.vocab, 12, 5)]
    a, b = one_by_one(off, turns, 0), one_by_one(on, turns, 0)
    assert_close(off, a, b)
    tol = tolerance(off)
    logits_off, logits_on = a[0][-1].astype(np.float64), b[0][-1].astype(np.float64)
    pos, toks_off, toks_on = len(turns[0]), [], []
    for _ in range(8):                       # greedy from the same point; stop at a near-tie
        t_off, t_on = int(np.argmax(logits_off)), int(np.argmax(logits_on))
        if t_off != t_on:
            gap = logits_off[t_off] - logits_off[t_on]
            assert gap <= 2 * tol * float(np.sqrt(np.mean(logits_off ** 2))), (toks_off, t_off, t_on)
            break
        toks_off.append(t_off)
        logits_off = off.forward(t_off, pos).astype(np.float64)
        logits_on = on.forward(t_on, pos).astype(np.float64)
        pos += 1


# ------------------------------------------------------------------ the whole program, hosted

def _chat(efi, vol):
    from peasm.runners.hosted import run
    r = run(efi, vol, cpu="native", mem_mib=512, timeout_s=600)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-2000:])
    return r.text


@pytest.mark.parametrize("cfg, count", [("", 14), ("repack = on\n", 14), ("repack = off\n", 0),
                                        ("repack = maybe\n", 14)])
def test_program_repack_setting(chat_efi, tmp_path, cfg, count):
    """tiny256-Q4_0 (2 layers of Q4_0 matrices, a Q6_K classifier): the load says how many
    weights were repacked (none with repack off), /cfg says the setting and the loaded
    model's count, /attn sse2 puts them back and /attn auto repacks them again (repack on);
    a bad value is the settings' one line and the default stays."""
    _need_avx2()
    from tests.app_helpers import make_volume
    vol = make_volume(tmp_path / "vol", files={"tiny256-Q4_0.gguf": model_file("quant/tiny256-Q4_0.gguf")},
                      cfg="temperature = 0\nmax_tokens = 8\n" + cfg,
                      autorun=["/cfg", "/attn sse2", "/attn auto", "/shutdown"])
    text = _chat(chat_efi, vol)
    lines = text.splitlines()
    load = [ln for ln in lines if ln.startswith("weights: ")]
    if count:
        assert load == [f"weights: {count} repacked to 8-row groups (avx2 kernels)",
                        "weights: back in the file's layout (the sse2 kernels have no 8-row form)",
                        f"weights: {count} repacked to 8-row groups (avx2 kernels)"], load
    else:
        assert load == [], load
    setting = {"": "on  (default)", "repack = on\n": "on  (repl.cfg)", "repack = off\n": "off  (repl.cfg)",
               "repack = maybe\n": "on  (default)"}[cfg]
    assert f"repack = {setting}" in lines
    assert (f"weights of the loaded model: {count} in 8-row groups (repack applies at the next model load)"
            in lines)
    bad = [ln for ln in lines if ln.startswith("repl.cfg:")]
    if "maybe" in cfg:
        assert bad == ["repl.cfg:3: bad value 'maybe' for repack: expected on or off (line ignored)"], bad
    else:
        assert bad == [], bad
