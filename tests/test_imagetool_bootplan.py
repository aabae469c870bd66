"""`imagetool boot`'s choices (imagetool.bootplan) against fake host facts.

The accelerator (a fake /dev/kvm, a fake QEMU that accepts or refuses KVM), the CPU count (a
fake affinity set), the memory (fake /proc/meminfo; the free-range model of q35 + OVMF against
what the program itself reported in real boots), and the command line QEMU finally gets.
No QEMU is started here: IMAGETOOL_QEMU points at a shell script that records its arguments.
"""
from __future__ import annotations

import os
import shlex
import struct
from pathlib import Path

import pytest

from imagetool import bootplan as B
from imagetool.cli import run
from imagetool.image import Item, build_image
from imagetool.models import ModelInfo, llama2c_expected_size
from tests.support import model_file
from tests.test_imagetool_support import LLAMA_SHAPES, fake_efi, write_llama_gguf

MiB = 1 << 20


# --------------------------------------------------------------------------------------------
# fakes
# --------------------------------------------------------------------------------------------
def fake_qemu(tmp: Path, *, kvm_ok: bool, name: str = "qemu-system-x86_64") -> Path:
    """A script standing in for QEMU: the KVM check (-S with -accel kvm) succeeds or fails as
    told; any other run records its arguments (one per line) and exits 0 (a clean power-off)."""
    d = tmp / "fakebin"
    d.mkdir(exist_ok=True)
    log = tmp / "qemu-args.txt"
    probe = tmp / "qemu-probe.txt"
    exe = d / name
    fail = ('echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2\n'
            '  echo "qemu-system-x86_64: kvm.c:3183: Assertion failed." >&2\n  exit 134')
    exe.write_text("#!/bin/sh\n"
                   'case " $* " in *" -S "*)\n'
                   f'  printf "%s\\n" "$@" > {shlex.quote(str(probe))}\n  cat > /dev/null\n'
                   + ("  exit 0" if kvm_ok else f"  {fail}") + "\n;; esac\n"
                   f'printf "%s\\n" "$@" > {shlex.quote(str(log))}\nexit 0\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def facts(tmp_path, monkeypatch):
    """Host facts under the test's control: a fake /dev/kvm (present, opens), a roomy meminfo,
    8 CPUs, fake OVMF files; returns a namespace of knobs."""
    kvm = tmp_path / "kvm"
    kvm.write_bytes(b"")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:        15000000 kB\n"
                       "MemAvailable:   15500000 kB\n")
    monkeypatch.setattr(B, "KVM_DEVICE", str(kvm))
    monkeypatch.setattr(B, "MEMINFO", str(meminfo))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    code, vars_ = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"c")
    vars_.write_bytes(b"v")
    monkeypatch.setenv("IMAGETOOL_OVMF_CODE", str(code))
    monkeypatch.setenv("IMAGETOOL_OVMF_VARS", str(vars_))

    class Knobs:
        def qemu(self, kvm_ok: bool) -> str:
            exe = fake_qemu(tmp_path, kvm_ok=kvm_ok)
            monkeypatch.setenv("IMAGETOOL_QEMU", str(exe))
            return str(exe)

        def available_kib(self, kib: int | None) -> None:
            if kib is None:
                meminfo.unlink()
            else:
                meminfo.write_text(f"MemTotal: 99999999 kB\nMemAvailable:   {kib} kB\n")

        def qemu_args(self) -> list[str]:
            return (tmp_path / "qemu-args.txt").read_text().splitlines()

        def probe_args(self) -> list[str]:
            return (tmp_path / "qemu-probe.txt").read_text().splitlines()
    k = Knobs()
    k.kvm_path = kvm
    return k


def _opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --------------------------------------------------------------------------------------------
# accelerator
# --------------------------------------------------------------------------------------------
def test_auto_uses_kvm_when_the_device_opens_and_qemu_accepts_it(facts):
    qemu = facts.qemu(kvm_ok=True)
    acc = B.choose_accel("auto", qemu)
    assert (acc.name, acc.cpu, acc.why_not_kvm) == ("kvm", "host", None)
    probe = facts.probe_args()   # the check builds the machine that will boot, stopped
    assert _opt(probe, "-accel") == "kvm" and _opt(probe, "-cpu") == "host" and _opt(probe, "-machine") == "q35"
    assert acc.describe(8) == "KVM (-cpu host), 8 CPUs"
    assert B.choose_accel("auto", qemu, cpu="Haswell").cpu == "Haswell"


