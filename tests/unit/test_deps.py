"""Dependency expressions (spec 6): grammar, formatting, three-valued evaluation, scope, cycles."""

from __future__ import annotations

import graphlib
import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from easytask.core.deps import (
    CYCLE_MESSAGE,
    STATE_LETTERS,
    And,
    Expr,
    Not,
    Or,
    Readiness,
    Term,
    TermValue,
    check_scope,
    cycle_detail,
    cycle_message,
    evaluate,
    find_cycle,
    format_expr,
    names,
    parse_dependency,
    readiness,
)
from easytask.core.errors import DependencyError, EasyTaskError
from easytask.core.states import RunState


def parse(text: str) -> Expr:
    expr = parse_dependency(text)
    assert expr is not None
    return expr


def T(spec: str) -> Term:
    letter, _, name = spec.partition(":")
    return Term(letter, name)


# --- 6.1 grammar: valid input -------------------------------------------------------------------

VALID: list[tuple[str, Expr]] = [
    # The three examples of spec 6.1.
    ("(S:a) and (S:b)", And((T("S:a"), T("S:b")))),
    ("S:a and S:b", And((T("S:a"), T("S:b")))),
    (
        "(S:extract and S:transform) or (F:load and not S:notify)",
        Or(
            (
                And((T("S:extract"), T("S:transform"))),
                And((T("F:load"), Not(T("S:notify")))),
            )
        ),
    ),
    # Nested not, with and without parentheses.
    ("not not S:a", Not(Not(T("S:a")))),
    ("not (not S:a)", Not(Not(T("S:a")))),
    ("not (S:a or F:b)", Not(Or((T("S:a"), T("F:b"))))),
    ("not(S:a)and(F:b)", And((Not(T("S:a")), T("F:b")))),
    # Precedence: not > and > or.
    ("S:a or S:b and S:c", Or((T("S:a"), And((T("S:b"), T("S:c")))))),
    ("S:a and S:b or S:c", Or((And((T("S:a"), T("S:b"))), T("S:c")))),
    ("not S:a and S:b", And((Not(T("S:a")), T("S:b")))),
    ("not S:a or S:b", Or((Not(T("S:a")), T("S:b")))),
    ("(S:a or S:b) and S:c", And((Or((T("S:a"), T("S:b"))), T("S:c")))),
    # Chains are n-ary; explicit grouping of the same operator stays nested.
    ("S:a and S:b and S:c", And((T("S:a"), T("S:b"), T("S:c")))),
    ("S:a or S:b or S:c", Or((T("S:a"), T("S:b"), T("S:c")))),
    ("(S:a and S:b) and S:c", And((And((T("S:a"), T("S:b"))), T("S:c")))),
    ("S:a or (S:b or S:c)", Or((T("S:a"), Or((T("S:b"), T("S:c")))))),
    # Redundant parentheses and whitespace.
    ("((S:a))", T("S:a")),
    ("  S:a\tand\nS:b  ", And((T("S:a"), T("S:b")))),
    ("(" * 32 + "S:a" + ")" * 32, T("S:a")),
    # NAME charset, including names that look like keywords or letters.
    ("S:Extract_2.v-1", T("S:Extract_2.v-1")),
    ("S:and", T("S:and")),
    ("S:S", T("S:S")),
    ("S:123", T("S:123")),
    ("S:-", T("S:-")),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_parse_valid(text: str, expected: Expr) -> None:
    assert parse_dependency(text) == expected


@pytest.mark.parametrize("letter", sorted("IPAZDREFSGTOU"))
def test_every_state_letter(letter: str) -> None:
    assert parse_dependency(f"{letter}:task1") == Term(letter, "task1")


def test_state_letters_are_the_spec_table() -> None:
    letters = {state.letter for state in RunState} - {None}
    assert letters == STATE_LETTERS == set("IPAZDREFSGTOU")


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_empty_means_no_dependency(text: str) -> None:
    assert parse_dependency(text) is None


# --- 6.1 grammar: malformed input ---------------------------------------------------------------

MALFORMED: list[tuple[str, str, int | None]] = [
    ("s:a", "unknown state letter 's' at position 0", 0),
    ("S:a and x:b", "unknown state letter 'x' at position 8", 8),
    ("X:a", "unknown state letter 'X' at position 0", 0),
    ("SS:a", "unknown state letter 'SS' at position 0", 0),
    ("S:a AND S:b", "unexpected 'AND' at position 4", 4),
    ("S:a Or S:b", "unexpected 'Or' at position 4", 4),
    ("NOT S:a", "unexpected 'NOT' at position 0", 0),
    ("S :a", "unexpected space before ':' at position 1", 1),
    ("S: a", "unexpected space after ':' at position 2", 2),
    ("S : a", "unexpected space before ':' at position 1", 1),
    ("S:", "expected name at position 2", 2),
    ("S:(a)", "expected name at position 2", 2),
    ("S:a and", "unexpected end of expression", 7),
    ("S:a or ", "unexpected end of expression", 7),
    ("not", "unexpected end of expression", 3),
    ("S:a or and S:b", "unexpected 'and' at position 7", 7),
    ("and S:a", "unexpected 'and' at position 0", 0),
    ("S:a not S:b", "unexpected 'not' at position 4", 4),
    ("S:a S:b", "unexpected 'S:b' at position 4", 4),
    ("(S:a and S:b", "expected ')' at position 12", 12),
    ("(S:a S:b)", "expected ')' at position 5", 5),
    ("((S:a)", "expected ')' at position 6", 6),
    ("S:a)", "unexpected ')' at position 3", 3),
    ("()", "unexpected ')' at position 1", 1),
    ("S:a and ()", "unexpected ')' at position 9", 9),
    ("(" * 33 + "S:a" + ")" * 33, "nesting deeper than 32", 32),
    ("S:a & S:b", "unexpected '&' at position 4", 4),
    ("S:a && S:b", "unexpected '&' at position 4", 4),
    ("S:a, S:b", "unexpected ',' at position 3", 3),
    ("S:a:b", "unexpected ':' at position 3", 3),
    (":a", "unexpected ':' at position 0", 0),
    ("S:é", "expected name at position 2", 2),
    ("task1", "unexpected 'task1' at position 0", 0),
    # The leftmost problem is the one reported.
    ("S:a and and X:b", "unexpected 'and' at position 8", 8),
]


@pytest.mark.parametrize(("text", "detail", "position"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_parse_malformed(text: str, detail: str, position: int | None) -> None:
    with pytest.raises(DependencyError) as info:
        parse_dependency(text)
    assert info.value.detail == detail
    assert info.value.position == position
    assert info.value.message == f"Bad dependency expression ({detail})"


def test_dependency_error_hierarchy() -> None:
    err = DependencyError("unexpected end of expression")
    assert isinstance(err, EasyTaskError)
    assert isinstance(err, ValueError)
    assert str(err) == err.message == "Bad dependency expression (unexpected end of expression)"


def test_long_not_chain_needs_no_recursion() -> None:
    text = "not " * 5000 + "S:a"
    expr = parse(text)
    assert format_expr(expr) == text
    assert names(expr) == {"a"}
    assert evaluate(expr, lambda _: TermValue("S", True)) is True


@pytest.mark.parametrize(
    "build",
    [
        lambda: Term("s", "a"),
        lambda: Term("SS", "a"),
        lambda: Term("S", ""),
        lambda: Term("S", "a b"),
        lambda: And((T("S:a"),)),
        lambda: Or(()),
    ],
)
def test_ast_rejects_what_cannot_be_written(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# --- names and canonical format -----------------------------------------------------------------


def test_names() -> None:
    expr = parse("(S:extract and S:transform) or (F:load and not S:notify) or F:load")
    assert names(expr) == {"extract", "transform", "load", "notify"}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("(S:a) and (S:b)", "S:a and S:b"),
        ("  S:a   or\tS:b ", "S:a or S:b"),
        (
            "(S:extract and S:transform) or (F:load and not S:notify)",
            "S:extract and S:transform or F:load and not S:notify",
        ),
        ("(S:a or S:b) and S:c", "(S:a or S:b) and S:c"),
        ("(S:a and S:b) and S:c", "(S:a and S:b) and S:c"),
        ("not (S:a and S:b)", "not (S:a and S:b)"),
        ("not(not(S:a))", "not not S:a"),
        ("S:a and not (S:b or S:c)", "S:a and not (S:b or S:c)"),
    ],
)
def test_format_canonical(text: str, canonical: str) -> None:
    assert format_expr(parse(text)) == canonical
    assert parse(canonical) == parse(text)


NAMES = st.from_regex(r"[A-Za-z0-9_.-]{1,6}", fullmatch=True)
TERMS = st.builds(Term, st.sampled_from(sorted(STATE_LETTERS)), NAMES)


def exprs(terms: st.SearchStrategy[Term] = TERMS, max_leaves: int = 12) -> st.SearchStrategy[Expr]:
    """Random ASTs; parentheses in their canonical text nest far less than 32 deep."""

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        operands = st.lists(children, min_size=2, max_size=4).map(tuple)
        return st.one_of(children.map(Not), operands.map(And), operands.map(Or))

    return st.recursive(terms, extend, max_leaves=max_leaves)


@given(exprs())
def test_format_parse_round_trip(expr: Expr) -> None:
    text = format_expr(expr)
    assert parse_dependency(text) == expr
    assert format_expr(parse(text)) == text


def noisy(expr: Expr, data: st.DataObject) -> str:
    """Text for ``expr`` with random whitespace and redundant parentheses."""
    space = data.draw(st.sampled_from(["", " ", "  ", "\t", "\n"]))
    gap = data.draw(st.sampled_from([" ", "  ", "\t", " \n "]))
    if isinstance(expr, Term):
        text = f"{expr.letter}:{expr.name}"
    elif isinstance(expr, Not):
        text = f"not{gap}({noisy(expr.operand, data)})"
    else:
        keyword = f"{gap}and{gap}" if isinstance(expr, And) else f"{gap}or{gap}"
        text = keyword.join(f"({noisy(op, data)})" for op in expr.operands)
    return f"{space}({space}{text}{space}){space}" if data.draw(st.booleans()) else text


@settings(max_examples=60)
@given(st.data())
def test_whitespace_and_redundant_parens_do_not_matter(data: st.DataObject) -> None:
    expr = data.draw(exprs(max_leaves=5))
    assert parse_dependency(noisy(expr, data)) == expr


@given(st.text(alphabet="SFXs:ab ()andortTnO&-.\t", max_size=40))
def test_parser_only_raises_dependency_error(text: str) -> None:
    try:
        expr = parse_dependency(text)
    except DependencyError as err:
        assert err.detail
        assert err.position is None or 0 <= err.position <= len(text)
    else:
        if expr is not None:
            assert parse(format_expr(expr)) == expr


# --- 6.4 three-valued evaluation ----------------------------------------------------------------

RUNNING = TermValue("R", False)
PENDING = TermValue(None, False)
SUCCESS = TermValue("S", True)
FAILED = TermValue("F", True)
SKIPPED = TermValue(None, True)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("S:a", {"a": SUCCESS}, True),
        ("S:a", {"a": FAILED}, False),
        ("S:a", {"a": RUNNING}, None),
        ("S:a", {"a": PENDING}, None),
        ("S:a", {"a": SKIPPED}, False),
        ("R:a", {"a": RUNNING}, True),  # a matching open term is true
        ("not S:a", {"a": RUNNING}, None),
        ("not S:a", {"a": SKIPPED}, True),
        ("S:a and S:b", {"a": SUCCESS, "b": RUNNING}, None),
        ("S:a and S:b", {"a": SUCCESS, "b": FAILED}, False),
        ("S:a and S:b", {"a": FAILED, "b": RUNNING}, False),  # can no longer be met
        ("S:a or S:b", {"a": RUNNING, "b": SUCCESS}, True),
        ("S:a or S:b", {"a": RUNNING, "b": FAILED}, None),
        ("S:a or S:b", {"a": FAILED, "b": SKIPPED}, False),
        # Kleene, not "every completion": an open a leaves "S:a or not S:a" unknown.
        ("S:a or not S:a", {"a": RUNNING}, None),
        # A matching open term is true, so its negation is false while it matches.
        ("not R:a", {"a": RUNNING}, False),
        (
            "(S:extract and S:transform) or (F:load and not S:notify)",
            {"extract": SUCCESS, "transform": FAILED, "load": FAILED, "notify": RUNNING},
            None,
        ),
        (
            "(S:extract and S:transform) or (F:load and not S:notify)",
            {"extract": SUCCESS, "transform": FAILED, "load": FAILED, "notify": FAILED},
            True,
        ),
        (
            "(S:extract and S:transform) or (F:load and not S:notify)",
            {"extract": RUNNING, "transform": FAILED, "load": SUCCESS, "notify": RUNNING},
            False,
        ),
    ],
)
def test_evaluate_cases(text: str, values: Mapping[str, TermValue], expected: bool | None) -> None:
    assert evaluate(parse(text), values.__getitem__) is expected


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("S:a and S:b", {"a": SUCCESS, "b": SUCCESS}, Readiness.MET),
        ("S:a and S:b", {"a": SUCCESS, "b": RUNNING}, Readiness.WAITING),
        ("S:a and S:b", {"a": FAILED, "b": RUNNING}, Readiness.UNMET),
        ("R:a", {"a": RUNNING}, Readiness.MET),  # true now triggers, even if a run is open
        ("not S:a", {"a": RUNNING}, Readiness.WAITING),
        ("not S:a", {"a": FAILED}, Readiness.MET),
        ("not S:a", {"a": SUCCESS}, Readiness.UNMET),
        ("not R:a or S:b", {"a": RUNNING, "b": FAILED}, Readiness.WAITING),
        ("S:a or not R:b", {"a": SKIPPED, "b": SKIPPED}, Readiness.MET),
    ],
)
def test_readiness(text: str, values: Mapping[str, TermValue], expected: Readiness) -> None:
    assert readiness(parse(text), values.__getitem__) is expected


