"""The programs this project ships: their manifests travel as package data."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

# name -> (package, manifest file); the first that exists is the default program
SHIPPED = {
    "chat": ("app_asm", "chat.toml"),
    "hello": ("efi_stubs", "hello.toml"),
}


def manifest_path(name: str) -> Path | None:
    package, filename = SHIPPED[name]
    try:
        path = Path(str(resources.files(package) / filename))
    except (ModuleNotFoundError, NotADirectoryError, TypeError):
        return None
    return path if path.is_file() else None


def default_manifest() -> Path:
    for name in SHIPPED:
        path = manifest_path(name)
        if path is not None:
            return path
    raise FileNotFoundError("no shipped program manifest found (broken installation?)")


def shipped_sources() -> list[Path]:
    """Every .s file shipped as package data (for the binutils cross-check)."""
    out = []
    for package in ("efi_stubs", "kernels_asm", "app_asm"):
        try:
            root = Path(str(resources.files(package)))
        except (ModuleNotFoundError, NotADirectoryError, TypeError):
            continue
        out.extend(sorted(root.glob("*.s")))
    return out
