"""The real thing: OVMF boots an image that imagetool built around the chat program."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys

import pytest

from tests.app_helpers import generations
from tests.support import REFERENCE, model_file, require

pytestmark = pytest.mark.slow


def _qemu():
    qemu = pytest.importorskip("imagetool.qemu")
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 (apt-get install qemu-system-x86)")
    try:
        qemu.find_ovmf()
    except qemu.QemuError as e:
        require(False, f"OVMF ({e})")
    return qemu


def _image(tmp_path, efi, cfg: str, autorun: list[str] | None, extra: list[str] = (),
           model: list[str] | None = None):
    """An image: the chat, repl.cfg, autorun.txt (None: none) and, unless `model` gives other
    build arguments, stories260K + tok512."""
    (tmp_path / "repl.cfg").write_text(cfg, encoding="utf-8")
    if model is None:
        model = ["--model", str(model_file("stories260K.bin")), "--tokenizer", str(model_file("tok512.bin"))]
    if autorun is not None:
        (tmp_path / "autorun.txt").write_text("\n".join(autorun) + "\n", encoding="utf-8")
        extra = ["--add", str(tmp_path / "autorun.txt"), *extra]
    img = tmp_path / "llm.img"
    args = [sys.executable, "-m", "imagetool", "build", "-q", "-o", str(img), "--efi", str(efi),
            *model, "--cfg", str(tmp_path / "repl.cfg"), *extra]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return img


@pytest.mark.parametrize("cpu,path", [("max", "avx2 + fma"), ("qemu64", "sse2")])
def test_golden_in_ovmf(chat_efi, tmp_path, cpu, path):
    """llama2.c's output on real firmware, through the AVX2/FMA kernels (-cpu max: our code
    enables the AVX state itself) and through the SSE2 ones (-cpu qemu64: no AVX)."""
    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=200\n", ["", "/cpu", "/shutdown"])
    result = qemu.boot(img, cpu=cpu, mem_mib=512, timeout=600)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(result.output)
    assert text.startswith(golden.rstrip("\n")), text[:300]
    assert f"kernels: {path}\n" in result.output


# --------------------------------------------------------------------------- typed input
#
# One boot, typed over the serial console (imagetool.qemu.boot's interact script), checked by
# several tests. What OVMF's serial terminal (TerminalDxe, PC-ANSI type on OVMF) hands the
# program for the two bytes a terminal may send for Backspace: 0x08 becomes UnicodeChar 8
# (CHAR_BACKSPACE), which the program treats as Backspace; 0x7f (DEL, what most terminal
# emulators send for the Backspace key) becomes ScanCode SCAN_DELETE (8) with UnicodeChar 0,
# which the program takes as Backspace too.

TYPED_TEXT = "Hello world"
MULTILINE = ["Once upon a time\\", "there was a\\"]     # then ";;" alone
MULTILINE_PROMPT = "Once upon a time\nthere was a\n"     # what the program gathers
MULTILINE_TOKENS = 12


@pytest.fixture(scope="module")
def typed_session(chat_efi, tmp_path_factory):
    qemu = _qemu()
    tmp = tmp_path_factory.mktemp("typed")
    img = _image(tmp, chat_efi, f"temperature=0\nmax_tokens={MULTILINE_TOKENS}\n", None)
    cr = b"\r"                                            # what a terminal's Enter key sends
    script = [
        ("> ", b"/tokenize Hellx\x08o world" + cr),       # typo, BS (0x08), fixed
        ("> ", b"/tokenize Hellx\x7fo world" + cr),       # typo, DEL (0x7f), fixed
        ("> ", MULTILINE[0].encode() + cr),
        ("... ", MULTILINE[1].encode() + cr),
        ("... ", b";;" + cr),
        ("[stats]", b""),
        ("> ", b"/shutdown" + cr),
    ]
    result = qemu.boot(img, cpu="max", mem_mib=256, timeout=300, interact=script)
    assert not result.timed_out, result.output[-2000:]
    return result


def _tokenize_answers(output: str) -> list[str]:
    lines = output.splitlines()
    return [lines[i + 1] for i, ln in enumerate(lines) if ln.startswith("> /tokenize ")]


def _tok512_ids(text: str) -> str:
    from tests.reference import llama2 as ref
    tok = ref.read_tokenizer(model_file("tok512.bin"), 512)
    return " ".join(map(str, tok.encode(text, bos=False)))


def test_typed_backspace_0x08_edits_the_line(typed_session):
    out = typed_session.output
    assert "> /tokenize Hellx\b \bo world\n" in out      # the echo: erased with BS, space, BS
    assert _tokenize_answers(out)[0] == _tok512_ids(TYPED_TEXT)


def test_typed_backspace_0x7f_edits_the_line(typed_session):
    assert _tokenize_answers(typed_session.output)[1] == _tok512_ids(TYPED_TEXT)


def test_typed_multiline_prompt_is_gathered_and_generates(typed_session):
    from tests.app_helpers import console_render
    from tests.reference import llama2 as ref
    out = typed_session.output
    echo = f"> {MULTILINE[0]}\n... {MULTILINE[1]}\n... ;;\n"
    assert echo in out, out[-1500:]
    text, stats = out.split(echo, 1)[1].split("\n[stats] ", 1)
    m = ref.read_model(model_file("stories260K.bin"))
    tok = ref.read_tokenizer(model_file("tok512.bin"), 512)
    expected = ref.generate(m, tok, MULTILINE_PROMPT, steps=200, temperature=0.0)
    n = expected.n_prompt
    want = expected.pieces[n - 1:n - 1 + MULTILINE_TOKENS]
    assert text == console_render(want)
    assert len(text.strip()) > 10                          # not vacuous
    assert stats.startswith(f"prompt_tokens={n} gen_tokens={MULTILINE_TOKENS} prefill_tok_s="), stats
    assert " decode_tok_s=" in stats.splitlines()[0]


def test_typed_shutdown_powers_off(typed_session):
    assert "> /shutdown\npowering off" in typed_session.output
    assert typed_session.powered_off


# --------------------------------------------------------------------------- low memory
#
# Debian 12's OVMF (edk2 2022.11, OVMF_CODE_4M.fd, q35, TCG) boots the program from -m 46 MiB
# up (at 45 it no longer starts it from the disk, at 32 it faults); the program then sees
# about (m - 46) MiB of EfiConventionalMemory: 1 at 46-47, 2 at 48, 18 at 64, 34 at 80, 50
# at 96, 82 at 128. That free memory is fragmented: the largest free range is ~9 MiB at 64,
# ~25 at 80, ~35 at 96 and ~38 at 128 (the UEFI shell's `memmap`), which matters because the
# program allocates the weights and the run state (KV cache) each in one piece.
#
# Two models: big.bin (stories15M shape, 58 MiB: needs 75 MiB with the 16 MiB reserve, more
# than -m 80 has at all) and models/long.bin (2.8 MiB of weights, but a 32768-token context
# whose KV cache, 2 KiB a token, would take 64 MiB: it must shrink). repl.cfg names big.bin;
# when it is refused the program falls back to the models found, less big.bin: long.bin.



@pytest.fixture(scope="module")
def low_memory_image(chat_efi, tmp_path_factory):
    _qemu()
    from tests.reference import llama2 as ref
    tmp = tmp_path_factory.mktemp("lowmem")
    long_cfg = ref.Config(dim=64, hidden_dim=128, n_layers=4, n_heads=4, n_kv_heads=4, vocab_size=512,
                          seq_len=32768)
    ref.write_random_model(tmp / "big.bin", "stories15M", seed=1)
    ref.write_random_model(tmp / "long.bin", long_cfg, seed=2)
    return _image(tmp, chat_efi, "model=big.bin\ntemperature=0\nmax_tokens=4\n", ["", "/ctx", "/shutdown"],
                  model=["--model", str(tmp / "big.bin"), "--model", f"{tmp / 'long.bin'}=/models/long.bin",
                         "--tokenizer", str(model_file("tok512.bin"))])


def _big_needs_mib(img) -> int:
    """What the program says big.bin needs (session_print_no_memory): the file, the run state
    (model_state.s's layout, tests/model_support.py) for 32 tokens and the 16 MiB reserve,
    rounded up to MiB."""
    from tests.model_support import state_bytes
    from tests.reference import llama2 as ref
    big = img.parent / "big.bin"
    cfg = ref.Config.from_header(struct.unpack("<7i", big.read_bytes()[:28]))
    total = big.stat().st_size + state_bytes(cfg, 32) + (16 << 20)
    return (total + (1 << 20) - 1) >> 20


def _boot_low(img, mem_mib):
    qemu = _qemu()
    result = qemu.boot(img, cpu="max", mem_mib=mem_mib, timeout=300)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    return result.output


def test_too_little_memory_refuses_the_model_then_shrinks_the_context(low_memory_image):
    out = _boot_low(low_memory_image, 80)
    lines = out.splitlines()
    refused = next(ln for ln in lines if ln.startswith("model big.bin: "))
    m = re.fullmatch(r"model big\.bin: not enough memory: needs (\d+) MiB, (\d+) MiB free, the largest "
                     r"piece (\d+) MiB \(the weights need 58 MiB in one piece\)", refused)
    assert m, refused
    needs, free, largest = map(int, m.groups())
    assert needs == _big_needs_mib(low_memory_image) and free < 80 - 32, refused   # ~58 + state + 16
    assert largest <= free
    assert "trying the models found on the volume instead" in out
    assert out.count("loading big.bin") == 1          # not tried a second time
    assert "choose a model" not in out
    shrunk = next(ln for ln in lines if ln.startswith("context shrunk to "))
    m = re.fullmatch(r"context shrunk to (\d+) tokens to fit in memory \(the model allows 32768\)", shrunk)
    assert m, shrunk
    ctx = int(m.group(1))
    assert 32 <= ctx < 32768
    summary = next(ln for ln in lines if ln.startswith("model: models/long.bin ("))
    assert f" context {ctx}," in summary, summary
    assert "[stats] prompt_tokens=1 gen_tokens=4 " in out   # and it runs
    assert f"context: 4 / {ctx} tokens used" in out
    assert "> /shutdown\npowering off" in out


def test_fragmented_memory_is_fitted_by_its_largest_free_range(low_memory_image):
    out = _boot_low(low_memory_image, 128)
    assert "model big.bin: cannot read the file" not in out
    assert ("model: big.bin" in out
            or f"model big.bin: not enough memory: needs {_big_needs_mib(low_memory_image)} MiB" in out)
    if "model: big.bin" not in out:
        assert "model: models/long.bin" in out         # a context that fits in one free range


# --------------------------------------------------------------------------- issue 13
#
# Input as a person gives it over QEMU's serial console: a terminal that sends CR+LF for Enter
# (one Enter, not an Enter and an empty line that starts a story) and non-ASCII text, whose
# UTF-8 bytes OVMF's terminal driver hands over as one character each; and an unattended boot
# (autorun) with several models and no model=: the picker must not wait, and numbers the
# models in name order although FAT lists them in the order they were written.

def test_serial_crlf_and_utf8_typed(chat_efi, tmp_path):
    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=8\n", None)
    word = "h\u00e9llo \u65e5\U0001f999"
    script = [("> ", b"/ctx\r\n"), ("tokens used", b""),
              ("> ", f"/tokenize {word}\r\n".encode()), ("> ", b"/shutdown\r\n")]
    result = qemu.boot(img, cpu="max", mem_mib=256, timeout=300, interact=script)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    out = result.output
    assert out.count("context: 0 / 512 tokens used\n") == 1
    assert "[stats]" not in out                      # the LF started no generation
    lines = out.splitlines()
    answer = lines[next(i for i, ln in enumerate(lines) if ln.startswith("> /tokenize ")) + 1]
    assert answer == _tok512_ids(word)


def test_unattended_boot_with_several_models_and_a_bom_cfg(chat_efi, tmp_path):
    qemu = _qemu()
    m = str(model_file("stories260K.bin"))
    img = _image(tmp_path, chat_efi, "\ufefftemperature=0\r\nmax_tokens=4\r\n", ["", "/cfg", "/shutdown"],
                 model=["--model", f"{m}=/zz.bin", "--model", f"{m}=/aa.bin", "--model", f"{m}=/models/mm.bin",
                        "--tokenizer", str(model_file("tok512.bin"))])
    result = qemu.boot(img, cpu="max", mem_mib=256, timeout=300)   # no keys: nobody is there
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    out = result.output
    assert "choose a model" not in out
    assert "  1. aa.bin\n  2. zz.bin\n  3. models/mm.bin\n" in out
    assert "model: aa.bin (" in out
    assert "repl.cfg:" not in out                      # the BOM is not part of the first key
    assert "temperature = 0.000  (repl.cfg)" in out
    assert "model = aa.bin  (found on the volume)" in out
    assert "[stats] prompt_tokens=1 gen_tokens=4 " in out


# --------------------------------------------------------------------------- GGUF models

def test_stories260k_gguf_alone_in_ovmf(chat_efi, tmp_path):
    """stories260K.gguf alone on the stick (its vocabulary inside it): llama2.c's text."""
    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=200\n", ["", "/shutdown"],
                 model=["--model", str(model_file("stories260K.gguf"))])
    result = qemu.boot(img, cpu="max", mem_mib=512, timeout=900)
    assert result.powered_off and not result.timed_out, result.output[-2000:]
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(result.output)
    assert text.startswith(golden.rstrip("\n")), text[:300]


def test_smollm2_chat_in_ovmf(chat_efi, tmp_path):
    """The main job: an image with SmolLM2 boots under OVMF (TCG), an autorun asks "What is
    2+2?", the reply is llama.cpp's greedy reply, the machine powers off."""
    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=32\nctx_len=256\n",
                 ["What is 2+2?", "/shutdown"],
                 model=["--model", str(model_file("SmolLM2-135M-Instruct.Q4_1.gguf"))])
    result = qemu.boot(img, cpu="max", mem_mib=1024, timeout=2400)
    assert result.powered_off and not result.timed_out, result.output[-2000:]
    want = (REFERENCE / "smollm2_what_is_2_plus_2.txt").read_text(encoding="utf-8").rstrip("\n")
    (text,) = generations(result.output)
    assert text == want
