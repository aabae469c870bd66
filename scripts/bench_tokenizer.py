"""Benchmark (not a test): encoding a 4 KB prompt natively with each GGUF vocabulary.

    .venv/bin/python scripts/bench_tokenizer.py [--repeat 20] [--models DIR]

For each vocabulary: the asm encoder (vocab_encode, the host CPU) on a 4096-byte prompt of
mixed prose, code, digits, whitespace and several scripts, best of --repeat runs, in ms;
the `tokenizers` package (Rust, one thread) on the same text for BPE vocabularies as a
ratio; and the time vocab_build takes. Absolute times on shared machines are noise:
compare the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VOCABS = [
    ("gpt-2", "vocab/ggml-vocab-gpt-2.gguf"),
    ("llama-bpe", "vocab/ggml-vocab-llama-bpe.gguf"),
    ("qwen2", "vocab/ggml-vocab-qwen2.gguf"),
    ("starcoder", "vocab/ggml-vocab-starcoder.gguf"),
    ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("llama-spm", "ggml-vocab-llama-spm.gguf"),
    ("phi-3", "vocab/ggml-vocab-phi-3.gguf"),
]


def prompt() -> bytes:
    from tests.vocab_support import CORPUS
    text = "\n".join(CORPUS * 4).encode()
    while len(text) < 4096:
        text += text
    text = text[:4096]
    return text.decode("utf-8", "ignore").encode()      # whole characters only


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--models", default=os.environ.get("LLM_UEFI_MODELS", str(REPO.parent / "shared" / "models")))
    args = ap.parse_args()
    from tests.vocab_support import AsmVocab, NativeMachine, oracle, oracle_encode, read_meta
    text = prompt()
    print(f"prompt: {len(text)} bytes, best of {args.repeat}")
    for name, rel in VOCABS:
        path = Path(args.models) / rel
        if not path.is_file():
            print(f"vocab={name} missing {path}")
            continue
        meta = read_meta(str(path))
        v = AsmVocab(NativeMachine(), meta)
        build_ms = v.build_s * 1e3
        if v.status != 0:
            print(f"vocab={name} refused: {v.error_text()}")
            continue
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ids = v.encode(text)
            best = min(best, time.perf_counter() - t0)
        line = (f"vocab={name} tokens={len(ids)} encode_ms={best * 1e3:.3f} "
                f"build_ms={build_ms:.1f}")
        if meta.merges is not None:
            tk = oracle(meta)
            ref = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                oracle_encode(tk, text)
                ref = min(ref, time.perf_counter() - t0)
            line += f" tokenizers_ms={ref * 1e3:.3f} ratio={best / ref:.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
