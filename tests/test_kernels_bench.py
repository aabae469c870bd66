"""`peasm bench kernels` runs and prints what it promises (numbers are measured, not judged:
a shared machine makes them noise; the quick mode is a smoke test of the machinery)."""
from __future__ import annotations

import re

import pytest

from peasm.runners import native
from tests.peasm_helpers import peasm
from tests.support import require

LINE = re.compile(r"^kernel=(\S+) path=(\S+) shape=(\S+) mode=(\S+) bytes=(\d+) us=([\d.]+) "
                  r"gbs=([\d.]+) bw_ratio=([\d.]+)$")
# the batched products (peasm/bench_matmat.py): time per 32 weights and input, against matvec
MATMAT_LINE = re.compile(r"^kernel=matmat_(\S+) path=avx2 shape=(\d+)x(\d+) B=(\d+) "
                         r"ns_32w_input=([\d.]+) hot_ns=([\d.]+) streamed_ns=([\d.]+) "
                         r"speedup_vs_hot=([\d.]+) speedup_vs_streamed=([\d.]+)$")


def test_bench_kernels_quick_prints_one_line_per_measurement():
    ok, why = native.supported()
    require(ok, why)
    from peasm.bench import run_kernels_bench

    lines: list[str] = []
    results = run_kernels_bench(pool_mib=24, quick=True, out=lines.append)
    matmat = [ln for ln in lines if ln.startswith("kernel=matmat_")]
    body = [ln for ln in lines if not ln.startswith("#") and ln not in matmat]
    assert body and all(LINE.match(ln) for ln in body), [ln for ln in body if not LINE.match(ln)]
    assert all(MATMAT_LINE.match(ln) for ln in matmat), [ln for ln in matmat if not MATMAT_LINE.match(ln)]
    if native.host_has_avx2_fma():
        assert {MATMAT_LINE.match(ln).group(1) for ln in matmat} >= {"f32", "q4_0", "q4_1", "q8_0"}
    kinds = {(m.group(1), m.group(2), m.group(4)) for m in map(LINE.match, body)}
    paths = ["avx2", "sse2"] if native.host_has_avx2_fma() else ["sse2"]
    for path in paths:
        assert ("stream_read", path, "start") in kinds and ("stream_read", path, "end") in kinds
        assert ("matvec", path, "streamed") in kinds and ("matvec", path, "hot") in kinds
        for kernel in ("rmsnorm", "softmax", "swiglu", "expf", "add", "scale", "dot", "axpy",
                       "argmax", "rope_apply", "attention"):
            assert (kernel, path, "hot") in kinds, kernel
    assert ("matvec", "numpy", "streamed") in kinds
    assert all(r.seconds > 0 and r.gbs > 0 for r in results)
    assert any(ln.startswith("# bandwidth:") for ln in lines)
    assert any("2048x768" in ln for ln in body)


def test_bench_cli_help():
    r = peasm("bench", "kernels", "--help")
    assert r.returncode == 0, r.stderr
    assert "bw_ratio" in r.stdout and "--quick" in r.stdout


def test_bandwidth_cores_reads_the_pool_on_several_threads():
    ok, why = native.supported()
    require(ok, why)
    from peasm.bench import KernelBench

    bench = KernelBench(pool_mib=24, repeats=1, out=lambda line: None)
    path = "avx2" if native.host_has_avx2_fma() else "sse2"
    for cores in (1, 2, 3):
        assert bench.bandwidth_cores(path, cores, calls=1) > 0
    with pytest.raises(ValueError):
        bench.bandwidth_cores(path, 0)
