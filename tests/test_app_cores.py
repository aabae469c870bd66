"""Every core (issue 14): the chat program with worker cores from the firmware's MP services,
in both hosted runners (native: host threads; unicorn: cores taking turns at the job board's
pause/lock instructions, every buffer and stack between guard pages). The text must be
llama2.c's, whatever the number of cores, and the workers must really have done rows."""
from __future__ import annotations

import re

import pytest

from tests.app_helpers import generations, make_volume, run_chat
from tests.support import REFERENCE, model_file


@pytest.fixture(scope="module")
def stories260k():
    return model_file("stories260K.bin"), model_file("tok512.bin")


def _threads_line(text: str) -> tuple[int, int, int, int]:
    m = re.findall(r"threads: (\d+) of (\d+) cores \((\d+) workers running, (\d+) chunks done by them\)", text)
    assert m, text[-800:]
    return tuple(int(v) for v in m[-1])


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_golden_stories260k_on_every_core(chat_efi, tmp_path, stories260k, cpu, cpus):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 200\n", autorun=["", "/cpu", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu, cpus=cpus)
    assert r.status == 0 and r.reason == "powered off", (r.reason, r.text[-1000:])
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(r.text)
    assert text.startswith(golden.rstrip("\n")), text[:300]
    threads, cores, running, chunks = _threads_line(r.text)
    assert (threads, cores, running) == (cpus, cpus, cpus - 1)
    if cpu == "unicorn" or cpus == 1:    # (host threads on a busy host may find every chunk taken)
        assert (chunks > 0) == (cpus > 1), chunks


@pytest.mark.parametrize("cpu", ["native", "unicorn"])
def test_threads_setting_limits_the_cores(chat_efi, tmp_path, stories260k, cpu):
    """threads= in repl.cfg, /threads N and /threads 0 (all); threads=1 leaves the workers
    idle, and the text is the same."""
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 40\nthreads = 1\n",
                      autorun=["/cpu", "", "/cpu", "/clear", "/threads 3", "", "/threads 9", "/threads 0",
                               "/threads", "/threads -1", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu, cpus=4)
    assert r.status == 0, r.reason
    a, b = re.findall(r"(?m)^> \n(.*?)\n\[stats\]", r.text, flags=re.S)
    assert a == b and len(a) > 50
    lines = re.findall(r"threads: .*", r.text)
    for line in lines[:2]:       # (the APs may not have arrived yet: nothing waited for them)
        assert re.fullmatch(r"threads: 1 of 4 cores \(\d workers running, 0 chunks done by them\)", line)
    assert lines[2].startswith("threads: 3 of 4 cores")
    if cpu == "unicorn":
        assert _threads_line(r.text)[3] > 0                   # after a generation: they worked
    assert lines[3].startswith("threads: 4 of 4 cores")        # 9: as many as there are
    assert lines[4].startswith("threads: 4 of 4 cores")
    assert "threads = 9\n" in r.text and "threads = 0\n" in r.text
    assert re.search(r"threads.*a whole number from 0 to 1024", r.text) or "usage" in r.text.lower()


