#!/usr/bin/env python3
"""Where a decode step's time goes, part by part, on one core and on several, natively.

    .venv/bin/python scripts/bench_decode.py [MODEL.gguf] [--cores 2] [--trials 30]
                                             [--pos 64] [--tokens 32]

MODEL (default: ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf, or any llama/qwen2 GGUF)
is loaded through the program's own loader into one Model struct (the model and forward
files plus the kernels, linked here; workers are host threads at the job board, as the
hosted runner's APs), its weights repacked as the program repacks them at load
(model_repack: SmolLM2's Q4_1 as Q4_1_R8) and the file and run state in 2 MiB pages, as
the hosted firmware's AllocatePages gives them (without either, the steps timed here
were not the program's: the file layout's Q4_1 body, TLB misses every 4 KiB). After a prompt of --pos tokens, each position pos .. pos+tokens-1 is
decoded by model_forward on one core and on --cores cores, alternately, --trials times (a
position run again writes the same cache row: every trial computes the same step); the
fastest of each position's trials is kept, so a shared host's time slicing mostly drops
out (what a machine with the cores to itself would see). Then each part of the step is
timed the same way (fastest of --trials runs of a batch of calls, at the last position; a
job's k_par_rows_queue calls are made from Python before its timed flush; a job run again
finds its weights in cache, so the jobs' times are the cores' compute, not the memory
stream a step sees):

    part                   calls/token  us/call(1)  us/token(1)  us/token(N)  speedup
    step (model_forward)   ...
    jobs: q,k,v | wo | gate,up | down | classifier | attention (heads)
    serial: rmsnorm, activation conversions (per type), RoPE, KV store, residual adds
            (SwiGLU: inside the gate/up job, k_par_rows_flush_glu; its time alone shown)
    empty job              the job board's own cost (post, wake, claim, done) of a 2-chunk job
                           whose chunks do nothing

The jobs' inputs are the model's own activations (whatever the last step left); only their
time matters here. The parts' sum against the step's time shows what is not in any part
(the forward's own sequencing, the empty jobs' share).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS_DIR = Path(os.environ.get("LLM_UEFI_MODELS",
                                 Path(os.environ.get("LLM_UEFI_SHARED", REPO.parent / "shared")) / "models"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", default=MODELS_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--cores", type=int, default=2, help="cores for the shared runs (the caller included)")
    ap.add_argument("--trials", type=int, default=30, help="runs of each thing timed; the fastest is kept")
    ap.add_argument("--pos", type=int, default=64, help="prompt tokens before the timed positions")
    ap.add_argument("--tokens", type=int, default=32, help="positions timed")
    args = ap.parse_args()
    if args.cores < 2:
        ap.error("--cores: 2 or more")
    if not args.model.is_file():
        print(f"bench_decode: {args.model} not found", file=sys.stderr)
        return 1
    from peasm.runners import native
    ok, why = native.supported()
    if not ok:
        print(f"bench_decode: the native runner cannot run here: {why}", file=sys.stderr)
        return 1
    return run(args, native)


def run(args, native) -> int:
    import numpy as np

    from peasm import generated
    from peasm.linker import link, load_manifest
    from tests.model_support import NativeMachine

    C = generated.constants()
    app, kernels = REPO / "app_asm", REPO / "kernels_asm"
    for line in (app / "model.inc").read_text().splitlines():     # the model's own constants
        if line.startswith(".equ MODEL_ROPE_"):
            key, value = line[5:].split(",", 1)
            C[key.strip()] = int(value.split("#")[0].strip(), 0)
    sources = [app / s for s in ("model.s", "model_state.s", "model_msg.s", "model_gguf.s", "model_gguf_keys.s",
                                 "model_gguf_msg.s", "forward.s", "forward_batch.s", "gguf.s", "gguf_get.s",
                                 "gguf_msg.s", "model_repack.s")]
    sources += [Path(p) for p in load_manifest(kernels / "kernels.toml").sources]
    mc = NativeMachine(link(sources, "model_forward", include_dirs=[kernels]))
    mc.call("kernels_init", native.host_cpu_bits(), 0)
    addr = mc.loaded.address
    workers = args.cores - 1
    threads = [native.HostThread(addr("k_par_worker"), i) for i in range(workers)]

    def u32(a):
        return struct.unpack("<I", mc.read(a, 4))[0]

    def u64(a):
        return struct.unpack("<Q", mc.read(a, 8))[0]

    def entry(name):                                  # a dispatch table slot's body
        return u64(addr(name))

    def fastest(batch, trials=args.trials) -> float:
        best = float("inf")
        for _ in range(trials):
            if hasattr(batch, "prepare"):
                batch.prepare()               # (untimed: a queued job's k_par_rows_queue calls)
            t0 = time.perf_counter_ns()
            batch.run()
            best = min(best, time.perf_counter_ns() - t0)
        return best / 1e3

    def both(batch, per=1) -> tuple[float, float]:
        """(us on one core, us on args.cores), interleaved trials, per call of a batch of per."""
        one = many = float("inf")
        for _ in range(args.trials):
            mc.call("k_par_set_workers", 0)
            one = min(one, fastest(batch, 1))
            mc.call("k_par_set_workers", workers)
            many = min(many, fastest(batch, 1))
        mc.call("k_par_set_workers", 0)
        return one / per, many / per

    def alloc_huge(size, data=None):
        """as the hosted firmware's AllocatePages: 2 MiB pages asked for before first touch"""
        a = mc.alloc(size, align=4096)
        native.advise_huge_pages(a, size)
        if data:
            mc.write(a, data)
        return a

    try:
        data = args.model.read_bytes()
        f = alloc_huge(len(data), data)
        m = mc.alloc(C["MODEL_SIZE"], align=8)
        g = mc.alloc(C["GGUF_SIZE"], align=8)
        if data[:4] != b"GGUF" or mc.call("gguf_open", g, f, len(data)) != 0 \
                or mc.call("model_gguf_config", m, g) != 0:
            print(f"bench_decode: {args.model}: not a GGUF the program loads", file=sys.stderr)
            return 1
        layers_mem = mc.alloc(mc.call("model_layers_bytes", m), align=8)
        if mc.call("model_gguf_bind", m, g, layers_mem) != 0:
            print(f"bench_decode: {args.model}: the binder refused it", file=sys.stderr)
            return 1
        mc.write(m + C["MODEL_KV_TYPE"], struct.pack("<I", C["GGML_TYPE_F16"]))
        ctx = args.pos + args.tokens
        need = mc.call("model_state_bytes", m, ctx)
        state = alloc_huge(need)
        assert mc.call("model_init_state", m, state, ctx, need) == 0
        repacked = mc.call("model_repack", m, 1)      # the weights as the program runs them
        dim, hidden, kv_dim = u32(m + C["MODEL_DIM"]), u32(m + C["MODEL_HIDDEN_DIM"]), u32(m + C["MODEL_KV_DIM"])
        n_layers, vocab = u32(m + C["MODEL_N_LAYERS"]), u32(m + C["MODEL_VOCAB_SIZE"])
        rng = np.random.default_rng(1)
        toks = [int(t) for t in rng.integers(0, vocab, ctx)]
        fwd = addr("model_forward")
        for p in range(args.pos):                     # the prompt, one core
            native.call_many(fwd, [(m, toks[p], p)])

        # the whole step, per position
        steps = [native.Batch(fwd, [(m, toks[p], p)]) for p in range(args.pos, ctx)]
        for b in steps:                               # the cache rows, once
            b.run()
        one = many = 0.0
        for b in steps:
            a, c = both(b)
            one, many = one + a, many + c
        one, many = one / len(steps), many / len(steps)
        rows = [("step (model_forward)", 1, one, one, many)]

        # the jobs of one layer (layer 0's tensors) and the classifier, through the queue
        lay = u64(m + C["MODEL_LAYERS"])

        def tensor(at):
            return dict(data=u64(at + C["TENSOR_DATA"]), type=u32(at + C["TENSOR_TYPE"]),
                        n=u32(at + C["TENSOR_N"]), rows=u32(at + C["TENSOR_ROWS"]),
                        row_bytes=u64(at + C["TENSOR_ROW_BYTES"]))

        def body(ttype, which):
            return native.call_many(addr("ggml_type_body"), [(ttype, C[which])])

        def vec_dot(ttype):
            table = addr("ggml_type_table")
            return u32(table + ttype * C["GGML_TT_SIZE"] + C["GGML_TT_VEC_DOT_TYPE"])

        def group_rows(ttype):
            table = addr("ggml_type_table")
            return u32(table + ttype * C["GGML_TT_SIZE"] + C["GGML_TT_GROUP_ROWS"])

        scratch_x = mc.alloc(4 * max(hidden, dim, vocab), align=64)
        mc.write(scratch_x, rng.standard_normal(max(hidden, dim)).astype(np.float32).tobytes())
        xq = mc.alloc(4 * max(hidden, dim) + 4096, align=64)
        outs = mc.alloc(4 * max(vocab, 2 * hidden, dim + 2 * kv_dim) + 64, align=64)
        queue, flush = addr("k_par_rows_queue"), addr("k_par_rows_flush")

        def job(name, tensors, calls, glu=False):
            prods = [tensor(t) for t in tensors]
            vd = vec_dot(prods[0]["type"])
            if vd != C["GGML_TYPE_F32"]:
                native.call_many(body(vd, "GGML_TT_FROM_FLOAT"), [(xq, scratch_x, prods[0]["n"])])
                xin = xq
            else:
                xin = scratch_x
            recs, off = [], 0
            for t in prods:
                recs.append((body(t["type"], "GGML_TT_MATVEC"), outs + 4 * off, t["data"], xin, t["n"],
                             t["rows"], t["row_bytes"], group_rows(t["type"])))
                off += t["rows"]

            post = [(flush, ())]
            if glu:                                   # gate, up: their SwiGLU in the job
                post = [(addr("k_par_rows_flush_glu"), (entry("k_swiglu"), recs[0][1], recs[1][1], recs[0][5]))]

            class Post:                       # the queue filled from Python untimed, the flush timed
                def prepare(self):
                    native.call_many(queue, recs)

                def run(self):
                    native.call_many(post[0][0], [post[0][1]])
            a, c = both(Post())
            rows.append((f"job: {name}", calls, a, a * calls, c * calls))

        L = C
        job("q,k,v", [lay + L["LAYER_ATTN_Q"], lay + L["LAYER_ATTN_K"], lay + L["LAYER_ATTN_V"]], n_layers)
        job("wo", [lay + L["LAYER_ATTN_OUTPUT"]], n_layers)
        job("gate,up (+SwiGLU)", [lay + L["LAYER_FFN_GATE"], lay + L["LAYER_FFN_UP"]], n_layers, glu=True)
        job("down", [lay + L["LAYER_FFN_DOWN"]], n_layers)
        job("classifier", [m + C["MODEL_OUTPUT"]], 1)
        # attention over the last position's rows (the ATT block the last step left: last layer)
        att = native.Batch(entry("k_attention"), [(m + C["MODEL_ATT_BLOCK"],)])
        mc.call("k_par_set_workers", workers)         # k_attention: the wrapper while workers
        att_par = native.Batch(entry("k_attention"), [(m + C["MODEL_ATT_BLOCK"],)])
        mc.call("k_par_set_workers", 0)
        att_one = native.Batch(entry("k_attention"), [(m + C["MODEL_ATT_BLOCK"],)])
        a = min(fastest(att_one) for _ in range(2))
        mc.call("k_par_set_workers", workers)
        c = min(fastest(att_par) for _ in range(2))
        mc.call("k_par_set_workers", 0)
        del att
        rows.append(("job: attention (heads)", n_layers, a, a * n_layers, c * n_layers))

        # the serial parts, 100 calls a batch
        K = 100
        x, xb, hb, hb2 = (u64(m + C[s]) for s in ("MODEL_S_X", "MODEL_S_XB", "MODEL_S_HB", "MODEL_S_HB2"))
        norm = tensor(lay + L["LAYER_ATTN_NORM"])["data"]
        eps = u32(m + C["MODEL_RMS_EPS"])
        q, k = u64(m + C["MODEL_S_Q"]), u64(m + C["MODEL_S_K"])

        def serial(name, address, call, calls):
            us = fastest(native.Batch(address, [call] * K)) / K
            rows.append((f"serial: {name}", calls, us, us * calls, us * calls))

        serial("rmsnorm", entry("k_rmsnorm"), (xb, x, norm, dim, eps), 2 * n_layers + 1)
        wtypes = {tensor(lay + L[t])["type"] for t in ("LAYER_ATTN_Q", "LAYER_FFN_DOWN")}
        for wt in sorted(wtypes):
            vd = vec_dot(wt)
            if vd == C["GGML_TYPE_F32"]:
                continue
            conv = body(vd, "GGML_TT_FROM_FLOAT")
            serial(f"to vec_dot type {vd} ({dim})", conv, (xq, x, dim), 3 * n_layers)
            serial(f"to vec_dot type {vd} ({hidden})", conv, (xq, hb, hidden), n_layers)
        head = u32(m + C["MODEL_HEAD_SIZE"])
        rope = u64(m + C["MODEL_S_ROPE"])
        if u32(m + C["MODEL_ROPE_STYLE"]) == C["MODEL_ROPE_NEOX"]:
            dims = u32(m + C["MODEL_ROPE_DIMS"])
            serial("RoPE q", entry("k_rope_apply_neox"), (q, rope, dim, head, dims), n_layers)
            serial("RoPE k", entry("k_rope_apply_neox"), (k, rope, kv_dim, head, dims), n_layers)
        else:
            serial("RoPE q", entry("k_rope_apply"), (q, rope, dim, head), n_layers)
            serial("RoPE k", entry("k_rope_apply"), (k, rope, kv_dim, head), n_layers)
        serial("KV store", addr("fw_kv_store"), (m, n_layers - 1, ctx - 1, k, u64(m + C["MODEL_S_V"]), 1), n_layers)
        serial("residual add", entry("k_add"), (hb2, x, dim), 2 * n_layers)
        swiglu = fastest(native.Batch(entry("k_swiglu"), [(hb2, hb, hidden)] * K)) / K
        rows.append(("(SwiGLU alone, in the job above)", n_layers, swiglu, 0.0, 0.0))
        # the board's own cost: a job of 2 chunks whose body does nothing (k_par_quit(0): it
        # stores 0 to the quit flag, which is 0 anyway)
        empty = native.Batch(addr("k_par_for"), [(addr("k_par_quit"), 0, 2)] * K)
        mc.call("k_par_set_workers", workers)
        us = min(fastest(empty) for _ in range(2)) / K
        mc.call("k_par_set_workers", 0)
        njobs = 5 * n_layers + 1
        rows.append(("empty job (2 chunks)", njobs, 0.0, 0.0, us * njobs))
    finally:
        mc.call("k_par_set_workers", 0)
        mc.call("k_par_quit", 1)
        for t in threads:
            t.join()
        mc.call("k_par_quit", 0)
        mc.free()

    print(f"# {args.model.name}: dim {dim}, hidden {hidden}, kv_dim {kv_dim}, {n_layers} layers, vocab {vocab}; "
          f"{repacked} weights repacked to 8-row groups; positions {args.pos}..{ctx - 1}; fastest of {args.trials}; cores {args.cores}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'part':34s} {'calls/token':>11s} {'us/call(1)':>11s} {'us/token(1)':>12s} "
          f"{f'us/token({args.cores})':>12s} {'speedup':>8s}")
    for name, calls, per, t1, tn in rows:
        sp = f"{t1 / tn:8.2f}" if tn and t1 else f"{'':8s}"
        print(f"{name:34s} {calls:11d} {per:11.2f} {t1:12.1f} {tn:12.1f} {sp}")
    parts1 = sum(r[3] for r in rows[1:])
    partsn = sum(r[4] for r in rows[1:-1])
    print(f"# step {rows[0][3]:.1f} us on 1 core, {rows[0][4]:.1f} us on {args.cores}: {rows[0][3] / rows[0][4]:.3f}x "
          f"({1e6 / rows[0][3]:.1f} and {1e6 / rows[0][4]:.1f} steps/s); sum of the parts "
          f"{parts1:.1f} and {partsn:.1f} us (the empty jobs not added)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