def test_auto_falls_back_to_tcg_when_qemu_refuses_kvm(facts):
    qemu = facts.qemu(kvm_ok=False)
    acc = B.choose_accel("auto", qemu)
    assert (acc.name, acc.cpu) == ("tcg", "max")
    assert acc.why_not_kvm == "QEMU: error: failed to set MSR 0x10a to 0x69"   # its first line, unprefixed
    assert acc.describe(2) == "TCG (-cpu max; KVM not usable: QEMU: error: failed to set MSR 0x10a to 0x69), 2 CPUs"


def test_auto_falls_back_to_tcg_without_a_usable_device(facts, monkeypatch):
    def no_probe(*a, **k):
        raise AssertionError("QEMU must not be asked when /dev/kvm does not open")
    monkeypatch.setattr(B, "qemu_kvm_problem", no_probe)
    facts.kvm_path.unlink()
    acc = B.choose_accel("auto", "qemu")
    assert acc.name == "tcg" and acc.why_not_kvm == f"{facts.kvm_path}: No such file or directory"
    # present but not ours to open: the open itself is refused
    facts.kvm_path.write_bytes(b"")
    real_open = os.open

    def refusing_open(path, flags, *a):
        if str(path) == str(facts.kvm_path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a)
    monkeypatch.setattr(os, "open", refusing_open)
    acc = B.choose_accel("auto", "qemu")
    assert acc.name == "tcg" and acc.why_not_kvm.endswith("Permission denied")


def test_forced_accelerators(facts, monkeypatch):
    qemu = facts.qemu(kvm_ok=False)
    with pytest.raises(B.PlanError, match=r"--accel kvm: KVM is not usable here \(QEMU: error: failed to set "
                                          r"MSR.*\); use --accel tcg or auto"):
        B.choose_accel("kvm", qemu)
    monkeypatch.setattr(B, "kvm_device_problem", lambda: pytest.fail("tcg must not probe"))
    assert B.choose_accel("tcg", qemu) == B.Accel("tcg", "max")
    assert B.choose_accel("tcg", qemu, "qemu64").cpu == "qemu64"
    with pytest.raises(B.PlanError, match="auto, kvm or tcg"):
        B.choose_accel("hvf", qemu)


def test_a_qemu_that_cannot_start_or_hangs_means_tcg(facts, tmp_path, monkeypatch):
    assert B.qemu_kvm_problem(str(tmp_path / "nope")).startswith("cannot start")
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    import subprocess
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: real_run(*a, **{**k, "timeout": 0.5}))
    assert "did not finish" in B.qemu_kvm_problem(str(hang))


# --------------------------------------------------------------------------------------------
# CPUs
# --------------------------------------------------------------------------------------------
def test_smp(facts, monkeypatch):
    kvm, tcg = B.Accel("kvm", "host"), B.Accel("tcg", "max")
    assert B.choose_smp("auto", kvm) == 8          # every host CPU (the fake affinity set)
    assert B.choose_smp("auto", tcg) == B.TCG_SMP == 2
    assert B.choose_smp("3", tcg) == 3 and B.choose_smp(5, kvm) == 5
    for bad, msg in (("0", "at least 1"), ("-2", "at least 1"), ("two", "number of CPUs or auto")):
        with pytest.raises(B.PlanError, match=msg):
            B.choose_smp(bad, kvm)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert B.choose_smp("auto", kvm) == 1


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------
# What the program reported as "the largest piece" of free memory in real boots (QEMU 7.2 q35,
# Debian OVMF 2022.11; a 2.2 GiB llama2.c model that did not fit, --mem from 640 to 4096).
MEASURED_LARGEST = {640: 550, 1024: 934, 1536: 1003, 2048: 1003, 2496: 1403, 2815: 1722, 2816: 1003,
                    4096: 2048}


@pytest.mark.parametrize("mem, largest", sorted(MEASURED_LARGEST.items()))
def test_free_range_model_is_a_close_lower_bound_of_what_the_program_saw(mem, largest):
    got = max(B.free_ranges(mem))
    assert largest - 20 <= got <= largest, (mem, B.free_ranges(mem))


