"""Mutants of a reference answer: one small change each, inside the solution region only.

The operators are mutmut's (`mutmut.mutation.mutators.mutation_operators`, used as a library
on libcst nodes: numbers + 1, strings changed, True/False swapped, an assignment's value
replaced by None, arithmetic, comparison and boolean operators swapped, a call's argument
replaced by None or dropped, ...) plus the ones below, which mutmut does not have and which
are the usual mistakes in array code:

- `number_minus_one`: a constant shifted down by one (mutmut only shifts up);
- `slice_bound_shift`: a non-constant slice bound shifted by one either way (`a[top:top + n]`);
- `keyword_dropped`: a keyword argument dropped even when it is the only argument;
- `call_removed`: a call replaced by its first positional argument (`tf.nn.relu(z)` -> `z`), or a
  call made as a statement replaced by `pass` (`w.assign_sub(...)`);
- `matmul_to_multiply`: `a @ b` -> `a * b`;
- `name_swapped`: a reduction or dtype swapped for its twin (`reduce_mean` <-> `reduce_sum`,
  `argmax` <-> `argmin`, `float32` -> `float64`, ...).

Mutants that do not parse, or whose AST equals the original's, are not made; identical mutants
from two operators are made once.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider
from mutmut.mutation.mutators import mutation_operators as MUTMUT_OPERATORS

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"

_TWINS = {
    "reduce_mean": "reduce_sum",
    "reduce_sum": "reduce_mean",
    "reduce_max": "reduce_min",
    "reduce_min": "reduce_max",
    "mean": "sum",
    "sum": "mean",
    "argmax": "argmin",
    "argmin": "argmax",
    "max": "min",
    "min": "max",
    "float32": "float64",
    "float64": "float32",
}


def number_minus_one(node: cst.BaseNumber) -> Iterable[cst.BaseNumber]:
    if isinstance(node, (cst.Integer, cst.Float)):
        value = node.evaluated_value - 1
        if value >= 0:  # 0 - 1 needs a unary minus: mutmut's None and + 1 cover 0 already
            yield node.with_changes(value=repr(value))


def slice_bound_shift(node: cst.Slice) -> Iterable[cst.Slice]:
    for field in ("lower", "upper"):
        bound = getattr(node, field)
        if bound is None or isinstance(bound, cst.BaseNumber):
            continue  # constants are shifted by the number operators
        for op in (cst.Add(), cst.Subtract()):
            shifted = cst.BinaryOperation(left=bound, operator=op, right=cst.Integer("1"))
            yield node.with_changes(**{field: shifted})


def keyword_dropped(node: cst.Call) -> Iterable[cst.Call]:
    if len(node.args) == 1 and node.args[0].keyword is not None:
        yield node.with_changes(args=[])


def call_removed(node: cst.Call) -> Iterable[cst.BaseExpression]:
    positional = [a for a in node.args if a.keyword is None and not a.star]
    if positional:
        yield positional[0].value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def call_statement_removed(node: cst.Expr) -> Iterable[cst.BaseSmallStatement]:
    if isinstance(node.value, cst.Call):
        yield cst.Pass()


def matmul_to_multiply(node: cst.BinaryOperation) -> Iterable[cst.BinaryOperation]:
    if isinstance(node.operator, cst.MatrixMultiply):
        yield node.with_changes(operator=cst.Multiply())


def name_swapped(node: cst.Attribute) -> Iterable[cst.Attribute]:
    twin = _TWINS.get(node.attr.value)
    if twin:
        yield node.with_changes(attr=cst.Name(twin))


OUR_OPERATORS: list[tuple[type, Callable[..., Iterable[cst.CSTNode]]]] = [
    (cst.BaseNumber, number_minus_one),
    (cst.Slice, slice_bound_shift),
    (cst.Call, keyword_dropped),
    (cst.Call, call_removed),
    (cst.Expr, call_statement_removed),
    (cst.BinaryOperation, matmul_to_multiply),
    (cst.Attribute, name_swapped),
]
OPERATORS = [*MUTMUT_OPERATORS, *OUR_OPERATORS]


@dataclass(frozen=True)
class Mutant:
    exercise: str  # the answer cell's grade_id
    source: str  # the whole answer cell, mutated, as a student would submit it
    operator: str
    diff: tuple[str, ...]  # "- old line" / "+ new line"

    @property
    def key(self) -> str:
        """Stable name of this mutant (the triage list uses it): its changed lines."""
        return " | ".join(self.diff)


def solution_lines(cell_source: str) -> tuple[str, set[int]]:
    """The answer as a student types it (marker lines removed), and its 1-based line numbers
    that were inside a solution region."""
    kept, region, inside = [], set(), False
    for line in cell_source.splitlines():
        if line.strip() == SOLUTION_BEGIN:
            inside = True
            continue
        if line.strip() == SOLUTION_END:
            inside = False
            continue
        kept.append(line)
        if inside:
            region.add(len(kept))
    return "\n".join(kept), region


def mutants(exercise: str, cell_source: str) -> list[Mutant]:
    """Every mutant of one answer cell, in source order."""
    answer, region = solution_lines(cell_source)
    module = cst.parse_module(answer)
    original = ast.dump(ast.parse(answer))
    made: dict[str, Mutant] = {}
    for node, mutated, name in _mutations(module, region):
        code = module.deep_replace(node, mutated).code
        if code in made or not _changes_meaning(code, original):
            continue
        made[code] = Mutant(exercise, code, name, _diff(answer, code))
    return list(made.values())


def _mutations(
    module: cst.Module, region: set[int]
) -> Iterator[tuple[cst.CSTNode, cst.CSTNode, str]]:
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    for node in _walk(module):
        where = positions.get(node)
        if where is None or not {where.start.line, where.end.line} <= region:
            continue
        for node_type, operator in OPERATORS:
            if isinstance(node, node_type):
                for mutated in operator(node):
                    yield node, mutated, operator.__name__


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    if isinstance(node, cst.Annotation):
        return
    yield node
    for child in node.children:
        yield from _walk(child)


def _changes_meaning(code: str, original_dump: str) -> bool:
    try:
        return ast.dump(ast.parse(code)) != original_dump
    except SyntaxError:
        return False


def _diff(before: str, after: str) -> tuple[str, ...]:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return tuple(
        f"{ln[0]} {ln[1:].strip()}"
        for ln in lines
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    )