@pytest.mark.parametrize("state", list(RunState))
def test_term_value_of_state(state: RunState) -> None:
    assert TermValue.of_state(state) == TermValue(state.letter, state.final)


def test_term_value_of_missing_is_false_and_settled() -> None:
    value = TermValue.of_state(None)
    assert value == TermValue(None, True)
    assert evaluate(parse("S:g"), lambda _: value) is False
    assert evaluate(parse("not S:g"), lambda _: value) is True


def test_skipped_run_is_settled_false() -> None:
    # PENDING and SKIPPED have no letter; only SKIPPED is final.
    assert evaluate(parse("S:a"), lambda _: TermValue.of_state(RunState.SKIPPED)) is False
    assert evaluate(parse("S:a"), lambda _: TermValue.of_state(RunState.PENDING)) is None


POOL = ["a", "b", "c", "d"]
POOL_TERMS = st.builds(Term, st.sampled_from(["S", "F", "R"]), st.sampled_from(POOL))
VALUES = st.builds(TermValue, st.sampled_from(["S", "F", "R", "T", None]), st.booleans())
ASSIGNMENTS = st.fixed_dictionaries({name: VALUES for name in POOL})


def reference(expr: Expr, values: Mapping[str, TermValue], strict: bool = False) -> bool | None:
    """Kleene logic as numbers: false 0, unknown 1, true 2; not = 2 - x, and = min, or = max."""

    def score(node: Expr) -> int:
        if isinstance(node, Term):
            value = values[node.name]
            if not value.settled and (strict or value.letter != node.letter):
                return 1
            return 2 if value.letter == node.letter else 0
        if isinstance(node, Not):
            return 2 - score(node.operand)
        scores = [score(op) for op in node.operands]
        return min(scores) if isinstance(node, And) else max(scores)

    return {0: False, 1: None, 2: True}[score(expr)]