def _model(weights_mib: float, layers=22, dim=2048, heads=32, kv=4, ctx=2048, vocab=32000, hidden=5632):
    return ModelInfo("/m.gguf", "gguf", int(weights_mib * MiB), layers, dim, hidden, heads, kv, dim // heads,
                     vocab, ctx)


def test_memory_for_grows_with_the_model_and_always_fits():
    prev = 0
    for w in range(0, 6000, 37):
        mem = B.memory_for(w * MiB, 100 * MiB)
        assert mem >= prev and mem % B.MEM_STEP_MIB == 0 and mem >= B.MIN_MEM_MIB
        assert B.fits(mem, w, 100)
        assert mem == B.MIN_MEM_MIB or not B.fits(mem - B.MEM_STEP_MIB, w, 100) or \
            mem - B.MEM_STEP_MIB < w + 100 + B.PROGRAM_MIB + B.FIRMWARE_MIB
        prev = mem


def test_memory_plans_for_known_shapes():
    # stories260K: the old default, 512 MiB, is plenty
    tiny = ModelInfo("/stories260K.bin", "llama2c", 1056540, 5, 64, 172, 8, 4, 8, 512, 512)
    assert B.plan_memory([tiny]).mib == 512
    # TinyLlama-1.1B Q4_0 (607 MiB) with the f16 KV cache a GGUF gets (kv_type auto) of 2048
    # tokens: 2*22*2048*256*2 = 44 MiB; with kv_type f32 88 MiB
    tl = _model(607)
    for kv_type, el, mem in (("auto", 2, 832), ("f16", 2, 832), ("f32", 4, 896)):
        p = B.plan_memory([tl], kv_type=kv_type)
        assert p.ctx == 2048 and p.weights_mib == 607 and p.kv_type == f"F{8 * el}"
        kv = 2 * 22 * 2048 * 256 * el
        assert kv <= p.state_mib * MiB <= kv + 6 * MiB     # (+ activations, the prefill's 32 rows ~3 MiB)
        assert p.program_mib == B.PROGRAM_MIB + 13             # + a 32000-token SentencePiece workspace
        assert p.mib == mem and B.fits(p.mib, 607, p.state_mib, p.program_mib)
        assert f"m.gguf 607 MiB + KV cache (f{8 * el}) and run state for 2048 tokens" in p.describe()
    # a 2.2 GiB model cannot get one range below 4 GiB: it takes the range above (measured: 4352 boots)
    big = ModelInfo("/big.bin", "llama2c", 2376802332, 12, 2048, 5632, 32, 4, 64, 32000, 2048)
    p = B.plan_memory([big])
    assert p.mib == 4352 and p.need_mib < 2600
    assert "so that the weights get one free range" in p.describe()
    # the most demanding model of several is the one sized for
    assert B.plan_memory([tiny, tl, tiny]).model is tl
    # an image without models keeps the old default
    assert B.plan_memory([]).mib == 512 and "no model" in B.plan_memory([]).describe()


def test_context_for_sizing_follows_repl_cfg_and_is_capped():
    long = _model(700, ctx=131072, layers=16, kv=8, heads=32, vocab=128256)
    p = B.plan_memory([long])
    assert p.ctx == 8192 and "for 8192 tokens of its 131072" in p.describe()
    assert B.plan_memory([long], cfg_ctx=1024).ctx == 1024
    assert B.plan_memory([long], cfg_ctx=1024).mib < p.mib
    assert B.plan_memory([_model(100, ctx=256)], cfg_ctx=4096).ctx == 256


def test_host_memory_check(facts):
    tl = B.plan_memory([_model(607)])
    B.check_host_memory(tl)                               # 15 GB available
    facts.available_kib(600 * 1024)
    with pytest.raises(B.PlanError) as e:
        B.check_host_memory(tl)
    msg = str(e.value)
    assert msg.startswith(f"the guest needs {tl.need_mib} MiB for m.gguf") and "has 600 MiB available" in msg
    assert "--mem" in msg and "\n" not in msg
    facts.available_kib(None)                             # not Linux: nothing known, go ahead
    assert B.host_available_mib() is None
    B.check_host_memory(tl)


