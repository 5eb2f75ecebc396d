"""Dependency expressions (spec 6): grammar, three-valued evaluation, scope and cycle checks."""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

from easytask.core.errors import DependencyError
from easytask.core.states import RunState

STATE_LETTERS: frozenset[str] = frozenset("IPAZDREFSGTOU")
MAX_NESTING = 32
CYCLE_MESSAGE = "circular dependency detected"
SINGLE_TASK_MESSAGE = "dependency cannot be defined for single task"

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_SPACE = frozenset(" \t\r\n\f\v")

OwnerKind = Literal["grouped", "group", "single"]


def _error(what: str, position: int) -> DependencyError:
    return DependencyError(f"{what} at position {position}", position)


@dataclass(frozen=True, slots=True)
class Term:
    """``STATE:NAME``: the referenced run (or group occurrence) is in the lettered state."""

    letter: str
    name: str

    def __post_init__(self) -> None:
        if self.letter not in STATE_LETTERS or not _NAME_CHARS.issuperset(self.name or " "):
            raise ValueError(f"bad term {self.letter!r}:{self.name!r}")


@dataclass(frozen=True, slots=True)
class Not:
    """Negation of one operand."""

    operand: Expr


class _Chain:
    """Shared check of And and Or: two or more operands, in source order."""

    __slots__ = ()
    operands: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two operands")


@dataclass(frozen=True, slots=True)
class And(_Chain):
    """Conjunction: ``a and b and ...``."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or(_Chain):
    """Disjunction: ``a or b or ...``."""

    operands: tuple[Expr, ...]


Expr = Term | Not | And | Or


class _Token(NamedTuple):
    kind: str  # "(", ")", "and", "or", "not", "term" or "end"
    pos: int
    text: str


class _Parser:
    """Recursive descent, one token of lookahead read on demand: the leftmost error wins."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.depth = 0
        self.tok = self._lex()

    def _skip(self, i: int, chars: frozenset[str]) -> int:
        while i < len(self.text) and self.text[i] in chars:
            i += 1
        return i

    def _lex(self) -> _Token:
        text = self.text
        start = self._skip(self.i, _SPACE)
        self.i = start + 1
        if start >= len(text):
            return _Token("end", len(text), "")
        if text[start] in "()":
            return _Token(text[start], start, text[start])
        if text[start] not in _NAME_CHARS:
            raise _error(f"unexpected {text[start]!r}", start)
        end = self.i = self._skip(start, _NAME_CHARS)
        word = text[start:end]
        if text[end : end + 1] == ":":
            return self._term(word, start, end + 1)
        if word in ("and", "or", "not"):
            return _Token(word, start, word)
        after = self._skip(end, _SPACE)
        if after > end and text[after : after + 1] == ":":
            raise _error("unexpected space before ':'", end)
        raise _error(f"unexpected {word!r}", start)

    def _term(self, letter: str, start: int, name_start: int) -> _Token:
        if letter not in STATE_LETTERS:
            raise _error(f"unknown state letter {letter!r}", start)
        end = self.i = self._skip(name_start, _NAME_CHARS)
        if end == name_start:
            space = self.text[end : end + 1] in _SPACE
            raise _error("unexpected space after ':'" if space else "expected name", end)
        return _Token("term", start, self.text[start:end])

    def advance(self) -> None:
        self.tok = self._lex()

    def unexpected(self) -> DependencyError:
        if self.tok.kind == "end":
            return DependencyError("unexpected end of expression", self.tok.pos)
        return _error(f"unexpected {self.tok.text!r}", self.tok.pos)

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.tok.kind == "or":
            self.advance()
            operands.append(self.and_expr())
        return Or(tuple(operands)) if len(operands) > 1 else operands[0]

    def and_expr(self) -> Expr:
        operands = [self.unary()]
        while self.tok.kind == "and":
            self.advance()
            operands.append(self.unary())
        return And(tuple(operands)) if len(operands) > 1 else operands[0]

    def unary(self) -> Expr:
        # A loop, not recursion: "not not not ..." chains are bounded only by the text length.
        count = 0
        while self.tok.kind == "not":
            self.advance()
            count += 1
        expr = self.primary()
        for _ in range(count):
            expr = Not(expr)
        return expr

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "term":
            self.advance()
            letter, _, name = tok.text.partition(":")
            return Term(letter, name)
        if tok.kind != "(":
            raise self.unexpected()
        if self.depth == MAX_NESTING:
            raise DependencyError(f"nesting deeper than {MAX_NESTING}", tok.pos)
        self.depth += 1
        self.advance()
        expr = self.or_expr()
        if self.tok.kind != ")":
            raise _error("expected ')'", self.tok.pos)
        self.depth -= 1
        self.advance()
        return expr


