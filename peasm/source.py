"""peasm's preprocessor: turns .s files into the statements of one assembly unit.

Keystone assembles a whole program as one unit (see peasm.linker for why), so this module
gives that unit what a real linker would: per-file symbol scopes. It handles

* `.include "file"` (relative to the including file, then the include path, then generated
  files such as uefi.inc); each file is included once per program;
* `.section .text|.rdata|.data|.bss` and the shorthands `.text .rdata .data .bss`;
* `.global`/`.globl` and `.extern`: a symbol defined in a file and not declared global is
  private to that file (renamed), so two files may both have a `buffer:` or `.equ SIZE`;
* local labels scoped per function: `.Lname` and the numeric `1:` / `1b` / `1f` (keystone
  rejects numeric labels), where a function starts at every non-local label;
* `.ucs2 "text"`: UTF-16LE code units and a 0 terminator, since UEFI prints UCS-2 strings.

Macros (`.macro`) and constants (`.equ`, `.set`, `=`) are hoisted into a prelude so that every
file can use what an include defines, whatever the section order of the unit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from peasm.errors import Origin, PeasmError

SECTIONS = (".text", ".rdata", ".data", ".bss")
_SEGMENT_REGS = {"cs", "ds", "es", "fs", "gs", "ss"}

IDENT = r"[A-Za-z_.$@][\w.$@]*"
_TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"'            # string literal
    r"|'(?:\\.|[^'\\])'?"            # character literal
    r"|0[xX][0-9A-Fa-f]+|0[bB][01]+(?![\w.$@])"
    r"|(?P<numref>\d+)(?P<dir>[bf])(?![\w.$@])"
    r"|\d[\w.]*"
    r"|(?P<ident>" + IDENT + r")"
)
_LABEL = re.compile(r"\s*(?P<name>" + IDENT + r"|\d+)\s*:(?!:)")
_ASSIGN = re.compile(r"\s*(?P<name>" + IDENT + r")\s*=(?!=)\s*(?P<expr>.*)$")
_DIRECTIVE = re.compile(r"\s*(?P<dir>\.[A-Za-z_][\w]*)\b\s*(?P<args>.*)$")
_OPEN_BLOCK = {".macro", ".rept", ".irp", ".irpc"}
_CLOSE_BLOCK = {".endm", ".endr"}
_CONSTANT_DIRS = {".equ", ".set"}


@dataclass
class Stmt:
    """One statement of the unit: rewritten text and where it came from."""

    text: str
    origin: Origin
    addressable: bool = True  # outside macro/rept bodies: may carry a line label


@dataclass
class Label:
    name: str          # the name in the assembly unit (after renaming)
    pretty: str        # what users see: `func`, `file.s:name`, `func.Lloop`
    origin: Origin
    section: str
    is_global: bool


@dataclass
class Program:
    """Everything the linker needs: a prelude and the statements of each section."""

    prelude: list[Stmt] = field(default_factory=list)
    sections: dict[str, list[Stmt]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    labels: dict[str, Label] = field(default_factory=dict)       # by unit name
    globals: dict[str, Origin] = field(default_factory=dict)      # global name -> definition
    externs: dict[str, Origin] = field(default_factory=dict)      # first .extern of a name
    private: dict[str, tuple[str, Origin]] = field(default_factory=dict)  # unit name -> (name, def)

    def pretty(self, unit_name: str) -> str:
        label = self.labels.get(unit_name)
        if label:
            return label.pretty
        if unit_name in self.private:
            return self.private[unit_name][0]
        return unit_name


def strip_comment(line: str) -> str:
    """Drop a `#` or `;` comment, respecting string and character literals."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            if c == "'" and line[i + 1:i + 3][-1:] != "'" and not line[i + 1:i + 2] == "\\":
                # a lone apostrophe (e.g. in a macro argument): not a literal
                i += 1
                continue
            quote = c
        elif c in "#;":
            return line[:i]
        i += 1
    return line