def test_single_processor_firmware_runs_alone(chat_efi, tmp_path, stories260k):
    model, tok = stories260k
    vol = make_volume(tmp_path / "vol", files={"stories260K.bin": model, "tok512.bin": tok},
                      cfg="temperature = 0\nmax_tokens = 20\n", autorun=["/cpu", "/shutdown"])
    r = run_chat(chat_efi, vol, "native", cpus=1)
    assert _threads_line(r.text) == (1, 1, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("smp", [2, 4])
def test_golden_in_ovmf_on_every_core(chat_efi, tmp_path, smp):
    """Real MP services: OVMF starts the APs (-smp N), each enables its own AVX state (-cpu
    max: the AVX2 bodies run on every core) and works the job board; the text is llama2.c's."""
    from tests.test_app_ovmf import _image, _qemu

    qemu = _qemu()
    img = _image(tmp_path, chat_efi, "temperature=0\nmax_tokens=200\n", ["", "/cpu", "/shutdown"])
    result = qemu.boot(img, cpu="max", smp=smp, mem_mib=512, timeout=900)
    assert not result.timed_out, result.output[-2000:]
    assert result.powered_off, result.output[-2000:]
    golden = (REFERENCE / "stories260K_greedy.txt").read_text(encoding="utf-8")
    (text,) = generations(result.output)
    assert text.startswith(golden.rstrip("\n")), text[:300]
    assert "kernels: avx2 + fma\n" in result.output
    threads, cores, running, chunks = _threads_line(result.output)
    assert (threads, cores, running) == (smp, smp, smp - 1) and chunks > 0


@pytest.mark.parametrize("shape,cpu,cpus", [("stories15M", "native", 2), ("tiny_gqa", "native", 4),
                                            ("tiny_gqa", "unicorn", 3)])
def test_random_models_on_several_cores_equal_reference(chat_efi, tmp_path, shape, cpu, cpus):
    """Real shapes (stories15M: 288-wide rows, a 32000-row classifier split in chunks; a GQA
    model with odd sizes) on several cores print what the numpy reference generates."""
    from tests.reference import llama2 as ref
    from tests.app_helpers import console_render

    vol = tmp_path / "vol"
    vol.mkdir()
    tok_src = model_file("tokenizer.bin") if shape == "stories15M" else None
    model_path, tok_path = ref.write_test_pair(vol, shape, seed=7, tokenizer_src=tok_src)
    make_volume(vol, cfg=f"temperature = 0\nmax_tokens = 64\ntokenizer = {tok_path.name}\n",
                autorun=["", "/cpu", "/shutdown"])
    r = run_chat(chat_efi, vol, cpu, cpus=cpus)
    assert r.status == 0, (r.reason, r.text[-800:])
    m = ref.read_model(model_path)
    expected = ref.generate(m, ref.read_tokenizer(tok_path, m.config.vocab_size), "", steps=64, temperature=0.0)
    pieces = expected.pieces
    if 2 in expected.generated:
        pieces = pieces[:expected.generated.index(2)]
    (text,) = generations(r.text)
    assert text == console_render(pieces) and len(pieces) > 10
    threads, _, _, chunks = _threads_line(r.text)
    assert threads == cpus
    if cpu == "unicorn" or shape == "stories15M":   # (tiny rows on busy host threads: maybe none)
        assert chunks > 0


SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.parametrize("cpus", [2, 4])
def test_smollm2_reply_unchanged_on_several_cores(chat_efi, tmp_path, cpus):
    """A quantized GGUF (Q4_1 rows, Q8_1 activations) through k_par_rows: SmolLM2's greedy
    reply is llama.cpp's, as on one core."""
    vol = make_volume(tmp_path / "vol", files={SMOL: model_file(SMOL)},
                      cfg="temperature = 0\nmax_tokens = 48\nctx_len = 512\n",
                      autorun=["What is 2+2?", "/cpu", "/shutdown"])
    r = run_chat(chat_efi, vol, "native", cpus=cpus)
    assert r.status == 0, (r.reason, r.text[-800:])
    (first,) = generations(r.text)
    assert first == (REFERENCE / "smollm2_what_is_2_plus_2.txt").read_text(encoding="utf-8").rstrip("\n")
    threads, _, _, chunks = _threads_line(r.text)
    assert threads == cpus and chunks > 0


@pytest.mark.parametrize("name,cpu,cpus", [("quant/stories260K-Q4_0.gguf", "native", 3),
                                           ("quant/stories260K-Q8_0.gguf", "native", 2),
                                           ("quant/stories260K-Q4_0.gguf", "unicorn", 3)])
def test_quantized_gguf_same_text_on_several_cores(chat_efi, tmp_path, name, cpu, cpus):
    """Quantized bodies split by k_par_rows print exactly what one core prints."""
    texts = []
    for n in (1, cpus):
        vol = make_volume(tmp_path / f"vol{n}", files={"model.gguf": model_file(name)},
                          cfg="temperature = 0\nmax_tokens = 120\n", autorun=["", "/cpu", "/shutdown"])
        r = run_chat(chat_efi, vol, cpu, cpus=n)
        assert r.status == 0, (r.reason, r.text[-800:])
        (text,) = generations(r.text)
        texts.append(text)
        assert _threads_line(r.text)[0] == n
    assert texts[0] == texts[1] and len(texts[0]) > 100
    if cpu == "unicorn":
        assert _threads_line(r.text)[3] > 0


def test_refused_startup_gives_the_ap_stacks_back(chat_efi, tmp_path, stories260k, monkeypatch):
    """StartupAllAPs refusing (after rt_mp_start took the pages for the APs' own stacks): the
    boot core works alone and those pages are freed again: /mem's free memory is that of a
    firmware with one processor."""
    from peasm.runners.firmware import ERR, Firmware

    model, tok = stories260k

    def free_line(cpus: int) -> str:
        vol = make_volume(tmp_path / f"vol{cpus}", files={"stories260K.bin": model, "tok512.bin": tok},
                          cfg="temperature = 0\nmax_tokens = 4\n", autorun=["/cpu", "/mem", "/shutdown"])
        r = run_chat(chat_efi, vol, "native", cpus=cpus)
        assert _threads_line(r.text)[:3] == (1, 1, 0), r.text[-800:]
        (line,) = [ln for ln in r.text.splitlines() if ln.lstrip().lower().startswith("free")]
        return line

    alone = free_line(1)
    monkeypatch.setattr(Firmware, "mp_StartupAllAPs", lambda self, *a: ERR["EFI_OUT_OF_RESOURCES"])
    assert free_line(2) == alone
