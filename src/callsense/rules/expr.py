"""Boolean expressions over numbered conditions: ``1 && (2 || !3)``.

Grammar (``&&`` binds tighter than ``||``; ``and``/``or``/``not`` are accepted as words)::

    expr  := and ("||" and)*
    and   := unary ("&&" unary)*
    unary := "!" unary | atom
    atom  := NUMBER | "(" expr ")"

:func:`parse` returns a tree of frozen nodes; :class:`ExprSyntaxError` carries the 0-based column
of the problem so the loader can point into the rule file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class ExprSyntaxError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Ref:
    number: int
    column: int = 0


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Ref | Not | And | Or

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<op>&&|\|\||!|\(|\))|(?P<word>[A-Za-z_]+)|(?P<bad>\S))")
_WORDS = {"and": "&&", "or": "||", "not": "!"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        pos = m.end()
        col = m.start(m.lastgroup) if m.lastgroup else m.start()
        if m.group("num"):
            out.append(("num", m.group("num"), col))
        elif m.group("op"):
            out.append(("op", m.group("op"), col))
        elif m.group("word"):
            word = m.group("word").lower()
            if word not in _WORDS:
                raise ExprSyntaxError(f"unexpected word {m.group('word')!r}", col)
            out.append(("op", _WORDS[word], col))
        else:
            ch = m.group("bad")
            hint = " (write && for and, || for or)" if ch in "&|" else ""
            raise ExprSyntaxError(f"unexpected character {ch!r}{hint}", col)
    out.append(("end", "", len(text)))
    return out


def parse(text: str) -> Expr:
    """Parse an expression; raises :class:`ExprSyntaxError` with the column of the problem."""
    toks = _tokens(str(text))
    pos = 0

    def peek() -> tuple[str, str, int]:
        return toks[pos]

    def take() -> tuple[str, str, int]:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        return tok

    def expr() -> Expr:
        parts = [conj()]
        while peek()[1] == "||":
            take()
            parts.append(conj())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conj() -> Expr:
        parts = [unary()]
        while peek()[1] == "&&":
            take()
            parts.append(unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary() -> Expr:
        if peek()[1] == "!":
            take()
            return Not(unary())
        return atom()

    def atom() -> Expr:
        kind, value, col = take()
        if kind == "num":
            return Ref(int(value), col)
        if value == "(":
            inner = expr()
            _, value2, col2 = take()
            if value2 != ")":
                raise ExprSyntaxError("missing ')'", col2)
            return inner
        if kind == "end":
            raise ExprSyntaxError("expression ends too early: expected a condition number", col)
        raise ExprSyntaxError(f"expected a condition number or '(', found {value!r}", col)

    tree = expr()
    kind, value, col = peek()
    if kind != "end":
        raise ExprSyntaxError(f"unexpected {value!r} (expected && or || between conditions)", col)
    return tree


def refs(tree: Expr) -> tuple[Ref, ...]:
    """Every condition reference, in reading order."""
    if isinstance(tree, Ref):
        return (tree,)
    if isinstance(tree, Not):
        return refs(tree.operand)
    return tuple(r for op in tree.operands for r in refs(op))


def evaluate(tree: Expr, values: Mapping[int, bool]) -> bool:
    if isinstance(tree, Ref):
        return bool(values.get(tree.number, False))
    if isinstance(tree, Not):
        return not evaluate(tree.operand, values)
    if isinstance(tree, And):
        return all(evaluate(op, values) for op in tree.operands)
    return any(evaluate(op, values) for op in tree.operands)


def support(tree: Expr, values: Mapping[int, bool], negated: bool = False) -> tuple[set[int], set[int]]:
    """Which conditions make a true expression true: (present conditions, absent conditions).

    Present ones contribute their evidence; absent ones (true under a ``!``) contribute the window
    that was searched without finding them.
    """
    present: set[int] = set()
    absent: set[int] = set()
    if isinstance(tree, Ref):
        if values.get(tree.number, False) != negated:
            (absent if negated else present).add(tree.number)
        return present, absent
    if isinstance(tree, Not):
        return support(tree.operand, values, not negated)
    # under negation And behaves as Or and vice versa (De Morgan)
    for op in tree.operands:
        if evaluate(op, values) != negated:
            p, a = support(op, values, negated)
            present |= p
            absent |= a
    return present, absent


def to_text(tree: Expr) -> str:
    if isinstance(tree, Ref):
        return str(tree.number)
    if isinstance(tree, Not):
        inner = to_text(tree.operand)
        return f"!{inner}" if isinstance(tree.operand, (Ref, Not)) else f"!({inner})"
    sep = " && " if isinstance(tree, And) else " || "
    return sep.join(to_text(op) if isinstance(op, (Ref, Not)) or isinstance(tree, Or) and isinstance(op, And)
                    else f"({to_text(op)})" for op in tree.operands)
