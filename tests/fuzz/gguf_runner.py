"""Fuzz kind `gguf`: GGUF files through app_asm/gguf.s + gguf_get.s + gguf_msg.s under unicorn
(what is called and what judges it: tests/fuzz/harness.py)."""
from __future__ import annotations

from random import Random

from peasm.runners.emu import Emu

from tests.fuzz.mutate import MAX_FILE, Case
from tests.fuzz.runner import MAX_INSTRUCTIONS, TIMEOUT_S, Outcome, Runner, line_problems
from tests.reference import gguf_rules as refgguf


class GgufRunner(Runner):
    kind = "gguf"

    def __init__(self):
        from tests.gguf_support import AsmGguf, EmuMachine, gguf_image
        self.image = gguf_image()
        self.emu = Emu(self.image)
        machine = EmuMachine(self.emu)
        self.a = AsmGguf(machine, max_file=MAX_FILE + 4096,
                         call_kw={"max_instructions": MAX_INSTRUCTIONS, "timeout_s": TIMEOUT_S})

    def _run(self, case: Case, out: Outcome, rng: Random) -> None:
        R = refgguf
        a, data = self.a, case.data
        code = a.open(data)
        v = R.check(data)
        out.verdict = "accepted" if code == 0 else f"refused: {R.GGUF_ERRORS[code] if code < len(R.GGUF_ERRORS) else code}"
        if a.u32("ERROR") != code:
            out.problems.append(f"GGUF_ERROR is {a.u32('ERROR')}, the call returned {code}")
        text = a.error_text(code)
        out.problems += line_problems("gguf_error_text", text)
        line = a.format_error(code, 1024)
        out.message = line.decode("utf-8", "replace")
        out.problems += line_problems("gguf_format_error", line)
        for cap in (rng.choice((1, 2, 7, 30, 60)), 0):
            cut = a.format_error(code, cap)
            if not line.startswith(cut) or len(cut) != max(0, min(cap - 1, len(line))):
                out.problems.append(f"gguf_format_error(capacity {cap}) gave {cut!r}")
        for other in rng.sample(range(len(R.GGUF_ERRORS) + 1), 3):   # any code, whatever fields
            out.problems += line_problems(f"gguf_format_error({other})", a.format_error(other, 512))
        if code != v.code:
            out.problems.append(f"gguf_open gave {code}, gguf_rules says {v.code} ({v.error})")
            return
        if code:
            want = R.message(v, len(data))
            if line.decode("utf-8", "replace") != want:
                out.problems.append(f"message {line!r}, gguf_rules says {want!r}")
            return
        self._accepted(out, v, rng)

    def _accepted(self, out: Outcome, v, rng: Random) -> None:
        import tempfile

        import gguf

        from peasm import ggml
        R = refgguf
        a, data = self.a, out.case.data
        for f, x in (("DATA_START", v.data_start), ("N_ELEMENTS", v.n_elements),
                     ("INFOS_START", v.infos_start), ("DATA_BYTES", v.data_bytes)):
            if a.u64(f) != x:
                out.problems.append(f"GGUF_{f} is {a.u64(f)}, gguf_rules says {x}")
        names = [k for k, _, _ in v.kvs]
        tnames = [t.name for t in v.tensors]
        py_may_refuse = len(set(names)) < len(names) or len(set(tnames)) < len(tnames)
        for n in names + tnames:
            try:
                n.decode("utf-8")
            except UnicodeDecodeError:
                py_may_refuse = True
        with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                reader = gguf.GGUFReader(tmp.name)
            except Exception as e:  # noqa: BLE001 - gguf-py's verdict, judged below
                if not py_may_refuse:
                    out.problems.append(f"accepted, but gguf-py refuses it: {type(e).__name__}: {e}")
                reader = None
            if reader is not None:
                fields = [f for k, f in reader.fields.items() if not k.startswith("GGUF.")]
                got = [(f.name.encode(), int(f.types[0])) for f in fields]
                if got != [(k, t) for k, t, _ in v.kvs]:
                    out.problems.append(f"keys differ from gguf-py's: {got[:5]} ...")
                if a.u64("DATA_START") != reader.data_offset:
                    out.problems.append(f"data start {a.u64('DATA_START')}, gguf-py {reader.data_offset}")
                for i, rt in enumerate(reader.tensors):
                    code, t, name = a.tensor_at(i)
                    want = (0, rt.name.encode(), int(rt.tensor_type), [int(x) for x in rt.shape],
                            a.file + rt.data_offset, int(rt.n_bytes))
                    have = (code, name, t and t["TYPE"], t and list(t["NE"][:t["N_DIMS"]]),
                            t and t["DATA"], t and t["BYTES"])
                    if int(rt.tensor_type) == ggml.BY_NAME["Q8_1"].id:
                        want = want[:-1] + have[-1:]    # gguf-py sizes Q8_1 by its retired
                                                        # 40-byte block (ggml's is 36)
                    if have != want:
                        out.problems.append(f"tensor {i}: asm {have}, gguf-py {want}")
        E = {n: i for i, n in enumerate(R.GGUF_ERRORS)}
        for i, (key, t, at) in enumerate(v.kvs[:64]):
            ptr, err = a.find_key(key)
            dup = names.count(key) > 1
            if dup:
                if (ptr, err) != (0, E["DUP_KEY"]):
                    out.problems.append(f"key {key!r} appears twice, gguf_find_key gave {ptr:#x}/{err}")
            elif ptr != a.file + at:
                out.problems.append(f"gguf_find_key({key!r}) = {ptr:#x}, expected file+{at}")
            kind = "str" if t != R.TYPE["STRING"] else "u64"
            code, _ = a.get(kind, key)
            want = E["DUP_KEY"] if dup else E["KEY_TYPE"]
            if code != want:
                out.problems.append(f"gguf_get_{kind}({key!r}) of a type {t} key gave {code}, not {want}")
            msg = a.format_error(code)
            out.problems += line_problems("getter message", msg)
        for i, t in enumerate(v.tensors[:64]):
            code, ten = a.find_tensor(t.name)
            want = E["DUP_TENSOR"] if tnames.count(t.name) > 1 else 0
            if code != want or (code == 0 and (ten["TYPE"], ten["BYTES"]) != (t.type, t.bytes)):
                out.problems.append(f"gguf_find_tensor({t.name!r}) gave {code} {ten}")
        bad = next((i for i, t in enumerate(v.tensors) if not ggml.runnable(ggml.BY_ID[t.type])), None)
        code = a.check_types()
        if code != (0 if bad is None else E["UNSUPPORTED"]) or (bad is not None and a.u64("ERR_INDEX") != bad):
            out.problems.append(f"gguf_check_types gave {code}, first unsupported tensor is {bad}")
        elif bad is not None:
            t = v.tensors[bad]
            if a.format_error(code).decode() != R.unsupported_message(bad, t.name, t.type):
                out.problems.append(f"gguf_check_types message {a.format_error(code)!r}")
        if a.tensor_at(len(v.tensors))[0] != E["INDEX"]:
            out.problems.append("gguf_tensor_at(count) did not refuse the index")
