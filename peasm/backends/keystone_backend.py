"""The default backend: keystone (LLVM MC), run in a forked child.

No symbol resolver is installed for a real assembly: once any `sym_resolver` has been set in a
process, keystone 0.9.2 silently ignores `.balign`/`.p2align` there from then on (and it
computes RIP-relative fixups to resolved symbols wrongly) - one more reason for the child. The resolver is used only to learn the names of missing symbols after a failure,
and in lenient mode, where only syntax matters.

Why a child: on some malformed operands keystone does not return an error but prints
`LLVM ERROR: ...` and exits the whole process (e.g. `mov ah, byte ptr [r8]`). Assembling in
a fork keeps peasm alive to report the problem; a fork costs about a millisecond.
"""
from __future__ import annotations

import os
import pickle
import signal
from dataclasses import dataclass

from peasm.backends.base import AsmError, Backend


def _assemble_here(text: str, base: int, lenient: bool):
    from keystone import KS_ARCH_X86, KS_ERR_ASM_SYMBOL_MISSING, KS_MODE_64, Ks, KsError

    missing: list[str] = []

    def resolver(symbol, value):
        if lenient:
            value[0] = base
            return True
        name = symbol.decode("utf-8", "replace")
        if name not in missing:
            missing.append(name)
        return False

    def run(with_resolver: bool):
        ks = Ks(KS_ARCH_X86, KS_MODE_64)
        if with_resolver:
            ks.sym_resolver = resolver
        return ks.asm(text.encode("utf-8"), base, as_bytes=True)[0] or b""

    try:
        return ("ok", run(lenient), [])
    except KsError as e:
        if e.errno != KS_ERR_ASM_SYMBOL_MISSING or lenient:
            return ("error", str(e), [])
    try:  # again, only to learn which symbols are missing
        run(True)
    except KsError:
        pass
    return ("error", "undefined symbol", missing)


@dataclass
class KeystoneBackend(Backend):
    def __post_init__(self):
        self.name = "keystone"

    def available(self) -> tuple[bool, str]:
        try:
            import keystone  # noqa: F401
        except ImportError as e:  # pragma: no cover - a dependency of the package
            return False, f"keystone-engine is not installed ({e})"
        return True, ""

    def assemble(self, statements: list[str], base: int, *, lenient: bool = False) -> bytes:
        text = "\n".join(statements) + "\n"
        status, payload, missing = _in_child(_assemble_here, text, base, lenient)
        if status == "ok":
            return payload
        raise AsmError(payload, None, missing)


def _in_child(fn, *args):
    """Run fn(*args) in a forked child; its result comes back pickled through a pipe."""
    rd, wr = os.pipe()
    err_rd, err_wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(rd)
            os.close(err_rd)
            os.dup2(err_wr, 2)
            data = pickle.dumps(fn(*args))
            with os.fdopen(wr, "wb") as out:
                out.write(data)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            os._exit(3)
    os.close(wr)
    os.close(err_wr)
    with os.fdopen(rd, "rb") as inp:
        data = inp.read()
    with os.fdopen(err_rd, "rb") as errp:
        stderr = errp.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and data:
        return pickle.loads(data)
    detail = next((ln.strip() for ln in stderr.splitlines() if "LLVM ERROR" in ln), "")
    if not detail:
        if os.WIFSIGNALED(status):
            detail = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    return ("error", f"keystone aborted: {detail}", [])