@given(exprs(POOL_TERMS), ASSIGNMENTS)
def test_evaluate_matches_reference(expr: Expr, values: dict[str, TermValue]) -> None:
    assert evaluate(expr, values.__getitem__) is reference(expr, values)
    strict = evaluate(expr, values.__getitem__, open_as_unknown=True)
    assert strict is reference(expr, values, strict=True)


@given(exprs(POOL_TERMS), ASSIGNMENTS, ASSIGNMENTS)
def test_definite_result_with_open_terms_unknown_holds_whatever_open_runs_do(
    expr: Expr, values: dict[str, TermValue], future: dict[str, TermValue]
) -> None:
    # Settled runs keep their value; open ones may move to any state, settled or not.
    result = evaluate(expr, values.__getitem__, open_as_unknown=True)
    later = {name: value if value.settled else future[name] for name, value in values.items()}
    if result is not None:
        assert evaluate(expr, later.__getitem__) is result
        assert evaluate(expr, later.__getitem__, open_as_unknown=True) is result
    if result is False:
        assert readiness(expr, later.__getitem__) is Readiness.UNMET


@given(exprs(POOL_TERMS), ASSIGNMENTS)
def test_readiness_combines_both_modes(expr: Expr, values: dict[str, TermValue]) -> None:
    lookup = values.__getitem__
    decision = readiness(expr, lookup)
    assert (decision is Readiness.MET) == (evaluate(expr, lookup) is True)
    if decision is not Readiness.MET:
        unmet = evaluate(expr, lookup, open_as_unknown=True) is False
        assert (decision is Readiness.UNMET) == unmet


