#!/usr/bin/env python3
"""Where do our logits part from llama.cpp's? Position by position, then layer by layer.

    .venv/bin/python scripts/compare_llamacpp.py MODEL.gguf --llama-python PY
        [--text "..." | --ids 1,2,3] [--ctx 256] [--layers]

Both engines are fed the same token ids one at a time (decode, no batching): ours is the
model's asm (model_gguf_* and model_forward) in the native runner with the AVX2 kernels, one
core, the f16 KV cache; llama.cpp (through llama-cpp-python in its own virtualenv, as
scripts/bench_llamacpp.py explains) with one thread, its f16 KV cache and flash attention on
(its CPU default). --text is tokenized by llama.cpp (special tokens parsed, no BOS added);
--ids are taken as they are.

One line per position: identical (every logit's bits) or the largest difference and both
argmaxes. With --layers, at the first position that differs, each layer's output there
(llama.cpp's `l_out-L` through its eval callback; ours by running that position with the
model cut to L+1 layers, then comparing after the final RMS norm both get) names the first
layer that differs; from there, the kernels can be fed llama.cpp's inputs one at a time.

What it found (SmolLM2-135M-Instruct Q4_1, the chat prompt of the README's example): every
logit identical for six positions; then RoPE, twice over: llama.cpp takes cos and sin from
glibc's cosf/sinf, which are not correctly rounded (about 2% of the values for positions
< 512 differ by one ulp from the correctly rounded ones an x87 table gives), and its AVX2
build fuses one product of each rotated output into an FMA; one such ulp changed a query's
f16 rounding in layer 22 at position 6. With both as llama.cpp has them
(kernels_asm/sincosf_glibc.s, rope_apply_ggml_avx2) 13 positions were identical; at
position 13 layer 0 parted: RMSNorm, whose sum of squares ggml takes in double, in order
(ours was llama2.c's f32 partial sums; the ulps it left were mostly absorbed by the Q8
rounding of the matmul inputs). With kernels_asm/rmsnorm_ggml.s all 37 positions of that
prompt are identical.

The K-quants (tiny256-Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, Q2_K): every logit differed from
position 0, layer 0. First Q8_K: llama.cpp 0c1e570 quantizes with iscale = -127/max (ggml
had -128); with that alone Q6_K was identical. Then the order of the min terms: ggml's AVX2
vec_dot keeps them apart from the 8 scale lanes (Q4_K: 4 lanes of FMAs folded 0+2, 1+3;
Q5_K: one fused scalar), added after hsum_float_8: Q5_K_M identical. Q4_K_M still parted:
llama.cpp repacks its Q4_K weights (rows a multiple of 8, AVX2) and runs the q4_K_8x8 gemv,
one FMA chain per row for the scales and one for the mins, then their difference: with the
Q4_K_R8 form (--repack on, the program's default) identical. Q3_K took its -4 per word pair
as ggml's lanes do (not from the bsums): Q3_K_M and Q2_K identical. 60 positions of each.
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Run under the llama-cpp-python interpreter: logits per position (and, for one position,
# each layer's output) into an .npz.
LLAMA_RUNNER = r"""
import ctypes, json, sys
import numpy as np
import llama_cpp as L
path, ctx, out, text, ids, layer_pos = sys.argv[1:7]
ids = [int(t) for t in ids.split(",")] if ids else []
layer_pos = int(layer_pos)
class T(ctypes.Structure):      # ggml.h's struct ggml_tensor (GGML_MAX_DIMS 4, _SRC 10, _NAME 64)
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]
layers, want = {}, [False]
def cb(t, ask, ud):
    t = t.contents
    name = t.name.decode()
    if ask:
        return name.startswith("l_out-")
    if want[0] and t.type == 0 and t.data and name.startswith("l_out-") and t.ne[1] == 1:
        layers[name] = np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)),
                                             shape=(t.ne[0],)).copy()
    return True
CB = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.POINTER(T), ctypes.c_bool, ctypes.c_void_p)
cbf = CB(cb)
L.llama_backend_init()
model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
vocab = L.llama_model_get_vocab(model)
if not ids:
    buf = (L.llama_token * 4096)()
    n = L.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, 4096, False, True)
    ids = list(buf[:n])
cp = L.llama_context_default_params()
cp.n_ctx = int(ctx); cp.n_batch = 1; cp.n_ubatch = 1; cp.n_threads = 1; cp.n_threads_batch = 1
cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
cp.cb_eval = ctypes.cast(cbf, type(cp.cb_eval))
lctx = L.llama_init_from_model(model, cp)
nv = L.llama_vocab_n_tokens(vocab)
logits = []
for pos, tok in enumerate(ids):
    want[0] = pos == layer_pos
    arr = (L.llama_token * 1)(tok)
    assert L.llama_decode(lctx, L.llama_batch_get_one(arr, 1)) == 0
    logits.append(np.ctypeslib.as_array(L.llama_get_logits(lctx), shape=(nv,)).copy())
