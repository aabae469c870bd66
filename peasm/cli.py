"""`peasm`: assemble, link, inspect and run UEFI programs written in x86-64 assembly."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from peasm import __version__
from peasm.backends import names as backend_names
from peasm.errors import PeasmError


def _fail(err: Exception) -> None:
    click.echo(f"peasm: error: {err}", err=True)
    sys.exit(1)


def _int(value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (use decimal or 0x...)") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="peasm")
def main() -> None:
    """Build UEFI applications from hand-written x86-64 assembly, with Python alone.

    \b
      peasm link -o BOOTX64.EFI          link the chat program (the default)
      peasm inspect BOOTX64.EFI          sections, entry point, relocations, symbols
      peasm asm kernel.s -o kernel.bin   one file to a flat binary
      peasm run BOOTX64.EFI --volume DIR run it on this machine (hosted firmware model)
    """


@main.command("asm", short_help="Assemble one .s file to a flat binary.")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Flat binary to write.")
@click.option("--base", default="0", show_default=True, help="Load address the code is assembled for.")
@click.option("--backend", default="keystone", show_default=True, type=click.Choice(backend_names()),
              help="Assembler backend (plugins: entry-point group peasm.backends).")
@click.option("-I", "--include-dir", "include_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path), help="Extra include directory.")
def asm_cmd(source: Path, output: Path, base: str, backend: str, include_dirs: tuple[Path, ...]) -> None:
    """Assemble one SOURCE file to a flat binary (sections back to back, page-aligned)."""
    from peasm.linker import assemble_flat

    try:
        data, symbols = assemble_flat(source, _int(base), backend=backend, include_dirs=list(include_dirs))
        output.write_bytes(data)
    except (PeasmError, OSError) as e:
        _fail(e)
    click.echo(f"{output}: {len(data)} bytes, {len(symbols)} global symbols")


@main.command("link", short_help="Link a program (default: the chat) into a PE32+ EFI image.")
@click.argument("manifest", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PE32+ EFI application to write (e.g. BOOTX64.EFI).")
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a map: symbol -> RVA, size, source line; and the relocations.")
@click.option("--backend", default="keystone", show_default=True, type=click.Choice(backend_names()),
              help="Assembler backend (plugins: entry-point group peasm.backends).")
@click.option("--check", is_flag=True,
              help="Also assemble with binutils (as + ld) and refuse to write if the two disagree "
                   "(catches operands keystone silently mis-encodes; needs binutils).")
def link_cmd(manifest: Path | None, output: Path, map_file: Path | None, backend: str, check: bool) -> None:
    """Link the program described by MANIFEST (TOML: entry, sources) into a UEFI application.

    Without MANIFEST, links the project's default program (the chat app)."""
    from peasm.linker import link, load_manifest
    from peasm.pe import build_pe
    from peasm.programs import default_manifest

    try:
        m = load_manifest(manifest if manifest is not None else default_manifest())
        image = link(m.sources, m.entry, backend=backend, include_dirs=m.include_dirs,
                     display_root=m.path.parent if manifest is None else None)
        if check:
            from peasm.crosscheck import check_with_binutils
            problem = check_with_binutils(m.sources, m.entry, image, m.include_dirs)
            if problem:
                raise PeasmError(f"keystone and binutils disagree: {problem}")
        data = build_pe(image)
        output.write_bytes(data)
        if map_file:
            map_file.write_text(image.map_text(), encoding="utf-8")
    except (PeasmError, OSError) as e:
        _fail(e)
    click.echo(f"{output}: {m.name}, {len(data)} bytes, {len(image.relocs)} relocations, "
               f"entry {m.entry} at rva 0x{image.entry_rva:x}")


@main.command("inspect", short_help="Show an EFI image's header, sections, relocations, symbols.")
@click.argument("efi", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "map_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Map file for symbols (default: EFI with .map beside it, if present).")
def inspect_cmd(efi: Path, map_file: Path | None) -> None:
    """Show an EFI image's header, sections, relocations and (with a map) its symbols."""
    from peasm.pe import describe

    try:
        info = describe(efi.read_bytes())
    except (PeasmError, OSError) as e:
        _fail(e)
    click.echo(f"{efi}: machine {info['machine']}, subsystem {info['subsystem']}")
    click.echo(f"image base 0x{info['image_base']:x}, size 0x{info['size_of_image']:x}, "
               f"entry rva 0x{info['entry_rva']:x}")
    click.echo("sections:")
    for name, rva, vsize, raw, chars in info["sections"]:
        click.echo(f"  {name:<8} rva 0x{rva:08x}  vsize 0x{vsize:06x}  raw 0x{raw:06x}  flags 0x{chars:08x}")
    click.echo(f"relocations: {len(info['relocations'])}")
    for rva, kind in info["relocations"]:
        click.echo(f"  0x{rva:08x} {kind}")
    if map_file is None and efi.with_suffix(".map").is_file():
        map_file = efi.with_suffix(".map")
    if map_file is not None:
        try:
            lines = map_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            _fail(PeasmError(f"cannot read map {map_file}: {e.strerror}"))
        symbols = [ln.split() for ln in lines if ln.startswith("symbol ")]
        click.echo(f"symbols ({map_file}): {len(symbols)}")
        for _, rva, size, section, name, source, *flags in symbols:
            click.echo(f"  {rva} {size:>8} {section:<7} {name}  {source}{' global' if flags else ''}")