def test_matching_open_term_under_not_is_not_unmet() -> None:
    # "not R:a" is false while a runs, but a will leave RUNNING: wait, do not skip.
    expr = parse("not R:a")
    assert evaluate(expr, lambda _: RUNNING) is False
    assert evaluate(expr, lambda _: RUNNING, open_as_unknown=True) is None
    assert readiness(expr, lambda _: RUNNING) is Readiness.WAITING
    assert readiness(expr, lambda _: SUCCESS) is Readiness.MET


# --- 6.3 scope ----------------------------------------------------------------------------------

TASKS: dict[str, str | None] = {
    "extract": "etl",
    "transform": "etl",
    "load": "etl",
    "report": "reports",
    "lonely": None,
}
GROUPS = {"etl", "reports", "archive"}


@pytest.mark.parametrize(
    ("kind", "group", "text", "expected"),
    [
        ("grouped", "etl", "S:extract and S:transform", []),
        ("grouped", "etl", "S:load", []),  # the owner itself: left to the cycle check
        ("grouped", "etl", "S:nope", ["dependency references unknown task nope"]),
        ("grouped", "etl", "S:report", ["dependency references report outside task group etl"]),
        ("grouped", "etl", "S:lonely", ["dependency references lonely outside task group etl"]),
        ("grouped", "etl", "S:reports", ["dependency references unknown task reports"]),
        (
            "grouped",
            "etl",
            "S:zz or F:report and not S:zz or S:extract",
            [
                "dependency references unknown task zz",
                "dependency references report outside task group etl",
            ],
        ),
        ("group", "reports", "S:etl and F:archive", []),
        (
            "group",
            "reports",
            "S:extract",
            ["dependency references extract which is not a task group"],
        ),
        ("group", "reports", "S:nope", ["dependency references nope which is not a task group"]),
        ("single", None, "S:extract", ["dependency cannot be defined for single task"]),
    ],
)
def test_check_scope(kind: str, group: str | None, text: str, expected: list[str]) -> None:
    assert check_scope(kind, group, parse(text), TASKS, GROUPS) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["grouped", "group", "single"])
