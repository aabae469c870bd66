#!/usr/bin/env python3
"""Benchmark: the chat program's decode speed against the weight-bandwidth limit, natively.

    .venv/bin/python scripts/bench_app.py [--workdir DIR] [--efi BOOTX64.EFI] [--models stories15M,stories110M,...]
                                          [--tokens 128] [--repeat 1] [--threads 1,2] [--prompt 64]

Models: llama2.c shapes (stories15M, stories110M: random f32 .bin), the real SmolLM2 GGUF
(`smollm2`: ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf), and TinyLlama-1.1B-shaped
GGUFs written here with gguf-py in any ggml type (`tinyllama-Q8_0`, `tinyllama-Q4_0`,
`tinyllama-Q4_K`, ...: random blocks with finite scales, tests/reference/gguf_random.py).

For each model shape (random weights from tests/reference, the real 32000-piece
tokenizer.bin from ../shared/models or $LLM_UEFI_MODELS), runs BOOTX64.EFI in the native
hosted runner (peasm.runners.hosted.run, cpu="native": the host CPU, AVX2 paths when it has
them) with repl.cfg `temperature = 0`, `max_tokens = N` and an autorun of one empty line (a
generation from BOS) and /shutdown, and reads the program's own `[stats]` line. In the same
run it measures single-core read bandwidth with peasm.bench's stream_read measurement (the
one `peasm bench kernels` uses), before the models and again after them; the larger is used.

One line per model and thread count (--threads: the processors the hosted firmware's MP
services report, APs being host threads; the program's default threads=0 uses them all):

    model=stories15M threads=1 decode_tok_s=.. limit_tok_s=.. ratio=.. weights_mb=.. bandwidth_gbs=.. gen_tokens=.. wall_tok_s=.. p50_tok_s=..
    model=stories15M threads=2 decode_tok_s=.. ... ratio_2core=.. speedup=.. speedup_p50=..

speedup = decode_tok_s / decode_tok_s with one thread, in the same run (the ratio to the
single-core limit can pass 1 with several cores: each core has its own path to memory).
For each thread count T above 1 the run also measures stream_read on T threads at once
(peasm.bench's bandwidth_cores: the pool cut in T parts, read together; before the models and
after them, the larger used) and prints it as a multiple of one core's: the largest speedup
a decode bound by memory can reach with T threads on this host. ratio_Tcore = decode_tok_s / (that T-core bandwidth / weights bytes).
p50_tok_s = 1 / the median time between two generated pieces as they reached the runner's
output (one write each), and speedup_p50 its ratio to one thread's: on a shared host a
worker thread descheduled while it holds a chunk stalls that step for a time slice (ms),
which moves the mean (decode_tok_s) a lot and the median little.

--board TRIALS: instead of the program, the job board alone (see board_bench): one decode
layer's matvecs of SmolLM2 (Q4_1) and TinyLlama (Q4_0) shapes, fastest of TRIALS runs of
each job, one core against --threads' largest count, as separate jobs and as the queued jobs
forward.s posts:

    board=smollm2 type=Q4_1 cores=2 layer_us_1core=.. layer_us_separate=.. speedup_separate=.. layer_us_queued=.. speedup_queued=..

The prefill: with --prompt N (default 64; 0: generate from BOS alone) the autorun line is a
prompt of about N tokens (BOS and N-1 words "the", chat_format = raw, so no template adds
any), which the program runs through model_forward_batch (each weight read once per batch
of MODEL_BATCH tokens) before it decodes. Each line then ends with prompt_tokens=P (what the
program counted), prefill_tok_s (from the same [stats] line: P over the prefill's time) and
prefill_ratio = prefill_tok_s / decode_tok_s of the same run (issue 14 asks >= 5).

weights_mb is what one decode step must read of the weights: every matrix once, in its file
form (GGUF: the quantized bytes) -- per layer
wq, wk, wv, wo, w1, w2, w3, plus the classifier (V x D; with a shared classifier that is the
embedding table, counted once; the one embedding row a step looks up is not counted) -- as
float32. The RMS-norm vectors (a few KB) and the KV cache (which attention reads and which
grows with the position: ~1.8 MB at position 128 for stories15M, ~19 MB for stories110M) are
not counted. limit_tok_s = bandwidth / weights bytes: the decode rate if each step read its
weights at the measured single-core bandwidth and did nothing else; ratio = decode_tok_s /
limit_tok_s. wall_tok_s is a cross-check of the program's clock (the TSC calibrated against
the hosted firmware's Stall): decode steps over the host's wall-clock time between the first
generated piece and the [stats] line, as they arrived through the runner's output pipe.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS_DIR = Path(os.environ.get("LLM_UEFI_MODELS",
                                 Path(os.environ.get("LLM_UEFI_SHARED", REPO.parent / "shared")) / "models"))
STATS = re.compile(r"\[stats\] prompt_tokens=(\d+) gen_tokens=(\d+) prefill_tok_s=([\d.]+) decode_tok_s=([\d.]+)")
SEED = 1


def weight_bytes_per_token(cfg) -> int:
    """float32 bytes of every matrix one decode step reads (the classifier once)."""
    d, h, k = cfg.dim, cfg.hidden_dim, cfg.kv_dim
    per_layer = d * d + 2 * k * d + d * d + 3 * h * d      # wq, wk + wv, wo, w1 + w2 + w3
    return 4 * (cfg.n_layers * per_layer + cfg.vocab_size * d)


@dataclass
class GgufBench:
    """A GGUF model for the bench: its file, what one step reads, its size."""
    path: Path
    step_bytes: int

    def file_size(self) -> int:
        return self.path.stat().st_size


def gguf_step_bytes(path: Path) -> int:
    """Bytes of every matrix one decode step reads: all 2-D tensors but token_embd, plus the
    classifier (token_embd again when output.weight is absent: tied)."""
    from gguf import GGUFReader
    r = GGUFReader(str(path))
    sizes = {t.name: int(t.n_bytes) for t in r.tensors if len(t.shape) > 1 and t.shape[1] > 1}
    total = sum(n for name, n in sizes.items() if name != "token_embd.weight")
    if "output.weight" not in sizes:
        total += sizes["token_embd.weight"]
    return total


def autorun_lines(prompt: int) -> str:
    """The autorun: a prompt of `prompt` tokens (BOS + words; none: an empty line), /shutdown."""
    return (" ".join(["the"] * (prompt - 1)) if prompt > 1 else "") + "\n/shutdown\n"


def prepare_gguf_volume(work: Path, name: str, tokens: int, prompt: int = 0) -> tuple[Path, GgufBench]:
    """work/NAME/: model.gguf (the real SmolLM2, or a random TinyLlama-shaped file in the
    named type, reused when already there), repl.cfg, autorun.txt."""
    vol = work / name
    vol.mkdir(parents=True, exist_ok=True)
    model = vol / "model.gguf"
    if name == "smollm2":
        src = MODELS_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not src.is_file():
            raise SystemExit(f"bench_app: {src} not found (set LLM_UEFI_MODELS)")
        if not model.is_file() or model.stat().st_size != src.stat().st_size:
            model.write_bytes(src.read_bytes())
    else:
        from tests.reference.gguf_random import SHAPES, write_llama_gguf
        shape, _, type_name = name.partition("-")
        stamp = vol / "seed"
        if not (model.is_file() and stamp.is_file() and stamp.read_text() == f"{SEED} {type_name}"):
            print(f"# writing a random {shape}-shaped {type_name} GGUF to {model} ...", flush=True)
            write_llama_gguf(model, SHAPES[shape], type_name, seed=SEED,
                             vocab_from=MODELS_DIR / "ggml-vocab-llama-spm.gguf",
                             output_type="Q6_K" if type_name.endswith("_K") else None)
            stamp.write_text(f"{SEED} {type_name}")
    (vol / "repl.cfg").write_text(f"model = model.gguf\ntemperature = 0\nmax_tokens = {tokens}\n"
                                  f"stats = on\nchat_format = raw\n", encoding="utf-8")
    (vol / "autorun.txt").write_text(autorun_lines(prompt), encoding="utf-8")
    return vol, GgufBench(model, gguf_step_bytes(model))


def prepare_volume(work: Path, shape: str, tokens: int, prompt: int = 0) -> tuple[Path, object]:
    """work/SHAPE/: model.bin (random, seed 1; reused when already there at the right size),
    tokenizer.bin, repl.cfg, autorun.txt."""
    from tests.reference import llama2 as ref
    if shape == "smollm2" or shape.startswith("tinyllama-"):
        return prepare_gguf_volume(work, shape, tokens, prompt)

    cfg = ref.SHAPES[shape]
    vol = work / shape
    vol.mkdir(parents=True, exist_ok=True)
    model = vol / "model.bin"
    tok_src = MODELS_DIR / "tokenizer.bin"
    if not tok_src.is_file():
        raise SystemExit(f"bench_app: {tok_src} not found (the real 32000-piece tokenizer; "
                         f"set LLM_UEFI_MODELS)")
    if not (model.is_file() and model.stat().st_size == cfg.file_size()
            and (vol / "seed").is_file() and (vol / "seed").read_text() == str(SEED)):
        print(f"# writing a random {shape} model to {model} ...", flush=True)
        ref.write_test_pair(vol, shape, seed=SEED, tokenizer_src=tok_src, names=("model.bin", "tokenizer.bin"))
        (vol / "seed").write_text(str(SEED))
    else:
        (vol / "tokenizer.bin").write_bytes(tok_src.read_bytes())
    (vol / "repl.cfg").write_text(f"model = model.bin\ntokenizer = tokenizer.bin\ntemperature = 0\n"
                                  f"max_tokens = {tokens}\nstats = on\nchat_format = raw\n", encoding="utf-8")
    (vol / "autorun.txt").write_text(autorun_lines(prompt), encoding="utf-8")
    return vol, cfg


class Clock:
    """The runner's output stream: keeps (wall time, bytes so far) of every chunk."""

    def __init__(self):
        self.data = bytearray()
        self.marks: list[tuple[float, int]] = []

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        self.marks.append((time.perf_counter(), len(self.data)))
        return len(chunk)

    def flush(self) -> None:
        pass

    def time_at(self, offset: int) -> float:
        """When the byte at `offset` arrived."""
        return next(t for t, end in self.marks if end > offset)