def parse_dependency(text: str) -> Expr | None:
    """Parse a dependency expression (spec 6.1); None when ``text`` is empty or blank.

    Redundant parentheses are dropped; those around an operator inside the same operator stay
    as nesting: ``(S:a and S:b) and S:c`` is ``And((And(...), Term(...)))``.

    Raises:
        DependencyError: Not the grammar; ``detail`` gives what and the 0-based position.
    """
    if not text.strip(" \t\r\n\f\v"):
        return None
    parser = _Parser(text)
    expr = parser.or_expr()
    if parser.tok.kind != "end":
        raise parser.unexpected()
    return expr


def _iter_terms(expr: Expr) -> Iterator[Term]:
    """Every term in source order, without recursion."""
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Term):
            yield node
        elif isinstance(node, Not):
            stack.append(node.operand)
        else:
            stack.extend(reversed(node.operands))


def terms(expr: Expr) -> list[Term]:
    """Every ``STATE:NAME`` term in source order (what a dependency graph draws as edges)."""
    return list(_iter_terms(expr))


def names(expr: Expr) -> set[str]:
    """The task or group names that ``expr`` references."""
    return {term.name for term in _iter_terms(expr)}


def _format_operand(expr: Expr, parent: type[And] | type[Or]) -> str:
    # "and" binds tighter than "or": only an operator under itself or an "or" under an "and"
    # needs parentheses.
    return f"({format_expr(expr)})" if isinstance(expr, (Or, parent)) else format_expr(expr)


def format_expr(expr: Expr) -> str:
    """Canonical text of ``expr``: single spaces, minimal parentheses.

    It parses back to ``expr`` if its parentheses nest at most 32 deep, as they do for any
    parsed expression: formatting never adds nesting.
    """
    count = 0
    while isinstance(expr, Not):
        count += 1
        expr = expr.operand
    if isinstance(expr, Term):
        return "not " * count + f"{expr.letter}:{expr.name}"
    keyword = " and " if isinstance(expr, And) else " or "
    body = keyword.join(_format_operand(op, type(expr)) for op in expr.operands)
    return f"{'not ' * count}({body})" if count else body


@dataclass(frozen=True, slots=True)
class TermValue:
    """A referenced run or group occurrence now: its state letter and whether it is settled.

    ``letter`` is None when its state has none; one that does not exist is ``(None, True)``.
    """

    letter: str | None
    settled: bool

    @classmethod
    def of_state(cls, state: RunState | None) -> TermValue:
        """The value for ``state``; None (it does not exist) is false and settled (spec 6.4)."""
        return cls(None, True) if state is None else cls(state.letter, state.final)


Lookup = Callable[[str], TermValue]


def _combine(ops: tuple[Expr, ...], lookup: Lookup, decisive: bool, strict: bool) -> bool | None:
    """Kleene and (``decisive=False``) or or (``decisive=True``), stopping once decided."""
    unknown = False
    for operand in ops:
        value = evaluate(operand, lookup, open_as_unknown=strict)
        if value is decisive:
            return decisive
        unknown = unknown or value is None
    return None if unknown else not decisive