def test_check_scope_without_expression(kind: str) -> None:
    assert check_scope(kind, "etl", None, TASKS, GROUPS) == []  # type: ignore[arg-type]


def test_check_scope_rejects_bad_owner() -> None:
    with pytest.raises(ValueError):
        check_scope("task", "etl", T("S:a"), TASKS, GROUPS)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        check_scope("grouped", None, T("S:a"), TASKS, GROUPS)


# --- cycles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({}, None),
        ({"a": set()}, None),
        ({"a": {"a"}}, ["a", "a"]),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"b"}}, ["b", "c", "d", "b"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, None),  # diamond
        ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}}, None),  # d only a target
        ({"x": {"y"}, "y": {"z"}, "z": {"x"}, "a": {"x"}}, ["x", "y", "z", "x"]),
    ],
)
def test_find_cycle(edges: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(edges) == expected


def test_cycle_texts() -> None:
    assert cycle_detail(["a", "b", "a"]) == "a -> b -> a"
    assert cycle_message(["a", "a"]) == f"{CYCLE_MESSAGE} (a -> a)"
    assert CYCLE_MESSAGE == "circular dependency detected"


def test_long_chain_needs_no_recursion() -> None:
    edges = {f"t{i}": {f"t{i + 1}"} for i in range(5000)}
    assert find_cycle(edges) is None
    edges["t5000"] = {"t0"}
    path = find_cycle(edges)
    assert path is not None
    assert len(path) == 5002


GRAPHS = st.dictionaries(
    st.sampled_from("abcdefg"), st.sets(st.sampled_from("abcdefgh"), max_size=3), max_size=7
)


@given(GRAPHS)
def test_find_cycle_agrees_with_graphlib(edges: dict[str, set[str]]) -> None:
    path = find_cycle(edges)
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError:
        assert path is not None
        assert path[0] == path[-1]
        assert len(set(path)) == len(path) - 1
        assert all(b in edges.get(a, set()) for a, b in itertools.pairwise(path))
    else:
        assert path is None


def test_scope_and_cycle_from_expressions() -> None:
    # How validation uses the module: parse every expression of a group, then look for cycles.
    exprs_by_task = {"a": parse("S:b and not F:c"), "b": parse("S:c"), "c": parse("S:a or S:x")}
    edges = {task: names(expr) for task, expr in exprs_by_task.items()}
    path = find_cycle(edges)
    assert path == ["a", "b", "c", "a"]
    assert cycle_message(path) == "circular dependency detected (a -> b -> c -> a)"