np.savez(out, ids=np.array(ids), logits=np.array(logits), **layers)
"""


def llama(py: str, model: Path, ctx: int, text: str, ids: list[int], layer_pos: int, tmp: Path):
    out = tmp / f"llama{layer_pos}.npz"
    r = subprocess.run([py, "-c", LLAMA_RUNNER, str(model), str(ctx), str(out), text,
                        ",".join(map(str, ids)), str(layer_pos)], capture_output=True, text=True)
    if r.returncode or not out.is_file():
        sys.exit(f"compare_llamacpp: llama.cpp failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}")
    return np.load(out)


def ours(model: Path, ctx: int, repack: bool = True):
    from peasm.runners import native
    ok, why = native.supported()
    if not ok:
        sys.exit(f"compare_llamacpp: the native runner cannot run here: {why}")
    from tests.test_app_gguf_model import GgufAsmModel, machine
    am = GgufAsmModel(machine("native"), model.read_bytes(), ctx=ctx, repack=repack)
    if am.status:
        sys.exit(f"compare_llamacpp: {am.message(am.status)}")
    return am


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--llama-python", required=True, help="a python with llama_cpp (llama-cpp-python)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--text", help="the prompt, tokenized by llama.cpp (special tokens parsed)")
    g.add_argument("--ids", help="token ids, comma-separated")
    ap.add_argument("--ctx", type=int, default=256, help="context of both (default 256)")
    ap.add_argument("--layers", action="store_true", help="at the first differing position, find the layer")
    ap.add_argument("--repack", choices=("on", "off"), default="on",
                    help="the program's `repack` setting (default on, as its default): on repacks the "
                         "Q4_0/Q4_1/Q4_K product weights into 8-row groups, as llama.cpp's AVX2 CPU "
                         "backend repacks Q4_0 and Q4_K")
    args = ap.parse_args()
    if not args.model.is_file():
        ap.error(f"{args.model}: no such file")
    try:
        ids = [int(t) for t in args.ids.split(",")] if args.ids else []
    except ValueError:
        ap.error("--ids: comma-separated integers")
    from tests.test_app_gguf_model import C
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        theirs = llama(args.llama_python, args.model, args.ctx, args.text or "", ids, -1, tmp)
        ids = [int(t) for t in theirs["ids"]]
        if len(ids) > args.ctx:
            ap.error(f"{len(ids)} tokens do not fit --ctx {args.ctx}")
        am = ours(args.model, args.ctx, args.repack == "on")
        first = None
        for pos, tok in enumerate(ids):
            a, b = am.logits(tok, pos), theirs["logits"][pos]
            same = a.tobytes() == b.tobytes()
            print(json.dumps({"pos": pos, "token": tok, "identical": same,
                              "max_abs_diff": float(np.abs(a - b).max()),
                              "argmax_ours": int(a.argmax()), "argmax_llamacpp": int(b.argmax())}))
            if not same and first is None:
                first = pos
        if first is None:
            print(f"all {len(ids)} positions identical")
            return 0
        print(f"first differing position: {first}")
        if not args.layers:
            return 0
        lay = llama(args.llama_python, args.model, args.ctx, "", ids[:first + 1], first, tmp)
        n_layers = am.u32("MODEL_N_LAYERS")
        from peasm.runners.kernels import Kernels, open_machine
        k = Kernels(open_machine("native"), "avx2")
        import gguf
        norm = next(t for t in gguf.GGUFReader(args.model).tensors if t.name == "output_norm.weight")
        w = np.asarray(norm.data, np.float32).reshape(-1)
        eps = struct.unpack("<f", am.mc.read(am.m + C["MODEL_RMS_EPS"], 4))[0]
        for layer in range(n_layers):
            key = f"l_out-{layer}"
            if key not in lay.files:
                continue
            fresh = ours(args.model, args.ctx, args.repack == "on")
            for pos in range(first):
                fresh.logits(ids[pos], pos)
            fresh.mc.write(fresh.m + C["MODEL_N_LAYERS"], struct.pack("<I", layer + 1))
            fresh.logits(ids[first], first)
            sx = struct.unpack("<Q", fresh.mc.read(fresh.m + C["MODEL_S_X"], 8))[0]
            x = np.frombuffer(fresh.mc.read(sx, 4 * w.size), np.float32)   # after the final norm
            want = k.rmsnorm(lay[key], w, eps)
            if x.tobytes() != want.tobytes():
                print(f"first differing layer at position {first}: {layer} "
                      f"(max abs diff after the final norm {float(np.abs(x - want).max()):.3g})")
                return 0
        print(f"every layer's output identical at position {first}: the classifier differs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