# --------------------------------------------------------------------------------------------
# the whole command, with the fake QEMU
# --------------------------------------------------------------------------------------------
def _zero_llama2c(path: Path, header: tuple) -> Path:
    """A llama2.c model of zeros (a sparse file): the program loads it like any other."""
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", *header))
        f.truncate(llama2c_expected_size(*header))
    return path


STORIES110M = (768, 2048, 12, 12, 12, 32000, 1024)   # 418 MiB of f32 weights


@pytest.fixture(scope="module")
def s110_image(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("s110")
    model = _zero_llama2c(tmp_path / "s110.bin", STORIES110M)
    img = tmp_path / "s110.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=fake_efi(tmp_path / "B.EFI")),
                      Item("/models/s110.bin", src=model)])
    model.unlink()
    return img


def test_boot_command_line_under_tcg(facts, s110_image, capsys):
    facts.qemu(kvm_ok=False)
    assert run(["boot", str(s110_image)]) == 0
    args = facts.qemu_args()
    assert (_opt(args, "-accel"), _opt(args, "-cpu"), _opt(args, "-smp"), _opt(args, "-m")) == \
        ("tcg", "max", "2", "640")
    err = capsys.readouterr().err.splitlines()
    assert err == ["imagetool: boot: TCG (-cpu max; KVM not usable: QEMU: error: failed to set MSR 0x10a to "
                   "0x69), 2 CPUs",
                   "imagetool: boot: 640 MiB of memory: models/s110.bin 419 MiB + KV cache (f32) and run state "
                   "for 1024 tokens 74 MiB + 141 MiB for the firmware and the program"]


def test_boot_command_line_under_kvm_and_overrides(facts, s110_image, capsys):
    facts.qemu(kvm_ok=True)
    assert run(["boot", str(s110_image), "-q"]) == 0
    args = facts.qemu_args()
    assert (_opt(args, "-accel"), _opt(args, "-cpu"), _opt(args, "-smp"), _opt(args, "-m")) == \
        ("kvm", "host", "8", "640")
    assert capsys.readouterr().err == ""
    assert run(["boot", str(s110_image), "--accel", "tcg", "--cpu", "qemu64", "--smp", "3", "--mem", "1G"]) == 0
    args = facts.qemu_args()
    assert (_opt(args, "-accel"), _opt(args, "-cpu"), _opt(args, "-smp"), _opt(args, "-m")) == \
        ("tcg", "qemu64", "3", "1024")
    assert capsys.readouterr().err.splitlines()[1] == "imagetool: boot: 1024 MiB of memory (--mem)"


