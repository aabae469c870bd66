"""Numeric constants folded into the statements before keystone sees them.

keystone 0.9.2 mis-encodes memory operands that mix an `.equ` symbol with a label, a
subtraction or another term: `[rip + label + EQU]` drops the label, `[rbx - EQU]` adds,
`[rbx + EQU * 2]` ignores the factor (tests/test_keystone_facts.py shows each), while the
same operands written with plain numbers are right. So peasm evaluates every constant whose
definition is integer arithmetic over numbers and other constants, and writes its value in
place of its name wherever it is used. Definitions that involve labels or `.` are left to
the assembler.
"""
from __future__ import annotations

import ast
import operator
import re

from peasm.source import IDENT, Program, _constant_name

_DEF = re.compile(r"^\s*(?:\.(?:equ|set)\s+(?P<n1>" + IDENT + r")\s*,(?P<e1>.*)|(?P<n2>" + IDENT + r")\s*=(?!=)(?P<e2>.*))$",
                  re.IGNORECASE)
_WORD = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'?|(?P<ident>' + IDENT + r")")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_,
        ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.Mod: operator.mod}
_MASK = 2**64 - 1


class _NotConstant(Exception):
    pass


def _evaluate(expr: str, known: dict[str, int]) -> int:
    text = expr.strip()
    if not text:
        raise _NotConstant
    # GAS literals to Python: 0x/0b stay, 'c' character literals become numbers
    text = re.sub(r"'(\\?.)'", lambda m: str(ord(m.group(1)[-1])), text)

    def name(m: re.Match) -> str:
        word = m.group(0)
        if word in known:
            return f"({known[word]})"
        raise _NotConstant
    text = re.sub(r"(?<![\w.$@])[A-Za-z_.$@][\w.$@]*", name, text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise _NotConstant from None

    def ev(node) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else ~v if isinstance(node.op, ast.Invert) else v
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, (ast.Div, ast.FloorDiv)):
                if b == 0:
                    raise _NotConstant
                q = abs(a) // abs(b)
                return q if (a >= 0) == (b >= 0) else -q   # GAS: truncating division
            op = _OPS.get(type(node.op))
            if op is None or (isinstance(node.op, ast.Mod) and b == 0):
                raise _NotConstant
            if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= b < 64:
                raise _NotConstant
            return op(a, b)
        raise _NotConstant
    value = ev(tree)
    if not -(1 << 63) <= value < (1 << 64):
        raise _NotConstant             # out of 64 bits: leave it to the assembler to refuse
    return value


def _literal(value: int) -> str:
    # Hexadecimal always: once a symbol resolver is installed (peasm's error-locating runs),
    # keystone reads a decimal immediate as if it were hex (1000 -> 0x1000, and 1073741824
    # becomes an invalid operand), so decimal literals would put an error on the wrong line.
    if value < 0:
        return f"(-0x{-value:x})"      # keystone reads [rbx + (-8)] right, not [rbx - -8]
    return f"0x{value:x}"


def fold_constants(program: Program) -> dict[str, int]:
    """Evaluate the program's constants and substitute them into its statements."""
    known: dict[str, int] = {}
    for stmt in program.prelude:
        m = _DEF.match(stmt.text)
        if not m:
            continue
        name = m.group("n1") or m.group("n2")
        try:
            known[name] = _evaluate(m.group("e1") if m.group("n1") else m.group("e2"), known)
        except _NotConstant:
            known.pop(name, None)

    def substitute(text: str) -> str:
        def sub(m: re.Match) -> str:
            word = m.group("ident")
            if word is None or word not in known:
                return m.group(0)
            if m.start() > 0 and text[m.start() - 1] == "\\":
                return m.group(0)          # a macro parameter, \name
            return _literal(known[word])
        return _WORD.sub(sub, text)

    for stmt in program.prelude:
        if _DEF.match(stmt.text) or stmt.text.lower().startswith(".macro"):
            continue
        stmt.text = substitute(stmt.text)
    for stmts in program.sections.values():
        for stmt in stmts:
            if stmt.text.endswith(":") or stmt.text.lower().startswith(".macro"):
                continue
            if _constant_name(stmt.text):
                continue
            stmt.text = substitute(stmt.text)
    return known

