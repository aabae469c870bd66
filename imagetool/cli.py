"""The `imagetool` command line."""
from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import click

from .errors import ImageError

PROG = "imagetool"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def parse_spec(spec: str, default_dest: str) -> tuple[Path, str]:
    """'SRC' or 'SRC=DEST' -> (source path, destination path in the image).

    A DEST ending in '/' names a directory: the source keeps its own name inside it."""
    src, dest = spec, None
    if "=" in spec and not os.path.exists(spec):
        for m in re.finditer("=", spec):
            if os.path.exists(spec[:m.start()]):
                src, dest = spec[:m.start()], spec[m.start() + 1:]
                break
        else:
            src, dest = spec.split("=", 1)
    path = Path(src)
    if not path.exists():
        raise ImageError(f"{src}: no such file or directory")
    if dest is None or dest == "":
        dest = default_dest
    if dest.endswith("/") or dest.endswith("\\"):
        dest = dest + path.name
    if not dest.startswith("/"):
        dest = "/" + dest
    return path, dest


def parse_size(text: str, option: str = "'--size'") -> int | None:
    t = text.strip().lower()
    if t == "auto":
        return None
    m = re.fullmatch(r"(\d+)\s*(m|mb|mib|g|gb|gib)?", t)
    if not m:
        raise click.BadParameter(f"{text!r} is not a size in MiB (e.g. 64, 2G) or 'auto'",
                                 param_hint=option)
    n = int(m.group(1)) * (1024 if (m.group(2) or "m").startswith("g") else 1)
    if n <= 0:
        raise click.BadParameter("must be positive", param_hint=option)
    return n


def parse_guid(text: str | None, what: str) -> uuid.UUID | None:
    if text is None:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a GUID", param_hint=what) from None


def _image_arg(path: str) -> str:
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such image file")
    return path


def _fmt_entry(e, path: str | None = None, long: bool = False) -> str:
    name = (path if path is not None else e.name) + ("/" if e.is_dir else "")
    size = "<DIR>" if e.is_dir else str(e.size)
    short = f"  {e.short_display:<12}" if long else ""
    return f"{size:>12}  {e.mtime}{short}  {name}"


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


@click.group(context_settings=CONTEXT)
@click.version_option("0.1.0", prog_name=PROG)
def cli() -> None:
    """Write and read GPT + FAT bootable images, flash USB sticks, boot images in QEMU.

    \b
      imagetool build -o llm.img --efi BOOTX64.EFI --model stories15M.bin --tokenizer tokenizer.bin
      imagetool boot llm.img
      imagetool write llm.img /dev/sdX
    """


@cli.command(short_help="Build a bootable GPT + FAT image.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Image file to write (replaced only when the new image is complete).")
@click.option("--efi", required=True, metavar="FILE[=DEST]",
              help="The UEFI application; goes to /EFI/BOOT/BOOTX64.EFI unless DEST is given.")
@click.option("--model", "models", multiple=True, metavar="FILE[=DEST]",
              help="A model file, .bin or .gguf (repeatable); goes to the root unless DEST is given. "
                   "Warns when the program cannot run it.")
@click.option("--tokenizer", metavar="FILE[=DEST]", help="Tokenizer file; goes to the root.")
@click.option("--cfg", metavar="FILE[=DEST]", help="Config file; goes to /repl.cfg.")
@click.option("--add", "adds", multiple=True, metavar="SRC[=DEST]",
              help="Any other file or directory (repeatable); DEST ending in '/' is a directory.")
@click.option("--size", default="auto", show_default=True, metavar="MiB|auto",
              help="Image size in MiB (or with a G suffix); auto fits the contents plus headroom.")
