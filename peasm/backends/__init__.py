"""Assembler backends, found through the entry-point group `peasm.backends`.

A backend is a class derived from peasm.backends.base.Backend. The project registers
`keystone` (the default, in the build path) and `gas` (binutils `as` + `ld`, used by the tests
as an independent oracle); other distributions can add their own under the same group.
"""
from __future__ import annotations

from importlib import metadata

from peasm.backends.base import AsmError, Backend
from peasm.errors import PeasmError

DEFAULT = "keystone"
_BUILTIN = {
    "keystone": "peasm.backends.keystone_backend:KeystoneBackend",
    "gas": "peasm.backends.gas_backend:GasBackend",
}


def _entry_points() -> dict[str, str]:
    found = dict(_BUILTIN)  # a source checkout without `pip install` still has its own
    for ep in metadata.entry_points(group="peasm.backends"):
        found[ep.name] = ep.value
    return found


def names() -> list[str]:
    return sorted(_entry_points())


def get_backend(name: str = DEFAULT) -> Backend:
    target = _entry_points().get(name)
    if target is None:
        raise PeasmError(f"unknown backend {name!r} (available: {', '.join(names())})")
    module_name, _, attr = target.partition(":")
    try:
        module = __import__(module_name, fromlist=[attr])
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise PeasmError(f"backend {name!r} cannot be loaded: {e}") from None
    backend = cls()
    ok, why = backend.available()
    if not ok:
        raise PeasmError(f"backend {name!r} is not usable here: {why}")
    return backend


__all__ = ["AsmError", "Backend", "DEFAULT", "get_backend", "names"]