def run_once(efi, vol: Path, cfg, cpus: int = 1) -> dict:
    from peasm.runners.hosted import run

    need_mib = (cfg.file_size() >> 20) + 256                  # weights + KV cache + reserve, roomy
    clock = Clock()
    r = run(efi, vol, cpu="native", out=clock, mem_mib=max(1024, need_mib), timeout_s=1800, cpus=cpus)
    text = r.text
    m = STATS.search(text)
    if r.status != 0 or r.reason != "powered off" or not m:
        raise SystemExit(f"bench_app: the run on {vol.name} did not end as expected ({r.reason}):\n{text[-1500:]}")
    prompt, gen, prefill, decode = int(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))
    # wall-clock cross-check: first generated piece (after the echoed empty prompt line) .. [stats]
    raw = bytes(clock.data)
    echo = raw.find(b"> ")
    echo = raw.find(b"\n", echo) + 1 if echo >= 0 else -1        # the end of the echoed prompt line
    stats_at = raw.find(b"[stats]")
    wall = p50 = None
    if echo > 0 and stats_at > echo and gen > 1:
        span = clock.time_at(stats_at) - clock.time_at(echo)
        wall = (gen - 1) / span if span > 0 else None
        # each generated piece reaches the runner as one write: the median gap between them is
        # a step's time that a few steps stalled by other processes on the host do not move
        times = [t for t, end in clock.marks if echo < end <= stats_at]
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        if gaps and gaps[len(gaps) // 2] > 0:
            p50 = 1.0 / gaps[len(gaps) // 2]
    return {"prompt": prompt, "gen": gen, "prefill": prefill, "decode": decode, "wall": wall, "p50": p50}


# --board: one decode layer's products (rows, n) per job as forward.s posts them: q,k,v of one
# input; wo; gate,up of one input; down
BOARD_LAYERS = {
    "smollm2": ("Q4_1", [([576, 192, 192], 576), ([576], 576), ([1536, 1536], 576), ([576], 1536)]),
    "tinyllama": ("Q4_0", [([2048, 256, 256], 2048), ([2048], 2048), ([5632, 5632], 2048), ([2048], 5632)]),
}


def board_bench(trials: int, workers: int) -> int:
    """The job board alone (kernels_asm/parallel.s), natively with host threads: one decode
    layer's matvecs (random blocks) as one core runs them, as separate k_par_rows jobs and as
    the queued jobs forward.s posts (k_par_rows_queue .. k_par_rows_flush), each job timed
    alone `trials` times and the fastest kept: a shared host's time slicing moves the mean of
    such ~10-1000 us jobs a lot and the minimum little, so this shows what the board costs
    when the cores are there (as they are on a real machine)."""
    import numpy as np

    from peasm import ggml
    from peasm.runners import native
    from peasm.runners.kernels import Kernels, open_machine

    m = open_machine("native", guard=False)
    m.start_workers(workers)
    k = Kernels(m, "avx2" if native.host_has_avx2_fma() else "sse2")
    rng = np.random.default_rng(SEED)
    keep = []

    def fastest(run) -> float:
        best = float("inf")
        for _ in range(trials):
            t0 = time.perf_counter_ns()
            run()
            best = min(best, time.perf_counter_ns() - t0)
        return best / 1e3

    try:
        for name, (tname, jobs) in BOARD_LAYERS.items():
            t = ggml.BY_NAME[tname]
            body = k.ggml_body(tname, "matvec")
            rows_q = m.address("k_par_rows")
            queue, flush = m.address("k_par_rows_queue"), m.address("k_par_rows_flush")
            one = sep = fused = 0.0
            for rows, n in jobs:
                xq = np.frombuffer(k.quantize(t.vec_dot_type,
                                 rng.standard_normal(n).astype(np.float32)), np.uint8).copy()
                keep.append(xq)
                parts = []
                for d in rows:
                    blocks = rng.integers(0, 256, size=(d, n // t.block_size, t.block_bytes), dtype=np.uint8)
                    blocks[..., 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)   # finite scales
                    if tname == "Q4_1":
                        blocks[..., 2:4] = np.frombuffer(np.float16(-0.1).tobytes(), np.uint8)
                    out = np.zeros(d, np.float32)
                    keep += [blocks, out]
                    parts.append((body, out.ctypes.data, blocks.ctypes.data, xq.ctypes.data, n, d,
                                  blocks.shape[1] * blocks.shape[2], t.group_rows))
                alone = [native.Batch(rows_q, [p]) for p in parts]
                m.call("k_par_set_workers", 0)
                one += sum(fastest(b.run) for b in alone)
                m.call("k_par_set_workers", workers)
                sep += sum(fastest(b.run) for b in alone)
                post, best = native.Batch(flush, [()]), float("inf")
                for _ in range(trials):
                    for p in parts:
                        native.call_many(queue, [p])
                    t0 = time.perf_counter_ns()
                    post.run()
                    best = min(best, time.perf_counter_ns() - t0)
                fused += best / 1e3
                m.call("k_par_set_workers", 0)
            print(f"board={name} type={tname} cores={workers + 1} layer_us_1core={one:.1f} "
                  f"layer_us_separate={sep:.1f} speedup_separate={one / sep:.2f} "
                  f"layer_us_queued={fused:.1f} speedup_queued={one / fused:.2f}")
    finally:
        m.stop_workers()
    print(f"# fastest of {trials} runs of each job; load average {os.getloadavg()[0]:.2f}")
    return 0


def prefill_fields(r: dict) -> str:
    """ prompt_tokens=.. prefill_tok_s=.. prefill_ratio=.. for a run with a prompt."""
    if r["prompt"] < 2:
        return ""
    ratio = f"{r['prefill'] / r['decode']:.2f}" if r["decode"] else "n/a"
    return f" prompt_tokens={r['prompt']} prefill_tok_s={r['prefill']:.2f} prefill_ratio={ratio}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the random models go; kept and reused (default: a temporary directory)")
    ap.add_argument("--efi", type=Path, default=None, help="BOOTX64.EFI to run (default: link the chat now)")
    ap.add_argument("--models", default="stories15M,stories110M,smollm2,tinyllama-Q8_0,tinyllama-Q4_0",
                    help="comma-separated: stories15M, stories110M, smollm2, tinyllama-TYPE (a ggml type)")
    ap.add_argument("--tokens", type=int, default=128, help="greedy tokens per run (max_tokens)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per model; the fastest decode is reported")
    ap.add_argument("--prompt", type=int, default=64,
                    help="prompt tokens before the generation (the prefill; 0: from BOS alone)")
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated processor counts to run each model with (1 first: the base of speedup)")
    ap.add_argument("--board", type=int, default=0, metavar="TRIALS",
                    help="instead: time one decode layer's jobs on the job board alone, 1 core vs "
                         "--threads' largest count, fastest of TRIALS runs each")
    args = ap.parse_args()
    try:
        thread_counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        ap.error(f"--threads: comma-separated whole numbers, not {args.threads!r}")
    if not thread_counts or thread_counts[0] < 1:
        ap.error("--threads: counts of at least 1")

    if args.board:
        ok, why = __import__("peasm.runners.native", fromlist=["supported"]).supported()
        if not ok:
            print(f"bench_app: the native runner cannot run here: {why}", file=sys.stderr)
            return 1
        if thread_counts[-1] < 2:
            ap.error("--board: --threads must include a count of 2 or more")
        return board_bench(args.board, thread_counts[-1] - 1)

    from peasm.bench import KernelBench, llc_bytes
    from peasm.runners import native

    ok, why = native.supported()
    if not ok:
        print(f"bench_app: the native runner cannot run here: {why}", file=sys.stderr)
        return 1
    shapes = [s.strip() for s in args.models.split(",") if s.strip()]
    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench-app-") if args.workdir is None else None
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
        if args.prompt < 0:
            ap.error("--prompt: 0 or more tokens")
        volumes = [prepare_volume(work, shape, args.tokens, args.prompt) for shape in shapes]

        path = "avx2" if native.host_has_avx2_fma() else "sse2"    # the bodies the program uses here
        bw_lines: list[str] = []
        bench = KernelBench(out=bw_lines.append)
        bw_start = bench.bandwidth([path], "start")
        bw_cores = {t: bench.bandwidth_cores(path, t) for t in thread_counts if t > 1}
        results = []
        for vol, cfg in volumes:
            for t in thread_counts:
                runs = [run_once(efi, vol, cfg, t) for _ in range(max(1, args.repeat))]
                results.append((vol.name, cfg, t, max(runs, key=lambda r: r["decode"])))
        bench.bw = bw_start
        bw_end = bench.bandwidth([path], "end")
        bw = max(bw_start, bw_end)
        bw_cores = {t: max(b, bench.bandwidth_cores(path, t)) for t, b in bw_cores.items()}

        print(f"# host: cpus={os.cpu_count()} llc={llc_bytes() >> 20} MiB; kernels path {path}; "
              f"stream_read over {bench.pool_bytes >> 20} MiB, one core: {bw_start / 1e9:.2f} GB/s before the runs, "
              f"{bw_end / 1e9:.2f} GB/s after (the larger is used); load average {os.getloadavg()[0]:.2f}")
        for t, b in bw_cores.items():
            print(f"# stream_read on {t} threads at once (each its own part of the pool): {b / 1e9:.2f} GB/s, "
                  f"{b / bw:.2f}x one core (the larger of before and after the runs): the most a memory-bound decode "
                  f"can gain from {t} threads")
        base = {}
        for vol_name, cfg, t, r in results:
            wbytes = cfg.step_bytes if isinstance(cfg, GgufBench) else weight_bytes_per_token(cfg)
            limit = bw / wbytes
            wall = f"{r['wall']:.2f}" if r["wall"] else "n/a"
            base.setdefault(vol_name, (r["decode"], r["p50"]) if t == 1 else None)
            speedup = ""
            if t > 1:
                speedup = f" ratio_{t}core={r['decode'] / (bw_cores[t] / wbytes):.3f}"
            if t > 1 and base[vol_name]:
                speedup += f" speedup={r['decode'] / base[vol_name][0]:.2f}"
                if r["p50"] and base[vol_name][1]:
                    speedup += f" speedup_p50={r['p50'] / base[vol_name][1]:.2f}"
            p50 = f"{r['p50']:.2f}" if r["p50"] else "n/a"
            print(f"model={vol_name} threads={t} decode_tok_s={r['decode']:.2f} limit_tok_s={limit:.2f} "
                  f"ratio={r['decode'] / limit:.3f} weights_mb={wbytes / 1e6:.1f} bandwidth_gbs={bw / 1e9:.2f} "
                  f"gen_tokens={r['gen']} wall_tok_s={wall} p50_tok_s={p50}{speedup}{prefill_fields(r)}")
            if r["gen"] < args.tokens:
                print(f"# {vol_name}: generation stopped after {r['gen']} of {args.tokens} tokens (BOS/EOS)")
        print(f"# weights_mb: every matrix one decode step reads, classifier once, float32 (KV cache not "
              f"counted); limit_tok_s = bandwidth / weights; ratio = decode_tok_s / limit_tok_s; "
              f"best of {max(1, args.repeat)} run(s) per model")
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
