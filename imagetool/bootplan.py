"""What `imagetool boot` asks QEMU for: the accelerator, the CPU count and the guest memory.

Decided from facts about the host (can /dev/kvm be opened, does QEMU accept KVM, free memory,
CPU count) and about the image (its model files, read by imagetool.models). Every host fact
comes from one small function here, so tests can replace them.

Memory (`--mem auto`) is sized for the largest model on the image as the program loads it:
the weights in one free range of their own (the file is read whole into pages), the run state
with the KV cache for the model's context in another (its element type as repl.cfg's kv_type
makes it: auto is f16 for GGUF, f32 for llama2.c), the program's own reserve, and what OVMF
keeps for itself. Where the free ranges are was measured from the program itself (its
"not enough memory" line names the largest piece) with Debian's OVMF 2022.11 on q35:

* q35 maps all RAM below 4 GiB up to 2815 MiB; from 2816 MiB on, 2048 MiB below 4 GiB and
  the rest from 4 GiB up, a separate range;
* below 4 GiB, the program sees one range from 21 MiB to the top less about 70 MiB while that
  top is under 1 GiB; above, the range breaks at the 1 GiB mark (1003 MiB below it, the rest
  of the RAM below 4 GiB less about 70 MiB after it). So a 2.2 GiB model needs the
  high range: about 4.3 GiB of guest RAM, most of it never touched.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError
from .models import ModelFileError, ModelInfo, identify, kv_type_of, scan_volume, sizing_context, state_bytes
from .models import tokenizer_bytes
from .replcfg import ReplCfg, parse_cfg, read_cfg

MiB = 1 << 20
KVM_DEVICE = "/dev/kvm"
MEMINFO = "/proc/meminfo"
TCG_SMP = 2                  # TCG runs one host thread per vCPU; more rarely helps a shared host
MIN_MEM_MIB = 512            # what boot always gave: enough for the small llama2.c models
FW_BOTTOM_MIB = 24           # RAM below the first big free range (measured 21 MiB)
FW_TOP_MIB = 80              # RAM OVMF keeps at the top of the RAM below 4 GiB (measured ~70 MiB)
SPLIT_AT_MIB = 1024          # the free RAM below 4 GiB breaks here (measured; see above)
FIRMWARE_MIB = FW_BOTTOM_MIB + FW_TOP_MIB
PROGRAM_MIB = 24             # the program's SESSION_RESERVE (16 MiB) + sampler, history, its image;
                             # plus its tokenizer's workspace, per model (models.tokenizer_bytes)
MEM_STEP_MIB = 64
Q35_SPLIT_MIB = 2816         # 0xB0000000: from this size on, q35 maps only 2 GiB below 4 GiB
Q35_LOWMEM_MIB = 2048
QEMU_HOST_MIB = 64           # QEMU's own memory on the host, beyond the guest's


class PlanError(ImageError):
    """The boot cannot go ahead as asked (KVM demanded but unusable, too little host memory)."""


# --------------------------------------------------------------------------------------------
# host facts (tests replace these)
# --------------------------------------------------------------------------------------------
def kvm_device_problem() -> str | None:
    """Why /dev/kvm cannot be used by this user (None when it opens read-write)."""
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"{KVM_DEVICE}: {e.strerror}"
    os.close(fd)
    return None


def qemu_kvm_problem(qemu: str, cpu: str = "host") -> str | None:
    """Why QEMU refuses KVM here (None when it accepts it): QEMU builds the q35 machine with a
    KVM vCPU, stopped (-S), then its monitor is told to quit. Some hosts (nested or limited
    virtualisation) open /dev/kvm fine and only fail here, e.g. on an MSR QEMU cannot set."""
    cmd = [qemu, "-machine", "q35", "-accel", "kvm", "-cpu", cpu, "-smp", "1", "-m", "64", "-nodefaults",
           "-no-user-config", "-display", "none", "-monitor", "stdio", "-S"]
    try:
        r = subprocess.run(cmd, input=b"quit\n", capture_output=True, timeout=30)
    except OSError as e:
        return f"cannot start {qemu}: {e.strerror}"
    except subprocess.TimeoutExpired:
        return "QEMU did not finish its KVM check within 30 s"
    if r.returncode == 0:
        return None
    lines = [ln.strip() for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    text = lines[0] if lines else f"exit status {r.returncode}"
    for prefix in (os.path.basename(qemu) + ": ", "qemu-system-x86_64: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return f"QEMU: {text}"


def host_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def host_available_mib() -> int | None:
    """MemAvailable from /proc/meminfo in MiB (None when the host does not say)."""
    try:
        with open(MEMINFO, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * 1024 // MiB if parts[-1] == "kB" else int(parts[1]) // MiB
    except (OSError, ValueError, IndexError):
        return None
    return None


# --------------------------------------------------------------------------------------------
# decisions
# --------------------------------------------------------------------------------------------
@dataclass
class Accel:
    name: str                 # "kvm" or "tcg"
    cpu: str
    why_not_kvm: str | None = None

    def describe(self, smp: int) -> str:
        cpus = f"{smp} CPU{'s' if smp != 1 else ''}"
        if self.name == "kvm":
            return f"KVM (-cpu {self.cpu}), {cpus}"
        why = f"; KVM not usable: {self.why_not_kvm}" if self.why_not_kvm else ""
        return f"TCG (-cpu {self.cpu}{why}), {cpus}"


def choose_accel(requested: str, qemu: str, cpu: str | None = None) -> Accel:
    """auto: KVM with -cpu host when /dev/kvm opens and QEMU accepts it, else TCG with -cpu max."""
    if requested not in ("auto", "kvm", "tcg"):
        raise PlanError(f"--accel must be auto, kvm or tcg (got {requested!r})")
    if requested == "tcg":
        return Accel("tcg", cpu or "max")
    problem = kvm_device_problem() or qemu_kvm_problem(qemu, cpu or "host")
    if problem is None:
        return Accel("kvm", cpu or "host")
    if requested == "kvm":
        raise PlanError(f"--accel kvm: KVM is not usable here ({problem}); use --accel tcg or auto")
    return Accel("tcg", cpu or "max", problem)


def choose_smp(requested: str | int, accel: Accel) -> int:
    """auto: every host CPU under KVM, TCG_SMP under TCG; a number is taken as given."""
    if isinstance(requested, int):
        n = requested
    elif str(requested).strip().lower() == "auto":
        return host_cpus() if accel.name == "kvm" else TCG_SMP
    else:
        try:
            n = int(str(requested).strip())
        except ValueError:
            raise PlanError(f"--smp must be a number of CPUs or auto (got {requested!r})") from None
    if n < 1:
        raise PlanError(f"--smp must be at least 1 (got {n})")
    return n


@dataclass
class MemoryPlan:
    mib: int                   # guest RAM to give QEMU
    need_mib: int              # what the guest will use of it (firmware, program, model)
    model: ModelInfo | None = None
    ctx: int = 0
    weights_mib: int = 0
    state_mib: int = 0
    program_mib: int = PROGRAM_MIB
    kv_type: str = "F32"       # the KV cache's ggml type the program will give the model
    given: bool = False        # --mem MiB
    note: str = ""

    def describe(self) -> str:
        if self.given:
            return f"{self.mib} MiB of memory (--mem)"
        if self.model is None:
            return f"{self.mib} MiB of memory ({self.note or 'no model found on the image'})"
        m = self.model
        ctx = f"{self.ctx} tokens" + (f" of its {m.context}" if self.ctx < m.context else "")
        more = ""
        if self.mib - self.need_mib >= MEM_STEP_MIB and self.mib > MIN_MEM_MIB:
            more = " (more than their sum so that the weights get one free range of their own)"
        return (f"{self.mib} MiB of memory: {m.path.lstrip('/')} {self.weights_mib} MiB + KV cache "
                f"({self.kv_type.lower()}) and run state for {ctx} {self.state_mib} MiB + "
                f"{FIRMWARE_MIB + self.program_mib} MiB for the firmware and the program{more}")


def _ceil_mib(n: int) -> int:
    return (n + MiB - 1) // MiB


def free_ranges(mem: int) -> list[int]:
    """The big free ranges (MiB) the program finds in a q35 + OVMF guest of `mem` MiB."""
    low = Q35_LOWMEM_MIB if mem >= Q35_SPLIT_MIB else mem
    if low - FW_TOP_MIB <= SPLIT_AT_MIB:
        ranges = [low - FIRMWARE_MIB]
    else:
        ranges = [SPLIT_AT_MIB - FW_BOTTOM_MIB, low - SPLIT_AT_MIB - FW_TOP_MIB]
    if mem >= Q35_SPLIT_MIB:
        ranges.append(mem - Q35_LOWMEM_MIB)
    return [max(0, r) for r in ranges]


def fits(mem: int, weights: int, state: int, program: int = PROGRAM_MIB) -> bool:
    """Can the program place `weights` MiB in one free range and `state` MiB in another, in a
    guest of `mem` MiB, whichever range the firmware gives the weights? (see the module notes)"""
    ranges = free_ranges(mem)
    choices = [i for i, r in enumerate(ranges) if r >= weights]
    if not choices:
        return False
    for i in choices:
        rest = list(ranges)
        rest[i] -= weights
        if max(rest) < state or sum(rest) < state + program:
            return False
    return True


def memory_for(weights: int, state: int, program: int = PROGRAM_MIB) -> int:
    """Guest MiB for a model of `weights` bytes whose run state takes `state` bytes, the
    program `program` MiB besides (its reserve, tokenizer, sampler)."""
    w, s = _ceil_mib(weights), _ceil_mib(state)
    need = w + s + program + FIRMWARE_MIB
    mem = max(MIN_MEM_MIB, -(-need // MEM_STEP_MIB) * MEM_STEP_MIB)
    while not fits(mem, w, s, program):
        mem += MEM_STEP_MIB
    return mem


def plan_memory(models: list[ModelInfo], cfg_ctx: int | None = None, kv_type: str = "auto") -> MemoryPlan:
    """The memory for the most demanding model (the program loads one at a time), with
    repl.cfg's ctx_len and kv_type (auto, f16 or f32) as the program takes them."""
    best = MemoryPlan(MIN_MEM_MIB, FIRMWARE_MIB + PROGRAM_MIB)
    for m in models:
        ctx = sizing_context(m, cfg_ctx)
        s = state_bytes(m, ctx, kv_type)
        program = PROGRAM_MIB + _ceil_mib(tokenizer_bytes(m))
        mem = memory_for(m.file_size, s, program)
        need = _ceil_mib(m.file_size) + _ceil_mib(s) + program + FIRMWARE_MIB
        if best.model is None or (mem, need) > (best.mib, best.need_mib):
            best = MemoryPlan(mem, need, m, ctx, _ceil_mib(m.file_size), _ceil_mib(s), program,
                              kv_type_of(m, kv_type))
    return best