def evaluate(expr: Expr, lookup: Lookup, *, open_as_unknown: bool = False) -> bool | None:
    """Evaluate ``expr`` in Kleene three-valued logic (spec 6.4); ``readiness`` decides with it.

    A term is True when the letter matches, else False if its run is settled, else None; with
    ``open_as_unknown`` every open term is None. True triggers. Only False with open terms
    unknown means "can no longer be met" (by default ``not R:a`` is False while a is RUNNING).
    ``lookup`` is not called for operands after the one that decides an ``and``/``or``.
    """
    negate = False
    while isinstance(expr, Not):
        negate = not negate
        expr = expr.operand
    if isinstance(expr, Term):
        value = lookup(expr.name)
        match = value.letter == expr.letter
        result = None if not value.settled and (open_as_unknown or not match) else match
    else:
        result = _combine(expr.operands, lookup, isinstance(expr, Or), open_as_unknown)
    return result if result is None or not negate else not result


class Readiness(StrEnum):
    """Spec 6.4: MET triggers, WAITING re-evaluates on the next change, UNMET ends SKIPPED."""

    MET = "met"
    WAITING = "waiting"
    UNMET = "unmet"


def readiness(expr: Expr, lookup: Lookup) -> Readiness:
    """The scheduler's decision: MET if true, UNMET if false with every open term unknown."""
    if evaluate(expr, lookup):
        return Readiness.MET
    unmet = evaluate(expr, lookup, open_as_unknown=True) is False
    return Readiness.UNMET if unmet else Readiness.WAITING


def check_scope(
    owner_kind: OwnerKind,
    owner_group: str | None,
    expr: Expr | None,
    tasks_by_name: Mapping[str, str | None],
    groups: AbstractSet[str],
) -> list[str]:
    """Spec 6.3 scope messages for ``expr``, one per offending name in order of appearance.

    A reference to the owner itself is in scope here: ``find_cycle`` reports it.

    Args:
        owner_kind: ``"grouped"`` (a grouped task), ``"group"`` (a task group) or ``"single"``.
        owner_group: The grouped task's group, or the group's own name; None for a single task.
        expr: The owner's parsed expression; None means no dependency.
        tasks_by_name: Every task of the instance after the change -> its group (None: single).
        groups: Every group name of the instance after the change.
    """
    if owner_kind not in ("grouped", "group", "single"):
        raise ValueError(f"unknown owner kind {owner_kind!r}")
    if expr is None:
        return []
    if owner_kind == "single":
        return [SINGLE_TASK_MESSAGE]
    if owner_group is None:
        raise ValueError(f"owner_group is required for owner kind {owner_kind!r}")
    errors: list[str] = []
    for name in dict.fromkeys(term.name for term in _iter_terms(expr)):
        if owner_kind == "group":
            if name not in groups:
                errors.append(f"dependency references {name} which is not a task group")
        elif name not in tasks_by_name:
            errors.append(f"dependency references unknown task {name}")
        elif tasks_by_name[name] != owner_group:
            errors.append(f"dependency references {name} outside task group {owner_group}")
    return errors


def find_cycle(edges: Mapping[str, AbstractSet[str]]) -> list[str] | None:
    """A cycle in ``edges`` (owner -> names it references) as a closed path, else None.

    ``["a", "b", "a"]``; ``["a", "a"]`` for a self-reference. Deterministic (sorted visiting
    order) and iterative, so long chains do not hit the recursion limit.
    """
    done: set[str] = set()
    for root in sorted(edges):
        if root in done:
            continue
        path, on_path, stack = [root], {root}, [iter(sorted(edges[root]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def cycle_detail(path: list[str]) -> str:
    """The detail text of a cycle: ``a -> b -> a``."""
    return " -> ".join(path)


def cycle_message(path: list[str]) -> str:
    """The full validation message: ``circular dependency detected (a -> b -> a)``."""
    return f"{CYCLE_MESSAGE} ({cycle_detail(path)})"
