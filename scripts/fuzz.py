#!/usr/bin/env python3
"""Fuzz the chat program's file readers under unicorn, or replay one case.

    python scripts/fuzz.py --kind model --seed 7 --count 20000       # a long run (nightly)
    python scripts/fuzz.py --kind gguf --seed 7 --count 5000         # the GGUF reader only
    python scripts/fuzz.py --kind all --seed 7 --count 5000 --start 5000
    python scripts/fuzz.py --replay model:20261124:417               # what happened to one case
    python scripts/fuzz.py --replay cfg:1:3 --write case.cfg         # ... and dump its input

Cases are made by tests/fuzz/mutate.py and run by tests/fuzz/harness.py, exactly as
tests/test_fuzz.py runs them (CI uses seed 20261124). Each failure is printed with its
replay id; the exit status is 1 when any case failed. `--write` puts the mutated file where
you can give it to the whole program (`peasm run BOOTX64.EFI --volume DIR`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzz.harness import RUNNERS  # noqa: E402
from tests.fuzz.known import KNOWN_FAILURES  # noqa: E402
from tests.fuzz.mutate import KINDS, case_from_id, make_case  # noqa: E402


def replay(case_id: str, write: Path | None) -> int:
    case = case_from_id(case_id)
    if write:
        write.write_bytes(case.data)
        print(f"wrote {len(case.data)} bytes to {write}")
    outcome = RUNNERS[case.kind]().run_case(case)
    print(outcome.report())
    if case.id in KNOWN_FAILURES:
        print(f"  known failure: {KNOWN_FAILURES[case.id]}")
    print(f"  {outcome.seconds:.3f} s")
    return 0 if outcome.ok else 1


def run(kinds: list[str], seed: int, start: int, count: int, stop_after: int, quiet: bool) -> int:
    failed_ids: list[str] = []
    total = 0
    t0 = time.perf_counter()
    for kind in kinds:
        runner = RUNNERS[kind]()
        verdicts: dict[str, int] = {}
        tk = time.perf_counter()
        for index in range(start, start + count):
            outcome = runner.run_case(make_case(kind, seed, index))
            total += 1
            key = outcome.verdict.split(",")[0]
            if kind == "cfg":                       # "N lines reported": bucket N
                n = int(key.split()[0])
                key = "no line reported" if n == 0 else ("1-9 lines reported" if n < 10 else "10+ lines reported")
            verdicts[key] = verdicts.get(key, 0) + 1
            if not outcome.ok:
                failed_ids.append(outcome.case.id)
                known = KNOWN_FAILURES.get(outcome.case.id)
                print(outcome.report() + (f"\n  known failure: {known}" if known else ""))
                print(f"  replay: python scripts/fuzz.py --replay {outcome.case.id}\n", flush=True)
                if stop_after and len(failed_ids) >= stop_after:
                    break
            elif not quiet and (index - start + 1) % 500 == 0:
                print(f"  {kind}: {index - start + 1}/{count}", flush=True)
        print(f"{kind}: {sum(verdicts.values())} cases in {time.perf_counter() - tk:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())), flush=True)
        if stop_after and len(failed_ids) >= stop_after:
            break
    print(f"{total} cases, {len(failed_ids)} failed, {time.perf_counter() - t0:.1f} s")
    for cid in failed_ids:
        print(f"FAILED {cid}")
    return 1 if failed_ids else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=list(KINDS) + ["all"], default="all")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=1000, help="cases per kind (default 1000)")
    p.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    p.add_argument("--stop-after", type=int, default=0, metavar="N",
                   help="stop after N failures (default: run everything)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--replay", metavar="KIND:SEED:INDEX", help="run one case and say what happened")
    p.add_argument("--write", type=Path, metavar="FILE", help="with --replay: write the mutated input")
    a = p.parse_args(argv)
    if a.write and not a.replay:
        p.error("--write goes with --replay")
    if a.replay:
        try:
            return replay(a.replay, a.write)
        except ValueError as e:
            p.error(f"--replay {a.replay}: {e}")
    kinds = list(KINDS) if a.kind == "all" else [a.kind]
    return run(kinds, a.seed, a.start, a.count, a.stop_after, a.quiet)


if __name__ == "__main__":
    sys.exit(main())
