#!/usr/bin/env python3
"""Benchmark: the chat program against llama.cpp on the same GGUF, prompt and thread counts.

    .venv/bin/python scripts/bench_llamacpp.py [--llama-python PY] [--models smollm2,tinyllama-Q4_0]
                                               [--threads 1,2] [--prompt 64] [--tokens 128]
                                               [--repeat 2] [--workdir DIR] [--efi BOOTX64.EFI]

llama.cpp is not a dependency of this project: it is reached through the `llama_cpp` module
of llama-cpp-python (which compiles llama.cpp from source when pip installs it: about 40
minutes on two busy cores), installed in a separate virtualenv so the project's own stays as
the README makes it:

    python3 -m venv /tmp/lcpp && /tmp/lcpp/bin/pip install llama-cpp-python
    .venv/bin/python scripts/bench_llamacpp.py --llama-python /tmp/lcpp/bin/python

For each model (the names and files of scripts/bench_app.py: the real SmolLM2 Q4_1, and
TinyLlama-shaped random GGUFs in any ggml type, with the llama SPM vocabulary so llama.cpp
loads them) and each thread count, in one run and alternating (ours, llama.cpp, ours,
llama.cpp, ... --repeat times; the fastest of each is kept, as on a shared host the slow runs
are the disturbed ones):

- ours: BOOTX64.EFI in the native hosted runner, exactly as bench_app.py runs it (BOS and
  N-1 words "the" as a raw prompt, greedy, max_tokens), its own [stats] line;
- llama.cpp: the same token ids (BOS + the vocabulary's tokens for the same words, as
  llama.cpp tokenizes them), one llama_decode of the whole prompt (n_batch = n_ubatch = 512)
  timed, then --tokens greedy steps (argmax of the last logits, one llama_decode each) timed
  together; n_threads = n_threads_batch = the count; n_ctx 1024; f16 KV cache (its default,
  and ours for GGUF); flash attention on (llama.cpp's own default on a CPU, "auto"; the
  llama_cpp module's default is off, a slower path with other arithmetic). The Python around each llama_decode (llama-cpp-python's eval, the
  argmax over the logits) is inside the times, as our runner's work is inside ours.
  The prompt token counts may differ by one (each engine counts what it fed).

One line per model, thread count and engine, and a ratio line:

    model=smollm2 threads=1 engine=ours decode_tok_s=.. prefill_tok_s=.. prompt_tokens=..
    model=smollm2 threads=1 engine=llama.cpp decode_tok_s=.. prefill_tok_s=.. prompt_tokens=..
    model=smollm2 threads=1 decode_ours_over_llamacpp=.. prefill_ours_over_llamacpp=..
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# Run under the llama-cpp-python interpreter: time one model, print one JSON line.
LLAMA_RUNNER = r"""
import json, sys, time
import numpy as np
import llama_cpp
path, threads, prompt, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads,
                      n_threads_batch=threads, flash_attn=True, verbose=False)
nv = llm.n_vocab()
ids = [llm.token_bos()]
if prompt > 1:
    ids += llm.tokenize(b" ".join([b"the"] * (prompt - 1)), add_bos=False, special=False)
def last_logits():   # the last row's logits (llama-cpp-python keeps none itself without logits_all)
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(nv,))
llm.reset()
llm.eval(ids[:1])                    # warm the weights into memory and the threads up
llm.reset()
t0 = time.perf_counter()
llm.eval(ids)
t1 = time.perf_counter()
gen = 0
for _ in range(tokens):
    tok = int(np.argmax(last_logits()))
    if tok == llm.token_eos():
        break
    llm.eval([tok])
    gen += 1
t2 = time.perf_counter()
print(json.dumps({"prompt": len(ids), "prefill": len(ids) / (t1 - t0),
                  "decode": gen / (t2 - t1) if gen else 0.0, "gen": gen}))
