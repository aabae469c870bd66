"""Fuzzing the chat program's file readers: 2,400 mutated model files, tokenizers, repl.cfg
texts and GGUF files through the asm under unicorn with guard pages (tests/fuzz/).

Module level (most cases, fast): one Emu per kind, reused; each case's buffers end at a
guard page, every call has an instruction limit and a timeout, and ABI breaches are faults
(tests/fuzz/harness.py says what is run and what judges each kind). A case passes when
nothing faults or hangs, the asm's message is one clear line (or, for repl.cfg, every
printed line is `repl.cfg:N: ... (line ignored)`), and its accept/refuse decision is the
one tests/reference's readers and the .inc rules give.

Whole program (a handful): mutated files on a volume, run in autorun under unicorn: the
program prints its line, goes on and powers off.

A failure names its case as kind:seed:index; `python scripts/fuzz.py --replay ID` runs it
again and says what happened (`--write FILE` dumps the input). The seed is fixed below so CI
runs the same cases every time; scripts/fuzz.py runs other seeds and more cases.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from functools import lru_cache

import pytest

from tests.app_helpers import make_volume, run_chat
from tests.fuzz.harness import RUNNERS, model_expectation
from tests.fuzz.known import KNOWN_FAILURES
from tests.fuzz.mutate import case_from_id, make_case
from tests.reference import llama2 as ref
from tests.support import REPO

SEED = 20261124
COUNTS = {"model": 800, "tokenizer": 700, "cfg": 500, "gguf": 400}
BATCH = 100


@lru_cache(maxsize=None)
def runner(kind: str):
    return RUNNERS[kind]()


def _batches():
    return [pytest.param(kind, start, id=f"{kind}-{start}")
            for kind, n in COUNTS.items() for start in range(0, n, BATCH)]


@pytest.mark.parametrize("kind,start", _batches())
def test_fuzz_batch(kind, start):
    r = runner(kind)
    failures = []
    for index in range(start, min(start + BATCH, COUNTS[kind])):
        case = make_case(kind, SEED, index)
        if case.id in KNOWN_FAILURES:
            continue
        outcome = r.run_case(case)
        if not outcome.ok:
            failures.append(outcome.report() + f"\n  replay: python scripts/fuzz.py --replay {case.id}")
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("case_id", [
    pytest.param(cid, marks=pytest.mark.xfail(reason=why, strict=False))
    for cid, why in sorted(KNOWN_FAILURES.items())] or [pytest.param(None, marks=pytest.mark.skip(
        reason="no known failing fuzz cases"))])
def test_known_failure(case_id):
    outcome = runner(case_id.split(":")[0]).run_case(case_from_id(case_id))
    assert outcome.ok, outcome.report()


def test_cases_are_reproducible():
    """The same id gives the same bytes, in this process and (for the text grammar, which
    depends on nothing but `random`) on every machine: a replay id stays valid."""
    for kind in RUNNERS:
        for index in (0, 1, 77):
            a, b = make_case(kind, SEED, index), make_case(kind, SEED, index)
            assert (a.data, a.ops, a.vocab_size) == (b.data, b.ops, b.vocab_size)
    digest = hashlib.sha256(b"".join(make_case("cfg", 1, i).data for i in range(20))).hexdigest()
    assert digest == CFG_DIGEST, digest


CFG_DIGEST = "2b9d8e4b40b6ffbda8d52b9743b06b5b180c9efa441937aa356c5f226a9f6847"


def test_the_judges_disagree_with_broken_answers():
    """The harness catches what it is for: a case whose expectation is reversed fails."""
    good = ref.model_bytes(ref.random_model("micro", 1))
    assert model_expectation(good)[0] and not model_expectation(good[:-1])[0]
    r = runner("cfg")
    case = make_case("cfg", SEED, 0)
    case.data = b"colour = blue\n"
    out = r.run_case(case)
    assert out.ok and out.message == "repl.cfg:1: unknown key 'colour' (line ignored)", out.report()
    r.table.setdefault("colour", dict(r.table["model"], name="colour"))
    try:
        assert not r.run_case(case).ok          # the judge now expects 'colour' to be valid
    finally:
        del r.table["colour"]


def test_the_gguf_judge_disagrees_with_a_broken_reference(monkeypatch):
    """A GGUF case passes with the real rules and fails when the rules are made wrong."""
    from tests.fuzz import harness
    from tests.fuzz.mutate_gguf import gguf_base
    r = runner("gguf")
    case = make_case("gguf", SEED, 0)
    case.data = gguf_base("model")
    assert r.run_case(case).ok and r.run_case(case).verdict == "accepted"
    real = harness.refgguf.check

    def refuse_everything(data):
        v = real(data)
        v.code = harness.refgguf.CODE["MAGIC"]
        return v

    monkeypatch.setattr(harness.refgguf, "check", refuse_everything)
    assert not r.run_case(case).ok
    monkeypatch.setattr(harness.refgguf, "check", real)
    case.data = gguf_base("model")[:-17]            # the last tensor (48 bytes + 16 of padding) loses one
    out = r.run_case(case)
    assert out.ok and out.verdict == "refused: DATA_RANGE", out.report()


def test_replay_script(tmp_path):
    """scripts/fuzz.py: --replay prints what happened, --write dumps the input."""
    dump = tmp_path / "case.bin"
    cid = f"cfg:{SEED}:3"
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz.py"), "--replay", cid,
                        "--write", str(dump)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    assert cid in p.stdout and "ok" in p.stdout
    assert dump.read_bytes() == make_case("cfg", SEED, 3).data
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz.py"), "--kind", "model",
                        "--seed", "5", "--count", "20"], capture_output=True, text=True, timeout=300,
                       cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "20 cases" in p.stdout and "0 failed" in p.stdout


# ----------------------------------------------------------------------------- whole program

AFTER = ["hello", "/tokenize hi", "/shutdown"]
# (kind, index) at SEED, chosen for variety: model files refused (n_layers too big, size
# mismatch) and accepted (a weight changed), tokenizers refused (max_token_length, a piece
# too long) and loaded, repl.cfg texts with a 10k-character line, mixed CR/LF, bad lines
PROGRAM_CASES = [("model", 1), ("model", 2), ("model", 9), ("tokenizer", 1), ("tokenizer", 3),
                 ("tokenizer", 6), ("cfg", 3), ("cfg", 6), ("cfg", 8)]


def _run(chat_efi, vol):
    r = run_chat(chat_efi, vol, "unicorn", timeout_s=300)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1500:])
    assert "Traceback" not in r.text
    return r.text


@pytest.mark.parametrize("kind,index", PROGRAM_CASES, ids=[f"{k}-{i}" for k, i in PROGRAM_CASES])
def test_whole_program(chat_efi, tmp_path, kind, index):
    case = make_case(kind, SEED, index)
    module = runner(kind).run_case(case)
    assert module.ok, module.report()
    vol = tmp_path / "vol"
    if kind == "model":
        tok = ref.make_tokenizer(300).to_bytes()
        make_volume(vol, files={"bad.bin": case.data, "tokenizer.bin": tok},
                    cfg="model = bad.bin\nmax_tokens = 4\n", autorun=AFTER)
        text = _run(chat_efi, vol)
        if module.verdict.startswith("refused"):
            assert f"model bad.bin: {module.message}" in text, text[-2000:]
            assert "no model loaded" in text
        else:
            assert "no model loaded" not in text and "gen_tokens=" in text, text[-2000:]
    elif kind == "tokenizer":
        vocab = case.vocab_size
        cfg = ref.Config(16, 40, 2, 4, 4, vocab, 64, True)
        make_volume(vol, files={"model.bin": ref.model_bytes(ref.random_model(cfg, 1)),
                                "tokenizer.bin": case.data},
                    cfg="max_tokens = 4\n", autorun=AFTER)
        text = _run(chat_efi, vol)
        if module.verdict.startswith("refused"):
            assert "tokenizer tokenizer.bin: " in text, text[-2000:]
            assert "no model loaded" in text
        else:
            assert "gen_tokens=" in text, text[-2000:]
    else:
        model = ref.model_bytes(ref.random_model("micro", 1))
        cfg_text = case.data + b"\nautorun = autorun.txt\nmax_tokens = 4\n"
        make_volume(vol, files={"model.bin": model, "tokenizer.bin": ref.make_tokenizer(300).to_bytes(),
                                "repl.cfg": cfg_text}, autorun=AFTER)
        text = _run(chat_efi, vol)
        numbers = lambda s: sorted({int(n) for n in re.findall(r"(?m)^repl\.cfg:(\d+): ", s)})  # noqa: E731
        got, want = numbers(text), numbers(module.message)
        assert want and got == want, (got, want, text[-2000:])
        assert "powering off" in text