@click.option("--label", default="LLM-UEFI", show_default=True, help="FAT volume label (up to 11 characters).")
@click.option("--disk-guid", default=None, help="GPT disk GUID (default: derived from the contents).")
@click.option("--partition-guid", default=None, help="ESP partition GUID (default: derived from the contents).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def build(output, efi, models, tokenizer, cfg, adds, size, label, disk_guid, partition_guid, quiet):
    """Build a bootable GPT + FAT image.

    Timestamps come from SOURCE_DATE_EPOCH (default: a fixed date) and the GUIDs from the
    contents, so the same inputs give a byte-identical image.
    """
    from .image import Item, build_image, expand
    size_mib = parse_size(size)
    dguid = parse_guid(disk_guid, "'--disk-guid'")
    pguid = parse_guid(partition_guid, "'--partition-guid'")
    specs: list[tuple[str, str, str]] = [("--efi", efi, "/EFI/BOOT/BOOTX64.EFI")]
    specs += [("--model", m, "/") for m in models]
    if tokenizer:
        specs.append(("--tokenizer", tokenizer, "/"))
    if cfg:
        specs.append(("--cfg", cfg, "/repl.cfg"))
    specs += [("--add", a, "/") for a in adds]
    items: list[Item] = []
    warnings: list[str] = []
    for opt, spec, default in specs:
        path, dest = parse_spec(spec, default)
        if opt != "--add" and path.is_dir():
            raise ImageError(f"{opt} {path}: is a directory, expected a file")
        if opt == "--efi":
            with open(path, "rb") as f:
                if f.read(2) != b"MZ":
                    raise ImageError(f"--efi {path}: not an EFI application (no 'MZ' header)")
        if opt == "--model":
            from .models import model_warnings
            warnings += model_warnings(path)
        items.extend(expand(path, dest))
    res = build_image(output, items, size_mib=size_mib, label=label, disk_guid=dguid, partition_guid=pguid)
    for w in warnings:  # after the build: a build that fails says one line, its error
        click.echo(f"{PROG}: warning: {w}", err=True)
    if not quiet:
        click.echo(f"{res.path}: {res.size // (1 << 20)} MiB, FAT{res.fat_bits} "
                   f"({res.cluster_bytes}-byte clusters), {res.files} files, "
                   f"{res.free_bytes // 1024} KiB free; disk {res.disk_guid}")


@cli.command(short_help="List a directory (or show one file) in an image.")
@click.argument("image")
@click.argument("path", default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Also show the 8.3 short names.")
@click.option("-r", "--recursive", is_flag=True, help="List everything below PATH.")
def ls(image, path, long_, recursive):
    """List a directory (or show one file) in an image."""
    from .image import Image
    with Image(_image_arg(image)) as img:
        vol = img.volume
        if recursive:
            for p, e in vol.walk(path):
                click.echo(_fmt_entry(e, p, long_))
            return 0
        for e in vol.listdir(path):
            click.echo(_fmt_entry(e, None, long_))
    return 0


@cli.command(short_help="Write a file from an image to standard output.")
@click.argument("image")
@click.argument("path")
def cat(image, path):
    """Write a file from an image to standard output."""
    from .image import Image
    with Image(_image_arg(image)) as img:
        vol = img.volume
        out = sys.stdout.buffer
        for chunk in vol.iter_file(path):
            out.write(chunk)
        out.flush()
    return 0


@cli.command(short_help="Copy a host file or directory into an image.")
@click.argument("image")
@click.argument("src")
@click.argument("dest", required=False)
@click.option("-f", "--force", is_flag=True, help="Replace files that already exist.")
def add(image, src, dest, force):
    """Copy a host file or directory into an image (missing parent directories are created).

    DEST defaults to the root; a DEST ending in '/' or naming an existing directory receives
    SRC under its own name. If the change cannot complete the image is left exactly as it was.
    """
    from .image import Image, expand
    from . import fat as F
    srcp = Path(src)
    if not srcp.exists():
        raise ImageError(f"{src}: no such file or directory")
    with Image(_image_arg(image), writable=True) as img:
        vol = img.volume
        if dest is None or dest in ("", "/"):
            target = "/" + srcp.name
        else:
            parts = F.split_path(dest)
            existing = vol.lookup(dest) if vol.exists(dest) else None
            if dest.endswith("/") or (existing is not None and existing.is_dir) or not parts:
                target = "/" + "/".join(parts + [srcp.name])
            else:
                target = "/" + "/".join(parts)
        items = expand(srcp, target)
        for it in items:
            if it.is_dir:
                vol.mkdir(it.dest)
            else:
                vol.add_file(it.dest, F.FileSource(path=it.src), replace=force)
        vol.commit()
    return 0


@cli.command(short_help="Remove a file or directory from an image.")
@click.argument("image")
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Remove a directory and everything in it.")
def rm(image, path, recursive):
    """Remove a file (or, with -r, a directory) from an image."""
    from .image import Image
    with Image(_image_arg(image), writable=True) as img:
        vol = img.volume
        vol.remove(path, recursive=recursive)
        vol.commit()
    return 0


@cli.command(short_help="Check GPT and FAT structures (exit 1 on a problem).")
@click.argument("image")
def verify(image):
    """Check GPT CRCs and backup, FAT chains and directories; exit status 1 on any problem."""
    from .check import verify as run_verify
    rep = run_verify(_image_arg(image))
    for w in rep.warnings:
        click.echo(f"warning: {w}")
    for p in rep.problems:
        click.echo(f"problem: {p}")
    if rep.problems:
        more = f" (and {len(rep.problems) - 1} more)" if len(rep.problems) > 1 else ""
        raise ImageError(f"{image}: {rep.problems[0]}{more}")
    info = rep.info
    click.echo(f"{image}: ok ({info.get('scheme')}, {info.get('fat')}, {info.get('files', 0)} files, "
               f"{info.get('directories', 0)} directories, {info.get('free_bytes', 0) // 1024} KiB free)")
    return 0


@cli.command(short_help="Flash an image to a whole USB disk and read it back.")
@click.argument("image")
@click.argument("device")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force-fixed", is_flag=True, help="Allow a disk that reports removable=0 (some USB SSDs).")
@click.pass_context
def write(ctx, image, device, yes, force_fixed):
    """Flash IMAGE to a whole USB disk (e.g. /dev/sdb), then read it back and compare.

    Refuses partitions, non-block devices, non-removable disks (unless --force-fixed), disks with
    anything mounted, and disks smaller than the image.
    """
    from . import usb
    system = (ctx.obj or {}).get("system") or usb.LinuxSystem()
    img = _image_arg(image)
    if not os.path.isfile(img):
        raise ImageError(f"{img}: not an image file")
    size = os.path.getsize(img)
    target = usb.check_target(device, size, system, force_fixed=force_fixed)
    if not yes:
        click.echo(f"About to write {img} ({size / (1 << 20):.1f} MiB) to {target.describe()}.", err=True)
        click.echo("Everything on that disk will be lost.", err=True)
        if not click.confirm("Continue?", default=False, err=True):
            raise ImageError("not confirmed; nothing was written")
    is_tty = sys.stderr.isatty()
    last = [-1]

    def progress(stage: str, done: int, total: int) -> None:
        pct = done * 100 // max(total, 1)
        if pct == last[0] and done < total:
            return
        last[0] = pct
        line = f"{stage}: {pct:3d}% ({done >> 20}/{total >> 20} MiB)"
        if is_tty:
            click.echo("\r" + line, err=True, nl=done >= total)
        elif done >= total or pct % 10 == 0:
            click.echo(line, err=True)
        if done >= total:
            last[0] = -1

    exclusive = bool((ctx.obj or {}).get("exclusive", True)) and system.device_number(device) is not None \
        and isinstance(system, usb.LinuxSystem)
    usb.copy_and_verify(img, device, progress=progress, exclusive=exclusive)
    click.echo(f"wrote and verified {size} bytes on {device}; it is safe to remove", err=True)
    return 0


@cli.command(short_help="Boot an image in QEMU + OVMF.")
@click.argument("image")
@click.option("--accel", default="auto", show_default=True, type=click.Choice(["auto", "kvm", "tcg"]),
              help="auto: KVM when /dev/kvm opens and QEMU accepts it, else TCG (emulation).")
@click.option("--cpu", default=None, help="QEMU CPU model (default: host under KVM, max under TCG).")
@click.option("--smp", default="auto", show_default=True, metavar="N|auto",
              help="CPUs: auto gives every host CPU under KVM, 2 under TCG.")
@click.option("--mem", default="auto", show_default=True, metavar="MiB|auto",
              help="Guest memory (or with a G suffix): auto fits the largest model on the image with "
                   "the KV cache of its context (repl.cfg's kv_type), and refuses when the host has "
                   "less free memory.")
@click.option("--timeout", default=None, type=float, help="Stop QEMU after this many seconds (default: never).")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the accelerator and memory lines.")
def boot(image, accel, cpu, smp, mem, timeout, quiet):
    """Boot an image (or a directory holding EFI/BOOT/BOOTX64.EFI) in QEMU + OVMF.

    The console is on this terminal and the keyboard goes to the guest; Ctrl-C stops QEMU.
    Before starting, one line says the accelerator and CPUs, one the memory (on stderr).
    Exit status 0 when the guest powers off.
    """
    from . import bootplan as B
    from . import qemu
    target = Path(image)
    qemu.check_target(target)
    if timeout is not None and timeout <= 0:
        raise click.BadParameter(f"must be positive (got {timeout:g})", param_hint="'--timeout'")
    mem_mib = parse_size(mem, "'--mem'")
    if mem_mib is not None and mem_mib < 32:
        raise click.BadParameter(f"at least 32 MiB for OVMF (got {mem_mib})", param_hint="'--mem'")
    acc = B.choose_accel(accel, qemu.find_qemu(), cpu)
    n_cpus = B.choose_smp(smp, acc)
    if mem_mib is None:
        note = ""
        try:
            models, cfg, problems = B.find_models(target)
        except ImageError as e:
            models, cfg, problems = [], B.ReplCfg(), []
            note = f"no models looked for: {e}"
        for p in problems:
            click.echo(f"{PROG}: warning: {p}", err=True)
        plan = B.plan_memory(models, cfg.ctx_len, cfg.kv_type)
        plan.note = note
        B.check_host_memory(plan)
    else:
        plan = B.MemoryPlan(mem_mib, mem_mib, given=True)
    if not quiet:
        click.echo(f"{PROG}: boot: {acc.describe(n_cpus)}", err=True)
        click.echo(f"{PROG}: boot: {plan.describe()}", err=True)
    res = qemu.boot(target, cpu=acc.cpu, smp=n_cpus, mem_mib=plan.mib, accel=acc.name, timeout=timeout,
                    capture=False)
    if res.timed_out:
        raise ImageError(f"timed out after {timeout:g} s; QEMU was stopped")
    if res.returncode != 0:
        raise ImageError(f"QEMU exited with status {res.returncode}")
    return 0


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(argv: list[str] | None = None, obj: dict | None = None) -> int:
    """Run the CLI; returns the exit status. Every user error is one line on stderr."""
    from .qemu import QemuError
    try:
        rv = cli.main(args=argv, prog_name=PROG, standalone_mode=False, obj=obj or {})
    except click.exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else PROG
        click.echo(f"{where}: error: {_one_line(e.format_message())} (see --help)", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo(f"{PROG}: aborted", err=True)
        return 1
    except click.ClickException as e:
        click.echo(f"{PROG}: error: {_one_line(e.format_message())}", err=True)
        return e.exit_code or 1
    except (ImageError, QemuError) as e:
        click.echo(f"{PROG}: error: {_one_line(str(e))}", err=True)
        return 1
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except OSError as e:
        name = f"{e.filename}: " if e.filename else ""
        click.echo(f"{PROG}: error: {name}{e.strerror or e}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except Exception as e:  # a bug, not a user error: still one line (IMAGETOOL_DEBUG=1 shows it all)
        if os.environ.get("IMAGETOOL_DEBUG"):
            raise
        click.echo(f"{PROG}: internal error: {type(e).__name__}: {_one_line(str(e))} "
                   f"(please report; IMAGETOOL_DEBUG=1 shows the traceback)", err=True)
        return 70
    if isinstance(rv, int):
        return rv
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


__all__ = ["cli", "run", "main", "parse_spec", "parse_size"]
