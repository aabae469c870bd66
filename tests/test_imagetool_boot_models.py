"""Real boots of images holding models of real sizes, with plain `imagetool boot IMG`.

The program runs `autorun.txt` and powers off; the console (stdout) and imagetool's own lines
(stderr) are what a user would see. Models are generated: a stories110M-shaped llama2.c model
of zeros (418 MiB, a sparse file: no disk, and the image keeps the holes) and a
TinyLlama-1.1B-shaped Q4_0 GGUF (random blocks in ggml's layout, ~590 MiB, deleted as soon
as it is in the image).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagetool.qemu import strip_ansi
from tests.support import MODELS, REPO, inc_constants, require
from tests.test_imagetool_bootplan import STORIES110M, _zero_llama2c
from tests.test_imagetool_qemu import _judges, _peasm_efi
from tests.test_imagetool_support import LLAMA_SHAPES, imagetool, write_llama_gguf

pytestmark = pytest.mark.slow


def _boot(img: Path, *args: str, timeout: float = 900) -> tuple[int, str, str]:
    """`imagetool boot IMG ARGS` as a user runs it (stdin: nothing to type); (status, console, stderr)."""
    r = subprocess.run([sys.executable, "-m", "imagetool", "boot", str(img), "--timeout", str(timeout), *args],
                       stdin=subprocess.DEVNULL, capture_output=True, cwd=REPO, timeout=timeout + 120)
    return r.returncode, strip_ansi(r.stdout.decode("utf-8", "replace")).replace("\r\n", "\n"), \
        r.stderr.decode("utf-8", "replace")


PLAN = re.compile(r"^imagetool: boot: (\d+) MiB of memory: (\S+) (\d+) MiB \+ KV cache \((f16|f32)\) and run state "
                  r"for (\d+) tokens(?: of its \d+)? (\d+) MiB \+ (\d+) MiB for the firmware and the program", re.M)
MEM = re.compile(r"^weights +([\d.]+) MiB.*\nKV cache +([\d.]+) MiB  \(\d+ layers x (\d+) tokens x 2, (f16|f32)\)\n"
                 r"run state +([\d.]+) MiB.*\ntokenizer +([\d.]+) MiB", re.M)


def assert_estimate_covers_the_need(out: str, err: str) -> tuple[str, int]:
    """`--mem auto`'s plan (imagetool's line) against what the program took (/mem): the model
    loaded with the context planned for, no shrinking, the same KV cache type and tokens, and
    every figure /mem gives within what the plan counted for it (the program's 16 MiB reserve
    stays free on top). Returns (the cache's type, tokens)."""
    from imagetool.bootplan import FIRMWARE_MIB
    plan = PLAN.search(err)
    assert plan, err
    mem, _, weights, kind, ctx, state, fw_program = plan.groups()
    assert "not enough memory" not in out and "shrunk" not in out, out[-3000:]
    got = MEM.search(out)
    assert got, out[-3000:]
    w, kv, tokens, got_kind, run_state, tok = got.groups()
    assert (got_kind, tokens) == (kind, ctx), (got.group(0), plan.group(0))
    assert float(w) <= int(weights) and float(kv) <= int(state), (got.group(0), plan.group(0))
    reserve = inc_constants(REPO / "app_asm" / "session.inc", {})["SESSION_RESERVE"] / (1 << 20)
    assert float(kv) + float(run_state) + float(tok) + reserve <= int(state) + int(fw_program) - FIRMWARE_MIB, \
        (got.group(0), plan.group(0))
    return kind, int(ctx)


@pytest.fixture(scope="module")
def efi(tmp_path_factory) -> Path:
    _judges()
    return _peasm_efi(tmp_path_factory.mktemp("efi") / "BOOTX64.EFI")


def test_auto_memory_gives_a_110m_model_its_whole_context(efi, tmp_path):
    tok = MODELS / "tokenizer.bin"
    require(tok.is_file(), str(tok))
    model = _zero_llama2c(tmp_path / "stories110M.bin", STORIES110M)
    auto = tmp_path / "autorun.txt"
    auto.write_bytes(b"/ctx\r\n/mem\r\n/shutdown\r\n")
    img = tmp_path / "s110.img"
    r = imagetool("build", "-q", "-o", img, "--efi", efi, "--model", model, "--tokenizer", tok, "--add", auto)
    assert r.returncode == 0, r.stderr
    status, out, err = _boot(img)
    assert status == 0, (out[-2000:], err)
    assert re.search(r"^imagetool: boot: (TCG|KVM) \(-cpu \w+.*\), \d+ CPUs?$", err, re.M), err
    assert "imagetool: boot: 640 MiB of memory: stories110M.bin 419 MiB + KV cache (f32) and run state for " \
           "1024 tokens" in err
    assert "context 1024," in out and "context: 0 / 1024 tokens used" in out, out[-2000:]
    assert assert_estimate_covers_the_need(out, err) == ("f32", 1024)
    # the old fixed 512 MiB: the program has to shrink the context (so auto did matter)
    status, out, err = _boot(img, "--mem", "512")
    assert status == 0 and "context shrunk to" in out, out[-2000:]


TINYLLAMA = "tinyllama-1.1b-q4_0.gguf"


@pytest.fixture(scope="module")
def tinyllama_boot(efi, tmp_path_factory) -> tuple[int, str, str]:
    """A TinyLlama-1.1B-shaped Q4_0 GGUF alone on an image (its SentencePiece vocabulary
    embedded), booted with plain `imagetool boot IMG`; autorun asks /mem, then /shutdown."""
    vocab = MODELS / "ggml-vocab-llama-spm.gguf"
    require(vocab.is_file(), str(vocab))
    tmp_path = tmp_path_factory.mktemp("tinyllama")
    model = write_llama_gguf(tmp_path / TINYLLAMA, LLAMA_SHAPES["tinyllama-1.1b"], "Q4_0", vocab_from=vocab)
    auto = tmp_path / "autorun.txt"
    auto.write_bytes(b"/mem\r\n/shutdown\r\n")
    img = tmp_path / "tinyllama.img"
    r = imagetool("build", "-q", "-o", img, "--efi", efi, "--model", model, "--add", auto, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""                       # every tensor type and the vocabulary are the program's
    model.unlink()                               # the image holds it; keep the disk use to one copy
    return _boot(img)


def test_tinyllama_q4_0_gguf_loads_with_plain_boot(tinyllama_boot):
    status, out, err = tinyllama_boot
    assert "imagetool: boot: 832 MiB of memory: " + TINYLLAMA + " 592 MiB + KV cache (f16) and run state for " \
           "2048 tokens" in err, err
    assert status == 0, (out[-3000:], err)
    assert assert_estimate_covers_the_need(out, err) == ("f16", 2048)
    assert "no model found" not in out and "not enough memory" not in out and "shrunk" not in out, out[-3000:]
    assert re.search(r"^model: " + re.escape(TINYLLAMA) + r" \(.*context 2048", out, re.M), out[-3000:]
    assert "powering off" in out


def test_tinyllama_mem_reports_weights_and_kv_cache(tinyllama_boot):
    status, out, err = tinyllama_boot
    after_mem = out[out.index("> /mem"):]
    assert re.search(r"weights", after_mem, re.I) and re.search(r"KV", after_mem), out[-3000:]
    assert "unknown command" not in after_mem


@pytest.mark.parametrize("cfg, kind", [(None, "f16"), (b"kv_type = f32\n", "f32")])
def test_smollm2_kv_type_sizes_the_memory_the_program_uses(efi, tmp_path, cfg, kind):
    """SmolLM2 (GGUF, context 8192): f16 by default (a 180 MiB cache), f32 when repl.cfg says so
    (360 MiB); either way the guest `--mem auto` gives holds what the program takes."""
    model = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
    require(model.is_file(), str(model))
    auto = tmp_path / "autorun.txt"
    auto.write_bytes(b"/mem\r\n/shutdown\r\n")
    args = ["build", "-q", "-o", tmp_path / "s.img", "--efi", efi, "--model", model, "--add", auto]
    if cfg is not None:
        (tmp_path / "repl.cfg").write_bytes(cfg)
        args += ["--cfg", tmp_path / "repl.cfg"]
    r = imagetool(*args)
    assert r.returncode == 0, r.stderr
    status, out, err = _boot(tmp_path / "s.img")
    assert status == 0, (out[-2000:], err)
    assert assert_estimate_covers_the_need(out, err) == (kind, 8192)