def test_boot_refuses_when_the_host_lacks_memory(facts, s110_image, capsys):
    facts.qemu(kvm_ok=False)
    facts.available_kib(300 * 1024)
    assert run(["boot", str(s110_image)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("imagetool: error: the guest needs")
    assert "has 300 MiB available" in err[0]
    assert not (facts.kvm_path.parent / "qemu-args.txt").exists()      # QEMU never started
    assert run(["boot", str(s110_image), "--mem", "600"]) == 0          # the user's override goes ahead


def test_boot_reads_models_from_a_directory_and_repl_cfg(facts, tmp_path, capsys):
    facts.qemu(kvm_ok=False)
    root = tmp_path / "esp"
    (root / "EFI" / "BOOT").mkdir(parents=True)
    fake_efi(root / "EFI" / "BOOT" / "BOOTX64.EFI")
    write_llama_gguf(root / "tiny.gguf", LLAMA_SHAPES["tiny"], "Q8_0")
    _zero_llama2c(root / "s110.bin", STORIES110M)
    (root / "repl.cfg").write_text("temperature=0\nctx_len=128\n")
    assert run(["boot", str(root)]) == 0
    err = capsys.readouterr().err
    assert "s110.bin 419 MiB + KV cache (f32) and run state for 128 tokens of its 1024" in err, err
    assert _opt(facts.qemu_args(), "-m") == "576"   # 512 MiB leaves no 419 MiB range


def test_boot_warns_about_a_broken_gguf_and_still_boots(facts, tmp_path, capsys):
    facts.qemu(kvm_ok=False)
    good = write_llama_gguf(tmp_path / "g.gguf", LLAMA_SHAPES["tiny"], "Q8_0")
    img = tmp_path / "b.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=fake_efi(tmp_path / "B.EFI")),
                      Item("/broken.gguf", data=good.read_bytes()[:200])])
    assert run(["boot", str(img)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("imagetool: warning: /broken.gguf: GGUF header counts (21 tensors, 10 keys) do not fit "
                      "in a 200-byte file")
    assert err[2] == "imagetool: boot: 512 MiB of memory (no model found on the image)"
    # an image imagetool cannot read is still booted (QEMU and OVMF may know better)
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(1 << 20))
    assert run(["boot", str(junk)]) == 0
    assert "no models looked for: " in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# the KV cache's type: repl.cfg's kv_type, else the model's format (auto: f16 GGUF, f32 .bin)
# --------------------------------------------------------------------------------------------
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"   # 30 layers, 3 KV heads of 64, context 8192


@pytest.mark.parametrize("cfg, kind, mem", [
    (None, "f16", 512), ("kv_type = f32\n", "f32", 640), ("kv_type=AUTO  # the default\n", "f16", 512),
    ("kv_type = f32\nkv_type = q8_0\n", "f32", 640),        # a bad value is ignored: the f32 stays
    ("\ufeffkv_type = f32\r\nctx_len = 4096\r\n", "f32", 512)])
def test_smollm2_memory_follows_kv_type(facts, tmp_path, capsys, cfg, kind, mem):
    """SmolLM2 (a GGUF): its 8192-token cache is 180 MiB in f16 (the default), 360 in f32."""
    facts.qemu(kvm_ok=False)
    root = tmp_path / "esp"
    (root / "EFI" / "BOOT").mkdir(parents=True)
    fake_efi(root / "EFI" / "BOOT" / "BOOTX64.EFI")
    (root / SMOLLM2).symlink_to(model_file(SMOLLM2))
    if cfg is not None:
        (root / "repl.cfg").write_text(cfg, encoding="utf-8")
    ctx = 4096 if cfg and "ctx_len" in cfg else 8192
    kv = 2 * 30 * ctx * 3 * 64 * (2 if kind == "f16" else 4)
    assert run(["boot", str(root)]) == 0
    line = capsys.readouterr().err.splitlines()[1]
    want = (f"imagetool: boot: {mem} MiB of memory: {SMOLLM2} 94 MiB + KV cache ({kind}) and run state for "
            f"{ctx} tokens")
    assert line.startswith(want), line
    state_mib = int(line[len(want):].removeprefix(" of its 8192").split()[0])
    assert kv <= state_mib * MiB <= kv + 3 * MiB, line     # + activations, logits, the prefill's rows
    assert _opt(facts.qemu_args(), "-m") == str(mem)


@pytest.mark.parametrize("cfg, kind, state_mib", [(b"", "f32", 74), (b"kv_type = f16\n", "f16", 38)])
def test_llama2c_memory_follows_kv_type_on_an_image(facts, tmp_path, capsys, cfg, kind, state_mib):
    """A stories110M-shaped .bin on an image: f32 (run.c's) unless repl.cfg says f16; its
    1024-token cache is 72 MiB in f32, 36 in f16 (+ 2 MiB of activations and prefill rows)."""
    facts.qemu(kvm_ok=False)
    model = _zero_llama2c(tmp_path / "s110.bin", STORIES110M)
    img = tmp_path / "s110.img"
    build_image(img, [Item("/EFI/BOOT/BOOTX64.EFI", src=fake_efi(tmp_path / "B.EFI")),
                      Item("/s110.bin", src=model), Item("/repl.cfg", data=b"temperature = 0\n" + cfg)])
    assert run(["boot", str(img)]) == 0
    assert capsys.readouterr().err.splitlines()[1] == (
        f"imagetool: boot: 640 MiB of memory: s110.bin 419 MiB + KV cache ({kind}) and run state for 1024 "
        f"tokens {state_mib} MiB + 141 MiB for the firmware and the program")
    # stories260K.bin, the same rule: the state's bytes follow the cache's element size exactly
    tiny = ModelInfo("/stories260K.bin", "llama2c", 1056540, 5, 64, 172, 8, 4, 8, 512, 512)
    from imagetool.models import state_bytes
    assert state_bytes(tiny, 512) == state_bytes(tiny, 512, "f32") == \
        state_bytes(tiny, 512, "f16") + 2 * 5 * 512 * 32 * 2