def parse_string_literal(arg: str, origin: Origin) -> str:
    """The value of one C-style string literal (escapes \\n \\r \\t \\0 \\\\ \\" \\xNN \\uNNNN)."""
    arg = arg.strip()
    if len(arg) < 2 or arg[0] != '"' or arg[-1] != '"':
        raise PeasmError("expected one double-quoted string", origin)
    body, out, i = arg[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c == '"':
            raise PeasmError("unescaped quote inside string", origin)
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise PeasmError("string ends with a lone backslash", origin)
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in "xu":
            width = 2 if e == "x" else 4
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise PeasmError(f"\\{e} needs {width} hex digits", origin)
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise PeasmError(f"unknown escape \\{e}", origin)
    return "".join(out)


def ucs2_directive(arg: str, origin: Origin) -> str:
    text = parse_string_literal(arg, origin)
    units = list(memoryview(text.encode("utf-16-le")).cast("H")) + [0]
    return ".short " + ", ".join(f"0x{u:04x}" for u in units)


# ----------------------------------------------------------------------------------------
# Reading files


@dataclass
class _Raw:
    """A statement as read: labels split off, body text, origin, and what kind of source."""

    labels: list[str]
    body: str
    origin: Origin
    from_include: bool
    depth: int  # nesting inside .macro/.rept bodies (0 = top level)


class SourceSet:
    """Resolves includes: real files, an include path, and generated files (uefi.inc)."""

    def __init__(self, include_dirs: list[Path] = (), generated: dict | None = None,
                 display_root: Path | None = None):
        self.include_dirs = [Path(d) for d in include_dirs]
        self.generated = dict(generated or {})
        self.display_root = display_root

    def display(self, path: Path) -> str:
        if self.display_root is not None:
            try:
                return str(path.resolve().relative_to(self.display_root.resolve()))
            except ValueError:
                pass
        return str(path)

    def find_include(self, name: str, including: Path | None, origin: Origin) -> tuple[str, str]:
        """(key, text) of an include; key identifies it for include-once."""
        candidates = ([including.parent / name] if including else []) + [d / name for d in self.include_dirs]
        for cand in candidates:
            if cand.is_file():
                return str(cand.resolve()), self._read(cand, origin)
        if name in self.generated:
            text = self.generated[name]                  # a string, or a function rendering it
            return f"<generated>/{name}", text() if callable(text) else text
        raise PeasmError(f"include file not found: {name!r}", origin)

    def read_source(self, path: Path) -> str:
        return self._read(path, None)

    def _read(self, path: Path, origin: Origin | None) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PeasmError(f"source file not found: {path}", origin) from None
        except UnicodeDecodeError as e:
            raise PeasmError(f"{self.display(path)}: not UTF-8 text ({e.reason} at byte {e.start})", origin) from None
        except OSError as e:
            raise PeasmError(f"cannot read {path}: {e.strerror}", origin) from None


def _read_statements(sources: SourceSet, path: Path | None, name: str, text: str,
                     seen_includes: set[str], from_include: bool, out: list[_Raw],
                     depth_box: list[int]) -> None:
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        origin = Origin(name, lineno, raw_line.strip())
        stmt = strip_comment(raw_line).strip()
        if not stmt:
            continue
        labels = []
        while True:
            m = _LABEL.match(stmt)
            if not m or m.group("name").lower() in _SEGMENT_REGS:
                break
            labels.append(m.group("name"))
            stmt = stmt[m.end():].strip()
        d = _DIRECTIVE.match(stmt)
        directive = d.group("dir").lower() if d else ""
        if directive == ".include":
            if labels:
                raise PeasmError("a label cannot stand on an .include line", origin)
            inc_name = parse_string_literal(d.group("args"), origin)
            inc_path = path if path is not None else None
            key, inc_text = sources.find_include(inc_name, inc_path, origin)
            if key in seen_includes:
                continue
            seen_includes.add(key)
            inc_file = Path(key) if not key.startswith("<generated>") else None
            _read_statements(sources, inc_file, sources.display(inc_file) if inc_file else inc_name,
                             inc_text, seen_includes, True, out, depth_box)
            continue
        depth = depth_box[0]
        if directive in _CLOSE_BLOCK:
            depth_box[0] -= 1
            if depth_box[0] < 0:
                raise PeasmError(f"{directive} without a matching block start", origin)
            depth = depth_box[0] + 1
        out.append(_Raw(labels, stmt, origin, from_include, depth))
        if directive in _OPEN_BLOCK:
            depth_box[0] += 1


# ----------------------------------------------------------------------------------------
# Scoping and renaming


class _FileScope:
    """Renames one source file's private symbols, .L labels and numeric labels."""

    def __init__(self, fid: int, raws: list[_Raw], program: Program, globals_declared: set[str]):
        self.fid = fid
        self.raws = raws
        self.program = program
        self.globals_declared = globals_declared
        # function index of each statement, and .L / numeric labels per function
        self.func_of: list[int] = []
        self.func_names: list[str] = [""]
        self.local_defs: dict[tuple[int, str], Origin] = {}
        self.numeric_defs: dict[tuple[int, str], list[int]] = {}  # (func, n) -> statement indices
        self.private: dict[str, str] = {}  # source name -> unit name
        self.label_defs: dict[str, Origin] = {}
        self._collect()

    def _collect(self) -> None:
        func = 0
        for i, raw in enumerate(self.raws):
            if raw.depth == 0:
                for name in raw.labels:
                    if name.isdigit():
                        self.numeric_defs.setdefault((func, name), []).append(i)
                    elif name.startswith(".L"):
                        key = (func, name)
                        if key in self.local_defs:
                            raise PeasmError(f"local label {name} defined twice in "
                                             f"{self.func_names[func] or 'this file'} "
                                             f"(first at {self.local_defs[key]})", raw.origin)
                        self.local_defs[key] = raw.origin
                    else:
                        if name in self.label_defs:
                            raise PeasmError(f"label {name!r} defined twice (first at "
                                             f"{self.label_defs[name]})", raw.origin)
                        self.label_defs[name] = raw.origin
                        self.func_names.append(name)
                        func = len(self.func_names) - 1
                        if not raw.from_include and name not in self.globals_declared:
                            self._make_private(name, raw.origin)
                const = _constant_name(raw.body)
                if const and not raw.from_include and const not in self.globals_declared:
                    self._make_private(const, raw.origin)
            self.func_of.append(func)

    def _make_private(self, name: str, origin: Origin) -> None:
        if name in self.private:
            return  # a constant redefined with .set keeps its one private name
        unit = f"__pf{self.fid}_{_sanitize(name)}"
        self.private[name] = unit
        self.program.private[unit] = (f"{Path(origin.file).name}:{name}", origin)

    def unit_label(self, name: str, index: int, origin: Origin) -> tuple[str, str]:
        """(unit name, pretty name) for a label defined at statement `index`."""
        func = self.func_of[index]
        fname = self.func_names[func]
        if name.isdigit():
            k = self.numeric_defs[(func, name)].index(index)
            return f"__pn{self.fid}_{func}_{name}_{k}", f"{fname}.{name}#{k}"
        if name.startswith(".L"):
            return f"__pl{self.fid}_{func}_{_sanitize(name[2:])}", f"{fname}{name}"
        if name in self.private:
            return self.private[name], f"{Path(origin.file).name}:{name}"
        return name, name

    def rewrite(self, text: str, index: int, origin: Origin) -> str:
        """Rename the identifiers of one statement's operands."""
        func = self.func_of[index]

        def sub(m: re.Match) -> str:
            if m.group("numref"):
                n, direction = m.group("numref"), m.group("dir")
                defs = self.numeric_defs.get((func, n), [])
                if direction == "b":
                    before = [j for j in defs if j <= index]
                    if not before:
                        raise PeasmError(f"no local label {n}: before this line in "
                                         f"{self.func_names[func] or 'this file'}", origin)
                    k = defs.index(before[-1])
                else:
                    after = [j for j in defs if j > index]
                    if not after:
                        raise PeasmError(f"no local label {n}: after this line in "
                                         f"{self.func_names[func] or 'this file'}", origin)
                    k = defs.index(after[0])
                return f"__pn{self.fid}_{func}_{n}_{k}"
            ident = m.group("ident")
            if ident is None:
                return m.group(0)
            if ident.startswith(".L"):
                if (func, ident) not in self.local_defs:
                    raise PeasmError(f"undefined local label {ident} in "
                                     f"{self.func_names[func] or 'this file'}", origin)
                return f"__pl{self.fid}_{func}_{_sanitize(ident[2:])}"
            return self.private.get(ident, ident)

        return _TOKEN.sub(sub, text)


def _constant_name(body: str) -> str | None:
    m = _ASSIGN.match(body)
    if m:
        return m.group("name")
    d = _DIRECTIVE.match(body)
    if d and d.group("dir").lower() in _CONSTANT_DIRS:
        return d.group("args").split(",", 1)[0].strip() or None
    return None


def _sanitize(name: str) -> str:
    return re.sub(r"[^\w]", lambda m: f"_{ord(m.group(0)):x}_", name)


def _uses_location_counter(expr: str) -> bool:
    return any(m.group("ident") == "." for m in _TOKEN.finditer(expr))


def _split_names(args: str) -> list[str]:
    return [a.strip() for a in args.split(",") if a.strip()]


def preprocess(files: list[Path], sources: SourceSet) -> Program:
    """Read, scope and rename every file of a program into one Program."""
    program = Program()
    seen_includes: set[str] = set()
    per_file: list[tuple[Path, list[_Raw]]] = []
    for path in files:
        raws: list[_Raw] = []
        depth = [0]
        seen_includes.add(str(Path(path).resolve()))
        _read_statements(sources, Path(path), sources.display(Path(path)),
                         sources.read_source(Path(path)), seen_includes, False, raws, depth)
        if depth[0] != 0:
            opener = next(r for r in reversed(raws) if _DIRECTIVE.match(r.body)
                          and _DIRECTIVE.match(r.body).group("dir").lower() in _OPEN_BLOCK)
            raise PeasmError("block is never closed (.endm/.endr missing)", opener.origin)
        per_file.append((Path(path), raws))

    # Global declarations first: they decide which names stay unrenamed.
    declared: list[set[str]] = []
    for _, raws in per_file:
        names: set[str] = set()
        for raw in raws:
            d = _DIRECTIVE.match(raw.body)
            if d and d.group("dir").lower() in (".global", ".globl"):
                names.update(_split_names(d.group("args")))
        declared.append(names)

    for fid, (path, raws) in enumerate(per_file):
        scope = _FileScope(fid, raws, program, declared[fid])
        section = ".text"
        in_macro = False
        for i, raw in enumerate(raws):
            _emit(program, scope, raw, i, section, in_macro)
            d = _DIRECTIVE.match(raw.body)
            directive = d.group("dir").lower() if d else ""
            if directive == ".section" or directive in SECTIONS:
                section = _section_name(directive, d.group("args"), raw)
            elif directive == ".macro":
                in_macro = True
            elif directive == ".endm":
                in_macro = False

    for name, origin in program.externs.items():
        if name not in program.globals:
            owner = next((o for u, (n, o) in program.private.items() if n.endswith(":" + name)), None)
            hint = f" (defined at {owner} but not .global there)" if owner else ""
            raise PeasmError(f"undefined symbol {name!r} declared .extern{hint}", origin)
    from peasm.constants import fold_constants
    fold_constants(program)
    return program


def _section_name(directive: str, args: str, raw: _Raw) -> str:
    name = args.split(",")[0].strip() if directive == ".section" else directive
    if name not in SECTIONS:
        raise PeasmError(f"unknown section {name!r} (peasm knows {', '.join(SECTIONS)})", raw.origin)
    if raw.depth:
        raise PeasmError("a section change cannot stand inside a macro or .rept", raw.origin)
    return name


def _emit(program: Program, scope: _FileScope, raw: _Raw, i: int, section: str, in_macro: bool) -> None:
    """Append one statement (and its labels) to the prelude or its section."""
    origin = raw.origin
    d = _DIRECTIVE.match(raw.body)
    directive = d.group("dir").lower() if d else ""
    args = d.group("args") if d else ""
    body = raw.body
    if directive in (".section", ".global", ".globl", ".extern") or directive in SECTIONS:
        body = ""
        if directive == ".extern":
            for name in _split_names(args):
                program.externs.setdefault(name, origin)
    elif directive == ".ucs2":
        body = ucs2_directive(args, origin)
    elif directive in (".intel_syntax", ".att_syntax", ".code64"):
        raise PeasmError(f"{directive} is implied by peasm (Intel syntax, 64-bit); remove it", origin)
    text = scope.rewrite(body, i, origin) if body else ""

    if raw.depth or in_macro or directive == ".macro":
        # Inside a block body: labels stay as written (use \@ in macros), nothing addressable.
        if raw.labels and directive != ".macro":
            text = " ".join(f"{name}:" for name in raw.labels) + " " + text
        dest = program.prelude if (in_macro or directive == ".macro") else program.sections[section]
        if text.strip():
            dest.append(Stmt(text.strip(), origin, False))
        return

    for name in raw.labels:
        unit, pretty = scope.unit_label(name, i, origin)
        if unit == name:
            if name in program.globals:
                raise PeasmError(f"duplicate symbol {name!r} (first defined at {program.globals[name]})", origin)
            program.globals[name] = origin
        program.labels[unit] = Label(unit, pretty, origin, section, unit == name)
        program.sections[section].append(Stmt(f"{unit}:", origin))
    if not text:
        return
    const = _constant_name(body)
    if const:
        expr = body.split(",", 1)[-1] if directive else body.split("=", 1)[1]
        if not _uses_location_counter(expr):
            program.prelude.append(Stmt(text, origin, False))
            return
    program.sections[section].append(Stmt(text, origin, directive not in _OPEN_BLOCK))