"""


def run_llamacpp(py: Path, model: Path, threads: int, prompt: int, tokens: int) -> dict:
    proc = subprocess.run([str(py), "-c", LLAMA_RUNNER, str(model), str(threads), str(prompt), str(tokens)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench_llamacpp: llama.cpp run failed on {model.name}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-python", type=Path, default=Path(sys.executable),
                    help="a Python that can `import llama_cpp` (default: this one)")
    ap.add_argument("--models", default="smollm2,tinyllama-Q4_0",
                    help="comma-separated: smollm2, tinyllama-TYPE (GGUF models only)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--prompt", type=int, default=64, help="prompt tokens (BOS and words)")
    ap.add_argument("--tokens", type=int, default=128, help="greedy tokens after the prompt")
    ap.add_argument("--repeat", type=int, default=2, help="runs per engine; the fastest is kept")
    ap.add_argument("--workdir", type=Path, default=None, help="where the models go (kept, reused)")
    ap.add_argument("--efi", type=Path, default=None, help="BOOTX64.EFI to run (default: link the chat now)")
    args = ap.parse_args()
    try:
        thread_counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        ap.error(f"--threads: comma-separated whole numbers, not {args.threads!r}")
    if not thread_counts or thread_counts[0] < 1:
        ap.error("--threads: counts of at least 1")
    if args.prompt < 2 or args.tokens < 1:
        ap.error("--prompt: at least 2 tokens; --tokens: at least 1")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m != "smollm2" and not m.startswith("tinyllama-"):
            ap.error(f"--models: {m!r} is not a GGUF model of bench_app (smollm2, tinyllama-TYPE)")
    probe = subprocess.run([str(args.llama_python), "-c", "import llama_cpp"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"bench_llamacpp: {args.llama_python} cannot import llama_cpp; install llama-cpp-python "
              f"in a virtualenv and pass its python with --llama-python (see --help)", file=sys.stderr)
        return 1

    import bench_app
    from peasm.runners import native
    ok, why = native.supported()
    if not ok:
        print(f"bench_llamacpp: the native runner cannot run here: {why}", file=sys.stderr)
        return 1
    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench-lcpp-") if args.workdir is None else None
    work = Path(tmp_ctx.name) if tmp_ctx else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.efi is None:
            from peasm.linker import link, load_manifest
            from peasm.pe import build_pe
            from peasm.programs import manifest_path
            m = load_manifest(manifest_path("chat"))
            efi = work / "BOOTX64.EFI"
            efi.write_bytes(build_pe(link(m.sources, m.entry, include_dirs=m.include_dirs)))
        else:
            efi = args.efi
        for name in models:
            vol, cfg = bench_app.prepare_gguf_volume(work, name, args.tokens, args.prompt)
            for t in thread_counts:
                ours, theirs = [], []
                for _ in range(max(1, args.repeat)):
                    ours.append(bench_app.run_once(efi, vol, cfg, t))
                    theirs.append(run_llamacpp(args.llama_python, vol / "model.gguf", t, args.prompt, args.tokens))
                o = {"decode": max(r["decode"] for r in ours), "prefill": max(r["prefill"] for r in ours),
                     "prompt": ours[0]["prompt"]}
                l = {"decode": max(r["decode"] for r in theirs), "prefill": max(r["prefill"] for r in theirs),
                     "prompt": theirs[0]["prompt"]}
                for engine, r in (("ours", o), ("llama.cpp", l)):
                    print(f"model={name} threads={t} engine={engine} decode_tok_s={r['decode']:.2f} "
                          f"prefill_tok_s={r['prefill']:.2f} prompt_tokens={r['prompt']}", flush=True)
                def ratio(key: str) -> str:
                    return f"{o[key] / l[key]:.2f}" if l[key] else "n/a"
                print(f"model={name} threads={t} decode_ours_over_llamacpp={ratio('decode')} "
                      f"prefill_ours_over_llamacpp={ratio('prefill')}", flush=True)
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
