#!/usr/bin/env python3
"""Record llama.cpp's greedy tokens for a GGUF model: a golden file for the tests.

    .venv/bin/python scripts/record_llamacpp_greedy.py MODEL.gguf --llama-python PY
        --ids 1,300,400 [--steps 64] [-o tests/golden/NAME.llamacpp.json]

llama.cpp runs through llama-cpp-python in its own virtualenv (PY, as
scripts/compare_llamacpp.py explains): its default model parameters (so its CPU backend
repacks the weights it repacks on this host), one thread, flash attention on, its f16 KV
cache, n_ctx 256, the prompt ids fed one token per decode, then --steps greedy steps (the
argmax of the logits, each token fed back; an end-of-sequence token ends it). The JSON
holds the prompt ids, the greedy ids, the SHA-256 of every decode's logits (the vocabulary's
f32, little-endian: one per fed token, prompt then greedy) and how they were made (tests
compare the program's tokens, and its logits' bits through the digests, with them:
tests/test_app_llamacpp_kquant.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNNER = r"""
import hashlib, json, sys
import numpy as np
import llama_cpp as L
path, steps, ids = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3].split(",")]
L.llama_backend_init()
model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
vocab = L.llama_model_get_vocab(model)
cp = L.llama_context_default_params()
cp.n_ctx = 256; cp.n_batch = 1; cp.n_ubatch = 1; cp.n_threads = 1; cp.n_threads_batch = 1
cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
lctx = L.llama_init_from_model(model, cp)
nv = L.llama_vocab_n_tokens(vocab)
sha = []
def step(tok):
    arr = (L.llama_token * 1)(tok)
    assert L.llama_decode(lctx, L.llama_batch_get_one(arr, 1)) == 0
    logits = np.ctypeslib.as_array(L.llama_get_logits(lctx), shape=(nv,)).copy()
    sha.append(hashlib.sha256(logits.astype("<f4").tobytes()).hexdigest())
    return logits
for t in ids:
    logits = step(t)
out = []
for _ in range(steps):
    t = int(np.argmax(logits))
    out.append(t)
    if t == L.llama_vocab_eos(vocab):
        break
    logits = step(t)
print(json.dumps({"greedy_ids": out, "logits_sha256": sha}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--llama-python", required=True, help="a python with llama_cpp (llama-cpp-python)")
    ap.add_argument("--ids", required=True, help="the prompt's token ids, comma-separated")
    ap.add_argument("--steps", type=int, default=64, help="greedy steps (default 64)")
    ap.add_argument("-o", "--out", type=Path, help="write the JSON here (default: stdout)")
    args = ap.parse_args()
    if not args.model.is_file():
        ap.error(f"{args.model}: no such file")
    try:
        ids = [int(t) for t in args.ids.split(",")]
    except ValueError:
        ap.error("--ids: comma-separated integers")
    r = subprocess.run([args.llama_python, "-c", RUNNER, str(args.model), str(args.steps),
                        ",".join(map(str, ids))], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"record_llamacpp_greedy: llama.cpp failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}")
    version = subprocess.run([args.llama_python, "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    rec = {
        "recorded_with": (f"llama-cpp-python {version} (llama.cpp 0c1e570 as it vendors it, a GGML_NATIVE build "
                          f"on an AVX2/FMA/F16C x86-64 host): {args.model.name}, its default model params "
                          "(its CPU backend repacks Q4_0 and Q4_K product weights here), one thread, flash "
                          "attention on, f16 KV cache, n_ctx 256, n_batch 1; the prompt ids fed one token per "
                          f"llama_decode, then {args.steps} greedy steps (argmax, each token fed back)"),
        "how": f"scripts/record_llamacpp_greedy.py {args.model.name} --llama-python PY --ids {args.ids} "
               f"--steps {args.steps}",
        "model": args.model.name,
        "prompt_ids": ids,
        **json.loads(r.stdout),
    }
    text = json.dumps(rec, indent=1) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