@main.command("run", short_help="Run an EFI image here, on peasm's firmware model.")
@click.argument("efi", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--volume", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Host directory that plays the boot volume (models, tokenizer, repl.cfg).")
@click.option("--cpu", type=click.Choice(["native", "unicorn"]), default="native", show_default=True,
              help="native: the host CPU at full speed (AVX2 when present); unicorn: emulated "
                   "SSE2 with guard pages, faults reported as symbol+offset.")
@click.option("--input", "input_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Type this file's bytes as keystrokes (default: the terminal).")
@click.option("--mem", "mem_mib", default=1024, show_default=True, type=click.IntRange(16, 1 << 20),
              help="Memory the firmware model offers, in MiB.")
@click.option("--timeout", "timeout_s", default=0.0, type=click.FloatRange(0), help="Seconds before giving up (0: none).")
@click.option("--keyboard", type=click.Choice(["serial", "local"]), default="serial", show_default=True,
              help="serial: one key per byte (CR and LF apart, UTF-8 byte by byte), as OVMF's serial "
                   "console; local: a PC keyboard (Enter is one key, characters whole).")
@click.option("--cpus", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Processors the firmware's MP services report: the program's worker cores "
                   "(host threads natively, cores taking turns under unicorn).")
def run_cmd(efi: Path, volume: Path, cpu: str, input_file: Path | None, mem_mib: int, timeout_s: float,
            keyboard: str, cpus: int) -> None:
    """Run EFI on this machine against peasm's firmware model (no QEMU, no reboot).

    Exit status: 0 when the program powers off (or returns) successfully or the --input
    runs out, 1 when it returns an error, 2 on a fault, 3 on a timeout."""
    from peasm.runners.hosted import run
    from peasm.runners.terminal import raw_terminal

    try:
        data = input_file.read_bytes() if input_file else b""
    except OSError as e:
        _fail(PeasmError(f"cannot read {input_file}: {e.strerror}"))
    stdin = None if input_file else sys.stdin.buffer
    try:
        with raw_terminal(stdin):
            result = run(efi, volume, cpu=cpu, input_bytes=data, stdin=stdin, out=sys.stdout.buffer,
                         mem_mib=mem_mib, timeout_s=timeout_s, keyboard=keyboard, cpus=cpus)
    except PeasmError as e:
        _fail(e)
    if result.status != 0 or result.reason not in ("powered off", "returned 0x0"):
        click.echo(f"peasm run: {result.reason}", err=True)
    sys.exit(result.status)


# ---- bench: `peasm bench kernels` (the kernels' benchmark; the code is peasm/bench.py) ------
@main.group("bench", short_help="Measure performance natively (ratios to bandwidth).")
def bench_group() -> None:
    """Measure performance natively, as ratios to this host's measured bandwidth."""


@bench_group.command("kernels", short_help="Every kernel against stream_read bandwidth.")
@click.option("--path", "paths", multiple=True, type=click.Choice(["avx2", "sse2"]),
              help="Kernel bodies to measure (default: both, or sse2 without AVX2+FMA).")
@click.option("--only", multiple=True, type=click.Choice(["matvec", "numpy", "others", "ggml", "kquant", "matmat"]),
              help="Parts to run (default: all).")
@click.option("--pool-mib", type=int, default=None,
              help="Weight pool streamed through (default: max(256, 8 x LLC) MiB).")
@click.option("--seconds", type=float, default=0.3, show_default=True,
              help="Minimum duration of one timed run.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs; the best counts.")
@click.option("--quick", is_flag=True, help="Small pool and few shapes: a smoke test, not a measurement.")
@click.option("--cpu-time", is_flag=True,
              help="Time with this thread's CPU time, not the wall clock (a busy shared host).")
def bench_kernels_cmd(paths, only, pool_mib, seconds, repeats, quick, cpu_time) -> None:
    """Bandwidth, then every kernel/path/shape: one `kernel= path= shape= gbs= bw_ratio=` line each."""
    from peasm.bench import BenchError, run_kernels_bench

    try:
        run_kernels_bench(list(paths) or None, pool_mib=pool_mib, seconds=seconds, repeats=repeats,
                          quick=quick, cpu_time=cpu_time, only=list(only) or None, out=click.echo)
    except BenchError as e:
        _fail(e)
# ---- end bench --------------------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