def check_host_memory(plan: MemoryPlan) -> None:
    """Refuse, in one line, a plan the host cannot hold (unknown free memory: go ahead)."""
    avail = host_available_mib()
    if avail is None or plan.need_mib + QEMU_HOST_MIB <= avail:
        return
    what = f" for {plan.model.path.lstrip('/')}" if plan.model is not None else ""
    raise PlanError(f"the guest needs {plan.need_mib} MiB{what} (plus {QEMU_HOST_MIB} MiB for QEMU) but this "
                    f"host has {avail} MiB available; free some memory, use a smaller model, or give --mem MiB")


# --------------------------------------------------------------------------------------------
# the models a boot target holds
# --------------------------------------------------------------------------------------------
def _host_chunks(path: Path):
    def chunks(n: int):
        with open(path, "rb") as f:
            while True:
                b = f.read(n)
                if not b:
                    return
                yield b
    return chunks


def find_models(target: Path) -> tuple[list[ModelInfo], ReplCfg, list[str]]:
    """(models, repl.cfg's settings, problems) for an image file or a directory."""
    target = Path(target)
    problems: list[str] = []
    if target.is_dir():
        models = []
        for root, dirs, files in os.walk(target):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                try:
                    size = p.stat().st_size
                    rel = "/" + p.relative_to(target).as_posix()
                    m = identify(_host_chunks(p), size, rel)
                except ModelFileError as e:
                    problems.append(str(e))
                    continue
                except OSError:
                    continue
                if m is not None:
                    models.append(m)
        cfg = target / "repl.cfg"
        return models, parse_cfg(cfg.read_bytes()) if cfg.is_file() else ReplCfg(), problems
    from .image import Image
    with Image(target) as img:
        vol = img.volume
        models, problems = scan_volume(vol)
        return models, read_cfg(vol), problems

