#!/usr/bin/env python3
"""Where a generation's time goes: the chat program under `perf record`, natively.

    .venv/bin/python scripts/profile_app.py VOLUME [--efi BOOTX64.EFI] [--cpus N] [--top 20]

Runs BOOTX64.EFI in the native hosted runner (peasm run --cpu native) on VOLUME (a boot
volume directory whose repl.cfg and autorun.txt make it generate, e.g. the ones
scripts/bench_app.py --workdir leaves: DIR/stories110M), under Linux `perf record -e
cpu-clock` (a software clock: works in VMs without hardware counters). The program's code
sits in anonymous memory perf cannot name, so samples there are mapped to the program's own
symbols here: the .text mapping is found among perf's mmap events by its size, and each
sample's address becomes `function` via the map peasm wrote. Only the generation is counted:
samples from the program's process, from its first matvec sample on (loading the model is
file reading, not the forward pass).

One line per function, its share of those samples, kernel and runner (Python) time included
under their own names. Needs `perf` (linux-tools) and perf_event_paranoid <= 2.

--by-thread: the same table per host thread (the boot core's, then each AP's), each row
also in microseconds per generated token (samples / --freq / gen_tokens of the [stats]
line, so give the volume an empty prompt: prefill samples would count too). perf's
cpu-clock only ticks while a thread is on a CPU: on a shared host a thread's time
descheduled is in no row. --labels: name samples by the local label they fall in
(`par_post.Lwait`: the boot core waiting for the workers' chunks; `k_par_worker.Lidle`: a
worker waiting for a job, i.e. the boot core's serial work), not only the function.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MMAP = re.compile(r"MMAP2 (\d+)/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ \S+ \S+ \d+ \d+\]: r-xp //anon")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("volume", type=Path, help="the boot volume directory (repl.cfg, autorun.txt, model)")
    ap.add_argument("--efi", type=Path, default=None, help="BOOTX64.EFI (default: link the chat now)")
    ap.add_argument("--cpus", type=int, default=1, help="processors of the hosted MP services")
    ap.add_argument("--mem", type=int, default=2048, help="MiB the firmware model offers")
    ap.add_argument("--top", type=int, default=20, help="functions to list")
    ap.add_argument("--freq", type=int, default=2000, help="samples per second per thread (perf -F)")
    ap.add_argument("--by-thread", action="store_true", help="a table per host thread, us per token")
    ap.add_argument("--labels", action="store_true", help="name samples by local label, not only function")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        print("profile_app: `perf` not found (install linux-tools / linux-perf)", file=sys.stderr)
        return 1
    if not (args.volume / "repl.cfg").is_file():
        print(f"profile_app: {args.volume} has no repl.cfg: not a boot volume", file=sys.stderr)
        return 1

    from peasm.linker import link, load_manifest
    from peasm.pe import build_pe
    from peasm.programs import manifest_path
    from peasm.runners.peimage import load_pe

    with tempfile.TemporaryDirectory(prefix="profile-app-") as tmp:
        tmp = Path(tmp)
        if args.efi is None:
            m = load_manifest(manifest_path("chat"))
            image = link(m.sources, m.entry, include_dirs=m.include_dirs)
            efi = tmp / "BOOTX64.EFI"
            efi.write_bytes(build_pe(image))
            efi.with_suffix(".map").write_text(image.map_text(), encoding="utf-8")
        else:
            efi = args.efi
        image = load_pe(efi)
        if not image.symbols:
            print(f"profile_app: no map beside {efi} (peasm link --map): cannot name functions", file=sys.stderr)
            return 1
        data = tmp / "perf.data"
        run = [sys.executable, "-m", "peasm", "run", str(efi), "--volume", str(args.volume), "--cpu", "native",
               "--input", "/dev/null", "--mem", str(args.mem), "--cpus", str(args.cpus)]
        r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq), "-o", str(data), "--", *run],
                           capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        stats = [ln for ln in r.stdout.splitlines() if ln.startswith("[stats]")]
        if r.returncode != 0 or not stats:
            print(f"profile_app: the run failed ({r.returncode}):\n{r.stderr[-1500:]}{r.stdout[-800:]}", file=sys.stderr)
            return 1
        mmaps = subprocess.run(["perf", "script", "-i", str(data), "--show-mmap-events"],
                               capture_output=True, text=True).stdout
        samples = subprocess.run(["perf", "script", "-i", str(data), "-F", "pid,tid,time,ip,sym,dso"],
                                 capture_output=True, text=True).stdout

    text = next(s for s in image.sections if s.name == ".text")
    tsize = (text.vsize + 4095) // 4096 * 4096
    bases = {(int(pid), int(a, 16) - text.rva) for pid, a, size in MMAP.findall(mmaps) if int(size, 16) == tsize}
    # a local label `.Lname` / `.1#0` joins its function unless --labels (a private symbol's
    # name keeps its file: `parallel.s:par_take`)
    syms = sorted((s.rva, s.name if args.labels else re.sub(r"\.(L|\d).*$", "", s.name))
                  for s in image.symbols if s.section == ".text")
    rvas = [r for r, _ in syms]

    rows = []
    for line in samples.splitlines():
        p = line.split()
        if len(p) < 3:
            continue
        pid, tid, t, ip = int(p[0].split("/")[0]), int(p[0].split("/")[-1]), float(p[1].rstrip(":")), int(p[2], 16)
        name = None
        for bpid, base in bases:
            if bpid == pid and base + text.rva <= ip < base + text.rva + tsize:
                name = syms[bisect.bisect_right(rvas, ip - base) - 1][1]
        rows.append((pid, tid, t, name or " ".join(p[3:])[:60], name is not None))
    program = [(pid, t) for pid, _, t, name, ours in rows if ours and name.startswith(("matvec", "matmat"))]
    if not program:
        print("profile_app: no samples in the program's matvec or matmat: did it generate?", file=sys.stderr)
        return 1
    pid0, t0 = min(program, key=lambda x: x[1])
    gen = [(tid, name, ours) for pid, tid, t, name, ours in rows if pid == pid0 and t >= t0]
    counts = collections.Counter(name for _, name, _ in gen)
    ours = sum(1 for _, _, o in gen if o)
    print(f"# {stats[-1]}")
    print(f"# {len(gen)} samples from the first matvec or matmat on; {100 * ours / len(gen):.1f}% in the program's code")
    if not args.by_thread:
        for name, n in counts.most_common(args.top):
            print(f"{100 * n / len(gen):6.2f}% {name}")
        return 0
    tokens = int(re.search(r"gen_tokens=(\d+)", stats[-1]).group(1)) or 1
    per_us = 1e6 / args.freq / tokens                    # microseconds per token of one sample
    threads = collections.Counter(tid for tid, _, _ in gen)
    for k, (tid, total) in enumerate(sorted(threads.items(), key=lambda x: (x[0] != pid0, x[0]))):
        c = collections.Counter(name for t, name, _ in gen if t == tid)
        print(f"## thread {k} ({'the boot core' if tid == pid0 else 'an AP'}): {total} samples, "
              f"{total * per_us:.1f} us per token")
        for name, n in c.most_common(args.top):
            print(f"{100 * n / total:6.2f}% {n * per_us:8.1f} us/token {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
