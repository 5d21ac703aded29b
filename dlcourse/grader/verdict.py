"""Decide a hidden test cell's score in the grader's process, from plain data the kernel recorded.

The student's kernel only reports values (dlcourse.probe); here they are compared with the values
the reference solution produced in a trusted run, and the cell's outputs are replaced by the
grader's verdict alone, so that nbgrader's determine_grade reads exactly the points decided
here: full, zero, or a partial score. Each recorded check earns a credit between 0 and 1 (its
kind's function in `CREDIT_KINDS`; a plain comparison earns 0 or 1) and the cell scores its
points times the weighted mean of the credits (weights from the reference run, default equal),
rounded to 2 decimals; a broken method rule scores 0 (see `decide`). A partial score is written
by the grader alone, as a stream naming the checks passed and failed and an `execute_result`
holding the points: nothing the kernel printed or returned sets it.

The hidden tests run in the student's kernel, so whatever the kernel produced while running them
(prints, displays, exception text, the values the student's functions returned) may carry their
source or their inputs. None of it reaches a notebook: a verdict's messages come in three
wordings, all made of the grader's fixed phrases filled with what the trusted reference run
recorded (check names, hints, expected shapes, dtypes, lengths and keys):

- `messages`, for the instructor's grading log: also the student's values, the exception text,
  counts and differences;
- `redacted`, for the notebook (formgrader and feedback): nothing taken from the student's
  kernel, not even a count, and no expected value;
- `revealed`, for the notebook when `DecideVerdicts.show_hidden_values` is on: the expected
  values too, still nothing from the kernel.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcourse.grader.cells import answer_sources, grade_id, is_test
from dlcourse.probe import MAX_DEPTH, MAX_ELEMENTS, MIME

METHOD_KEY = "__method__"
_ALLOWED_KINDS = "biufUS"
_SHOWN = 80


@dataclass(frozen=True)
class Probe:
    key: str
    value: Any  # the encoded (JSON) form, as recorded
    rtol: float = 1e-5
    atol: float = 1e-6
    hint: str = ""
    dtype: bool = False
    # The check's share of the cell's points against the cell's other checks, how its credit
    # is worked out (a key of CREDIT_KINDS) and that kind's settings (plain JSON data): all
    # three, like the tolerances, taken from the trusted reference run only.
    weight: float = 1.0
    kind: str = "match"
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MethodRule:
    uses: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()
    hint: str = ""


@dataclass
class Verdict:
    passed: bool  # full marks
    messages: list[str]  # everything, the kernel's text included: the instructor's log only
    checked: int
    redacted: list[str] = field(default_factory=list)  # the grader's phrases, no expected value
    revealed: list[str] = field(default_factory=list)  # the same with the expected values
    fraction: float | None = None  # of the cell's points earned, 0 to 1 (None: 1 if passed)
    passed_checks: list[str] = field(default_factory=list)  # the keys that earned full credit
    counted: int = 0  # the checks the fraction counts (an error after the last one included)

    def __post_init__(self) -> None:
        if self.fraction is None:
            self.fraction = 1.0 if self.passed else 0.0

    def score(self, max_points: float) -> float:
        """The points earned of `max_points`, to 2 decimals: full only when passed, and
        above 0 when anything was earned (unless the cell is worth under 0.02 points)."""
        if self.passed:
            return max_points
        fraction = float(self.fraction or 0.0)
        if fraction <= 0 or max_points < 0.02:
            return 0.0
        return min(max(round(max_points * fraction, 2), 0.01), round(max_points - 0.01, 2))


@dataclass(frozen=True)
class Shown:
    """What a message may show: the expected value (from the reference) and the student's
    (anything the kernel produced: values, exception text, counts, differences)."""

    expected: bool
    student: bool


INSTRUCTOR = Shown(expected=True, student=True)
REDACTED = Shown(expected=False, student=False)
REVEALED = Shown(expected=True, student=False)


class Malformed(ValueError):
    pass


# --- decoding the recorded data -----------------------------------------------------------


@dataclass(frozen=True)
class _Error:
    message: str


@dataclass(frozen=True)
class _Repr:
    type_name: str


def decode(data: Any) -> Any:
    """Encoded data back to Python values and numpy arrays; Malformed if it is not well formed."""
    return _decode(data, 0, [MAX_ELEMENTS])


def _decode(data: Any, depth: int, budget: list[int]) -> Any:
    if depth > MAX_DEPTH + 2:
        raise Malformed("nested too deeply")
    budget[0] -= 1
    if budget[0] < 0:
        raise Malformed("too large")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, float):
        if not math.isfinite(data):
            raise Malformed("bare non-finite float")
        return data
    if isinstance(data, list):
        return [_decode(item, depth + 1, budget) for item in data]
    if isinstance(data, dict):
        return _decode_dict(data, depth, budget)
    raise Malformed(f"unexpected {type(data).__name__}")


def _decode_dict(data: dict, depth: int, budget: list[int]) -> Any:
    if not all(isinstance(k, str) for k in data):
        raise Malformed("non-string key")
    if len(data) == 1:
        ((tag, inner),) = data.items()
        if tag == "__float__":
            return _tagged_float(inner)
        if tag == "__ndarray__":
            return _decode_array(inner, budget)
        if tag in ("__repr__", "__error__"):
            if not isinstance(inner, str):
                raise Malformed(f"{tag} must be a string")
            return _Repr(inner[:200]) if tag == "__repr__" else _Error(inner[:400])
        if tag == "__dict__":
            if not isinstance(inner, dict):
                raise Malformed("__dict__ must be an object")
            return {k: _decode(v, depth + 1, budget) for k, v in inner.items()}
    return {k: _decode(v, depth + 1, budget) for k, v in data.items()}


def _tagged_float(inner: Any) -> float:
    if inner not in ("nan", "inf", "-inf"):
        raise Malformed("bad __float__")
    return float(inner)


def _decode_array(inner: Any, budget: list[int]) -> np.ndarray:
    if not isinstance(inner, dict) or set(inner) != {"dtype", "shape", "data"}:
        raise Malformed("bad __ndarray__")
    dtype, shape, data = inner["dtype"], inner["shape"], inner["data"]
    dt = _array_dtype(dtype)
    if not isinstance(shape, list) or len(shape) > 32:
        raise Malformed("bad shape")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise Malformed("bad shape")
    if not isinstance(data, list) or len(data) != math.prod(shape):
        raise Malformed("data does not match the shape")
    budget[0] -= len(data)
    if budget[0] < 0:
        raise Malformed("too large")
    flat = [_array_item(x) for x in data]
    try:
        return np.array(flat, dtype=dt).reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise Malformed(f"bad array data ({exc})") from None


def _array_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, str) or len(dtype) > 20:
        raise Malformed("bad dtype")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise Malformed("bad dtype") from None
    if dt.kind not in _ALLOWED_KINDS or dt.fields is not None or dt.shape:
        raise Malformed("unsupported dtype")
    return dt


def _array_item(x: Any) -> Any:
    if isinstance(x, dict):
        return _tagged_float(x.get("__float__")) if set(x) == {"__float__"} else _bad_item()
    if isinstance(x, float) and not math.isfinite(x):
        raise Malformed("bare non-finite float")
    if x is None or isinstance(x, (list, dict)):
        _bad_item()
    return x


def _bad_item() -> Any:
    raise Malformed("bad array element")


# --- reading a cell --------------------------------------------------------------------------


def probes_of(cell: Any) -> tuple[dict[str, Probe], MethodRule | None, list[str]]:
    """The probes and method rule a test cell's outputs carry, and what was wrong with them."""
    probes: dict[str, Probe] = {}
    rule: MethodRule | None = None
    problems: list[str] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        data = output.get("data")
        if not isinstance(data, dict) or MIME not in data:
            continue
        try:
            payload = _payload(data[MIME])
            if payload.get("key") == METHOD_KEY:
                if rule is not None:
                    raise Malformed("method rule recorded twice")
                rule = _rule(payload)
                continue
            probe = _probe(payload)
        except Malformed as exc:
            problems.append(f"a recorded value is malformed: {exc}")
            continue
        if probe.key in probes:
            problems.append(f"{probe.key}: recorded twice")
            continue
        probes[probe.key] = probe
    return probes, rule, problems


def _payload(raw: Any) -> dict:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise Malformed("not JSON") from None
    if not isinstance(raw, dict):
        raise Malformed("not an object")
    return raw


_FIELDS = {"key", "value", "rtol", "atol", "hint", "dtype"}
_CREDIT_FIELDS = {"weight", "kind", "params"}  # absent in what an older probe recorded
_KIND = re.compile(r"[a-z][a-z0-9_]{0,49}")
MAX_WEIGHT = 1e6
MAX_PARAMS_CHARS = 100_000


def _probe(payload: dict) -> Probe:
    if not _FIELDS <= set(payload) <= _FIELDS | _CREDIT_FIELDS:
        raise Malformed("unexpected fields")
    key, hint, dtype = payload["key"], payload["hint"], payload["dtype"]
    if not isinstance(key, str) or not key or len(key) > 200:
        raise Malformed("bad key")
    if not isinstance(hint, str) or not isinstance(dtype, bool):
        raise Malformed(f"{key}: bad hint or dtype")
    rtol, atol = _tolerance(payload["rtol"]), _tolerance(payload["atol"])
    weight = _weight(payload.get("weight", 1.0), key)
    kind, params = payload.get("kind", "match"), payload.get("params", {})
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise Malformed(f"{key}: bad kind")
    if not isinstance(params, dict) or not _plain_json(params):
        raise Malformed(f"{key}: bad params")
    try:
        decode(payload["value"])
    except (Malformed, RecursionError) as exc:
        raise Malformed(f"{key}: {exc}") from None
    return Probe(key, payload["value"], rtol, atol, hint[:500], dtype, weight, kind, params)


def _weight(x: Any, key: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= MAX_WEIGHT:
        raise Malformed(f"{key}: bad weight")
    return float(x)


def _plain_json(params: dict) -> bool:
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return len(text) <= MAX_PARAMS_CHARS


def _tolerance(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x < math.inf:
        raise Malformed("bad tolerance")
    return float(x)


def _rule(payload: dict) -> MethodRule:
    uses, forbids, hint = payload.get("uses"), payload.get("forbids"), payload.get("hint", "")
    names = (uses, forbids)
    if not all(isinstance(n, list) and all(isinstance(s, str) for s in n) for n in names):
        raise Malformed("bad method rule")
    if not isinstance(hint, str):
        raise Malformed("bad method rule")
    return MethodRule(tuple(uses), tuple(forbids), hint)


# --- comparing -------------------------------------------------------------------------------


def compare(expected: Probe, got: Probe | None, *, shown: Shown = INSTRUCTOR) -> str | None:
    """None when `got` matches `expected`; else a short message showing what `shown` allows.
    Tolerances come from `expected`."""
    if got is None:
        return _with_hint(f"{expected.key}: no value was recorded", expected.hint)
    try:
        want, have = decode(expected.value), decode(got.value)
    except (Malformed, RecursionError) as exc:
        problem = f"malformed value ({exc})" if shown.student else "the value could not be read"
        return _with_hint(f"{expected.key}: {problem}", expected.hint)
    problem = _diff(want, have, expected, shown)
    if problem is None:
        return None
    return _with_hint(f"{expected.key}: {problem}", expected.hint)


# --- credit: how much of a check's weight a recorded value earns -----------------------------

# A check's kind -> fn(expected, got, shown) -> (credit in [0, 1], message or None). The
# message says, in what `shown` allows, what fell short (None for full credit); `expected`
# (its value, tolerances, weight and params) comes from the trusted reference run, `got` from
# the student's kernel (None when nothing was recorded under the key). Register another kind
# with `register_credit_kind` in the grader's process, before the reference run is read.
CreditFn = Callable[[Probe, "Probe | None", Shown], tuple[float, "str | None"]]
CREDIT_KINDS: dict[str, CreditFn] = {}


def register_credit_kind(kind: str, fn: CreditFn) -> None:
    if not _KIND.fullmatch(kind):
        raise ValueError(f"bad credit kind name {kind!r}")
    CREDIT_KINDS[kind] = fn


def _match(expected: Probe, got: Probe | None, shown: Shown) -> tuple[float, str | None]:
    problem = compare(expected, got, shown=shown)
    return (1.0, None) if problem is None else (0.0, problem)


register_credit_kind("match", _match)
# A check of the method by behaviour (e.g. the result follows what an altered tape answers):
# compared like "match", and when it fails the cell scores 0, as for a broken method rule.
METHOD_KIND = "method"
register_credit_kind(METHOD_KIND, _match)


def credit(
    expected: Probe, got: Probe | None, *, shown: Shown = INSTRUCTOR
) -> tuple[float, str | None]:
    """The credit (0 to 1) `got` earns against `expected`, by the check's kind, and what fell
    short. A kind this process does not know, or a credit function that fails or answers
    out of range, earns 0 with a fixed message: never an error, never more than 1."""
    fn = CREDIT_KINDS.get(expected.kind)
    if fn is None:
        return 0.0, f"{expected.key}: the grader cannot judge this check (unknown kind)"
    try:
        value, message = fn(expected, got, shown)
        value = float(value)
    except Exception:  # noqa: BLE001 - a credit function's bug must not stop the grading
        return 0.0, f"{expected.key}: the grader could not judge this check"
    if not 0.0 <= value <= 1.0:  # NaN included
        return 0.0, f"{expected.key}: the grader could not judge this check"
    if value < 1.0 and not message:
        message = f"{expected.key}: partly right"
    return value, (None if value >= 1.0 else message)


def _with_hint(message: str, hint: str) -> str:
    return f"{message} (hint: {hint})" if hint else message


def _diff(want: Any, have: Any, exp: Probe, shown: Shown) -> str | None:
    if isinstance(want, _Error):
        detail = f" ({want.message})" if shown.student else ""
        return f"the reference run failed here{detail}"
    if isinstance(have, _Error):
        return f"raised {have.message}" if shown.student else _raised(have.message)
    if isinstance(want, np.ndarray):
        return _diff_array(want, have, exp, shown)
    if isinstance(want, bool):
        return _diff_exact(want, _as_scalar(have, "b"), shown)
    if want is None or isinstance(want, (str, _Repr)):
        return _diff_exact(want, have, shown)
    if isinstance(want, (int, float)):
        return _diff_number(want, have, exp, shown)
    if isinstance(want, list):
        return _diff_list(want, have, exp, shown)
    if isinstance(want, dict):
        return _diff_dict(want, have, exp, shown)
    return f"cannot compare {type(want).__name__}"


def safe_error_name(name: str) -> str:
    """`name` when it is one of Python's built-in exceptions, else "an exception": the name of
    an exception raised in the kernel is the student's to choose (`type(text, ...)`)."""
    found = getattr(builtins, str(name), None)
    if isinstance(found, type) and issubclass(found, BaseException):
        return str(name)
    return "an exception"


def _raised(message: str) -> str:
    """What a recorded exception (dlcourse.probe's `TypeError: text`) may say in a notebook."""
    if message == "too large":
        return "gave a value too large to record"
    if message.startswith("could not encode"):
        return "gave a value that could not be recorded"
    return f"raised {safe_error_name(message.split(':', 1)[0])}"


def _show(x: Any) -> str:
    if isinstance(x, _Repr):
        text = f"a {x.type_name} object"
    elif isinstance(x, np.ndarray):
        text = f"an array of shape {tuple(x.shape)}"
    elif isinstance(x, list):
        text = f"a list of {len(x)}"
    elif isinstance(x, dict):
        text = "a dict"
    else:
        text = str(x)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _kind(x: Any) -> str:
    """What sort of value `x` is, in a fixed word: nothing of its content."""
    if x is None:
        return "None"
    if isinstance(x, bool):
        return "a bool"
    if _is_number(x):
        return "a number"
    kinds = ((str, "a string"), (list, "a list"), (dict, "a dict"), (np.ndarray, "an array"))
    return next((word for cls, word in kinds if isinstance(x, cls)), "an object")


def _got(have: Any, shown: Shown) -> str:
    return _show(have) if shown.student else _kind(have)


def _expected_got(want: Any, have: Any, shown: Shown) -> str:
    if shown.student:
        return f"expected {_show(want)}, got {_show(have)}"
    same_kind = _kind(want) == _kind(have)
    if shown.expected:
        return f"expected {_show(want)}, got {'another value' if same_kind else _kind(have)}"
    return "wrong value" if same_kind else f"expected {_kind(want)}, got {_kind(have)}"


def _diff_exact(want: Any, have: Any, shown: Shown) -> str | None:
    if type(want) is type(have) and want == have:
        return None
    return _expected_got(want, have, shown)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _as_scalar(x: Any, kinds: str = "iuf") -> Any:
    """A 0-d or one-element array of one of `kinds` as a Python scalar; anything else unchanged."""
    if isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in kinds:
        return x.reshape(()).item()
    return x


def _diff_number(want: Any, have: Any, exp: Probe, shown: Shown) -> str | None:
    have = _as_scalar(have)
    if not _is_number(have):
        return _expected_got(want, have, shown)
    return None if _same_number(want, have, exp) else _expected_got(want, have, shown)


def _same_number(want: int | float, have: int | float, exp: Probe) -> bool:
    if isinstance(want, int) and isinstance(have, int):
        return want == have
    try:
        w, h = float(want), float(have)
    except OverflowError:
        return False
    return bool(np.isclose(h, w, rtol=exp.rtol, atol=exp.atol, equal_nan=True))


def _diff_list(want: list, have: Any, exp: Probe, shown: Shown) -> str | None:
    if not isinstance(have, list):
        return f"expected a list, got {_got(have, shown)}"
    if len(want) != len(have):
        length = f"a list of {len(have)}" if shown.student else "a list of another length"
        return f"expected a list of {len(want)}, got {length}"
    for i, (w, h) in enumerate(zip(want, have, strict=True)):
        problem = _diff(w, h, exp, shown)
        if problem is not None:
            return f"[{i}] {problem}"
    return None


def _diff_dict(want: dict, have: Any, exp: Probe, shown: Shown) -> str | None:
    if not isinstance(have, dict):
        return f"expected a dict, got {_got(have, shown)}"
    if set(want) != set(have):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if shown.student:
            return f"keys differ (missing {missing}, unexpected {extra})"
        return f"keys differ (expected {sorted(want)})" if shown.expected else "keys differ"
    for k in want:
        problem = _diff(want[k], have[k], exp, shown)
        if problem is not None:
            return f"[{k!r}] {problem}"
    return None


def _diff_array(want: np.ndarray, have: Any, exp: Probe, shown: Shown) -> str | None:
    if not isinstance(have, np.ndarray):
        if want.size == 1 and (_is_number(have) or isinstance(have, bool)):
            return _diff(want.reshape(()).item(), have, exp, shown)
        return f"expected an array of shape {tuple(want.shape)}, got {_got(have, shown)}"
    if want.shape != have.shape:
        other = tuple(have.shape) if shown.student else "another shape"
        return f"shape {tuple(want.shape)} expected, got {other}"
    if exp.dtype and want.dtype != have.dtype:
        return f"dtype {want.dtype} expected, got {have.dtype if shown.student else 'another'}"
    numeric = "iuf"
    if want.dtype.kind in numeric and have.dtype.kind in numeric:
        return _diff_values(want, have, exp, shown)
    if want.dtype.kind != have.dtype.kind and not {want.dtype.kind, have.dtype.kind} <= {"U", "S"}:
        other = have.dtype.name if shown.student else "another kind"
        return f"expected an array of {want.dtype.name}, got {other}"
    wrong = int(np.count_nonzero(want != have))
    return _values_differ(wrong, want.size, "", shown) if wrong else None


def _diff_values(want: np.ndarray, have: np.ndarray, exp: Probe, shown: Shown) -> str | None:
    w, h = want.astype(np.float64), have.astype(np.float64)
    close = np.isclose(h, w, rtol=exp.rtol, atol=exp.atol, equal_nan=True)
    if want.dtype.kind in "iu" and have.dtype.kind in "iu":
        close = want == have
    wrong = int(close.size - np.count_nonzero(close))
    if not wrong:
        return None
    with np.errstate(invalid="ignore"):
        gaps = np.abs(w - h)[~close]
    gaps = gaps[~np.isnan(gaps)]
    largest = f" (largest difference {float(gaps.max()):.4g})" if gaps.size else " (NaN mismatch)"
    return _values_differ(wrong, want.size, largest, shown)


def _values_differ(wrong: int, size: int, largest: str, shown: Shown) -> str:
    """How many values differ, and by how much, only for the instructor: a count or a
    difference is the student's number (and a one-element difference is the expected value)."""
    if shown.student:
        return f"values differ at {wrong} of {size} positions{largest}"
    return "values differ from the expected ones"


# --- method rules ----------------------------------------------------------------------------


def method_violations(rule: MethodRule, sources: list[str]) -> list[str]:
    """What the answer sources do against `rule`: required names missing, forbidden ones used."""
    names: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(_python_source(source))
        except (SyntaxError, ValueError, RecursionError):
            return [_with_hint("the answer could not be parsed", rule.hint)]
        names |= _names_in(tree)
    out = [f"the answer should use {u}" for u in rule.uses if u not in names]
    out += [f"the answer must not use {f}" for f in rule.forbids if f in names]
    return [_with_hint(m, rule.hint) for m in out]


def _python_source(source: str) -> str:
    """Turn IPython syntax (%magics, !shell) into Python so that a magic is not a parse error."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    return TransformerManager().transform_cell(source)


def _names_in(tree: ast.AST) -> set[str]:
    """Every name the source uses, and what its imported names stand for: with
    `from tensorflow.compat import v1 as old`, `old.gradients` is also `tf.gradients` (see
    `_canonical`), so a rule naming `tf.gradients` sees it under any alias or import form."""
    names: set[str] = set()
    aliases = _import_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
            names |= _canonical(aliases.get(node.id, ""))
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            dotted = _dotted(node)
            if dotted:
                names.add(dotted)
                head, _, rest = dotted.partition(".")
                if head in aliases:
                    names |= _canonical(f"{aliases[head]}.{rest}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names |= _module_names(alias.name) | ({alias.asname} if alias.asname else set())
                names |= _canonical(alias.name)
        elif isinstance(node, ast.ImportFrom):
            names |= _module_names(node.module or "")
            for alias in node.names:
                names |= {alias.name} | ({alias.asname} if alias.asname else set())
                names |= _canonical(f"{node.module or ''}.{alias.name}")
        elif isinstance(node, ast.Call):
            names |= _dynamic_import(node) | _getattr_name(node, aliases)
    names.discard("")
    return names


# What the worksheets' setup cells import, for an answer cell that uses them without importing.
_SETUP_ALIASES = {"tf": "tensorflow", "np": "numpy"}


def _import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted module path it was imported as (`tf` -> `tensorflow`,
    `v1` -> `tensorflow.compat.v1`, `grads` -> `tensorflow.gradients`), wherever the import is."""
    aliases: dict[str, str] = dict(_SETUP_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    aliases[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


# TensorFlow's compatibility namespaces hold the same functions as the top level.
_COMPAT = re.compile(r"\.compat\.v[12](?=\.|$)")


def _canonical(dotted: str) -> set[str]:
    """A resolved dotted path as the rules name it: `tensorflow.compat.v1.gradients` is
    `tensorflow.gradients` and `tf.gradients`; `keras` and `tf.keras` paths likewise."""
    if not dotted or dotted.startswith("."):
        return set()
    path = _COMPAT.sub("", dotted)
    out = {dotted, path}
    if path == "tensorflow" or path.startswith("tensorflow."):
        out.add("tf" + path[len("tensorflow") :])
    if path.startswith("tensorflow.keras."):
        out.add(path[len("tensorflow.") :])
    return out


def _getattr_name(node: ast.Call, aliases: dict[str, str]) -> set[str]:
    """getattr(tf, "gradients") names tf.gradients."""
    func = node.func
    if not (isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2):
        return set()
    owner, attr = node.args[0], node.args[1]
    if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
        return set()
    out = {attr.value}
    base = (
        owner.id
        if isinstance(owner, ast.Name)
        else (_dotted(owner) if isinstance(owner, ast.Attribute) else None)
    )
    if base:
        out.add(f"{base}.{attr.value}")
        head, _, rest = base.partition(".")
        if head in aliases:
            resolved = aliases[head] + (f".{rest}" if rest else "")
            out |= _canonical(f"{resolved}.{attr.value}")
    return out


def _module_names(module: str) -> set[str]:
    parts = module.split(".")
    return set(parts) | {".".join(parts[: i + 1]) for i in range(len(parts))}


def _dotted(node: ast.Attribute) -> str | None:
    parts: list[str] = []
    current: ast.AST = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    return ".".join(reversed(parts))


def _dynamic_import(node: ast.Call) -> set[str]:
    """__import__("numpy") and importlib.import_module("numpy") name the module they import."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if name not in ("__import__", "import_module") or not node.args:
        return set()
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return _module_names(first.value)
    return set()


# --- the verdict -----------------------------------------------------------------------------

# Said in the notebook, for any number of malformed or repeated records: their keys and
# contents are the kernel's.
RECORDS_UNREADABLE = "some recorded values were malformed or recorded twice"


def decide(
    cell: Any,
    expected: dict[str, Probe],
    rule: MethodRule | None,
    answer_sources: list[str],
) -> Verdict:
    """The cell's verdict: each expected check earns a credit between 0 and 1 (by its kind,
    `CREDIT_KINDS`; a plain comparison earns 0 or 1), and the cell's fraction is the mean of
    the credits weighted by the checks' weights. Full marks only with no error output, every
    check matched and the method rule kept. A broken method rule, a failed check of the
    method by behaviour (kind "method"), or records that are malformed or repeated (a value
    recorded by anything but the hidden test), give 0. An error
    output ends the test where it happened: the checks it had not recorded earn 0, those
    recorded before it count; one that ended the test after its last check counts as one more
    failed check (of the checks' mean weight), so a test that raised never earns full marks.

    `expected` and `rule` must come from the trusted reference run, never from the student's cell.
    """
    got, _, problems = probes_of(cell)
    if not expected:
        problems = []  # nothing is checked here, so nothing recorded can be wrong
    wordings: dict[Shown, list[str]] = {
        INSTRUCTOR: list(problems),
        REDACTED: [RECORDS_UNREADABLE] if problems else [],
        REVEALED: [RECORDS_UNREADABLE] if problems else [],
    }
    error = _first_error(cell)
    earned = total = 0.0
    passed: list[str] = []
    wrong_method = False
    for shown, messages in wordings.items():
        if error is not None:
            messages.insert(0, _error_message(error, shown))
        for key, probe in expected.items():
            value, problem = credit(probe, got.get(key), shown=shown)
            if problem is not None:
                messages.append(problem)
            if shown is INSTRUCTOR:
                earned += probe.weight * value
                total += probe.weight
                passed += [key] if problem is None else []
                wrong_method |= probe.kind == METHOD_KIND and problem is not None
    counted = len(expected)
    if error is not None and expected and all(key in got for key in expected):
        total += total / len(expected)  # the error is a failed check of its own
        counted += 1
    violations: list[str] = []
    if rule is not None:
        violations = method_violations(rule, answer_sources)  # about the student's own source
        for messages in wordings.values():
            messages += violations
    messages = wordings[INSTRUCTOR]
    if not messages:
        fraction = 1.0
    elif problems or violations or wrong_method or not expected or total <= 0:
        fraction = 0.0
    else:
        fraction = min(max(earned / total, 0.0), _BELOW_FULL)
    return Verdict(
        not messages,
        messages,
        len(expected) + (1 if rule is not None else 0),
        wordings[REDACTED],
        wordings[REVEALED],
        fraction=fraction,
        passed_checks=passed,
        counted=counted,
    )


# With any failure, a fraction short of 1: never full marks.
_BELOW_FULL = 1.0 - 1e-9


def _first_error(cell: Any) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def _error_message(output: Any, shown: Shown) -> str:
    ename = str(output.get("ename", ""))
    if ename in STOPPED and not shown.student:  # the grader's own names: the driver's notes
        return f"the grader stopped the test ({ename})"
    if not shown.student:  # an error's text is the kernel's: it may quote the hidden source
        return f"the test raised {safe_error_name(ename)}"
    return f"the test raised {ename}: {str(output.get('evalue', ''))[:300]}".rstrip(": ")


# --- the outputs -----------------------------------------------------------------------------

PASSED = re.compile(r"hidden checks passed \((\d+)\)\n")
FAILED = "TestFailed"
# Errors the grader's own machinery writes when it stops a cell (nbgrader's per-cell timeout,
# the notebook's time limit in dlcourse.grader.execute, the sandbox's memory limit): a failing
# verdict carries the name, so the driver's notes can say what happened (driver.OUTPUT_NOTES).
STOPPED = ("CellTimeoutError", "NotebookTimeLimitError", "MemoryError")

# A partial score: a stream the grader writes (the score, then one line per check, in the
# notebook's wordings), then an execute_result whose text/plain is the points, which
# nbgrader's determine_grade reads as the cell's grade.
_NUMBER = r"\d{1,6}(?:\.\d{1,2})?"
PARTIAL_HEAD = re.compile(
    rf"hidden checks: partial credit, ({_NUMBER}) of ({_NUMBER}) points "
    r"\((\d{1,4}) of (\d{1,4}) checks passed\)"
)
PARTIAL_LINE = re.compile(r"  (passed|failed): ([^\n]{1,2000})")
STOPPED_LINE = re.compile(r"the grader stopped the test \((\w+)\)")
MAX_LINES = 200


def decide_test_cell(cell: Any, expected: dict, nb: Any) -> Verdict:
    """The verdict on one test cell of `nb` (an autograded notebook), against `expected`
    (the reference's results for that notebook): what grading and mutation testing share."""
    gid = grade_id(cell)
    probes, rule = expectation(expected, gid)
    return decide(cell, probes, rule, answer_sources(nb, gid))


def max_points(cell: Any) -> float:
    """The test cell's points, as nbgrader's determine_grade reads them."""
    try:
        points = float(cell["metadata"]["nbgrader"]["points"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return points if math.isfinite(points) and points > 0 else 0.0


def apply(cell: Any, verdict: Verdict, *, show_hidden_values: bool = False) -> None:
    """Replace the outputs by the verdict alone: full points on a pass, zero on a fail that
    earns nothing, and on a partial score a stream naming the checks that passed and failed
    followed by an `execute_result` holding the points (`Verdict.score`).

    Nothing the kernel produced in a test cell stays (its hidden part ran there: prints, hooks,
    displays and tracebacks can quote it), so no forged `execute_result` sets a grade, a warning
    on stderr zeroes no right answer, and the autograded notebook, the input of every door's
    feedback, holds in test cells only what the grader wrote."""
    if verdict.passed:
        cell["outputs"] = [_passed(verdict.checked)]
        return
    messages = verdict.revealed if show_hidden_values else verdict.redacted
    points = max_points(cell)
    score = verdict.score(points)
    if score > 0:
        head = (score, points, len(verdict.passed_checks), verdict.counted)
        cell["outputs"] = _partial(head, verdict.passed_checks, messages)
        return
    error = _first_error(cell)
    ename = str(error.get("ename")) if error is not None else ""
    cell["outputs"] = [_failure(messages or ["hidden checks failed"], ename)]


def _passed(checked: int) -> Any:
    import nbformat

    text = f"hidden checks passed ({int(checked)})\n"
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _failure(messages: list[str], stopped_by: str = "") -> Any:
    import nbformat

    return nbformat.v4.new_output(
        "error",
        ename=stopped_by if stopped_by in STOPPED else FAILED,
        evalue="; ".join(messages),
        traceback=["TestFailed: hidden checks failed", *(f"  - {m}" for m in messages)],
    )


def _points_text(x: float) -> str:
    return f"{round(float(x), 2):g}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000] or "-"


def _partial(head: tuple[float, float, int, int], passed: list[str], failed: list[str]) -> list:
    import nbformat

    score, points, n_passed, counted = head
    lines = [
        f"hidden checks: partial credit, {_points_text(score)} of {_points_text(points)} points "
        f"({int(n_passed)} of {int(counted)} checks passed)",
        *(f"  passed: {_one_line(k)}" for k in passed),
        *(f"  failed: {_one_line(m)}" for m in failed),
    ][: MAX_LINES + 1]
    text = "".join(f"{line}\n" for line in lines)
    return [
        nbformat.v4.new_output("stream", name="stdout", text=text),
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": _points_text(score)}, execution_count=None
        ),
    ]


def _partial_form(outputs: list, i: int) -> tuple[Any, Any] | None:
    """The partial score at outputs[i:i + 2], rebuilt from its plain fields, when both have
    exactly the grader's form and agree: the stream's score is the execute_result's points."""
    if i + 1 >= len(outputs):
        return None
    stream, result = outputs[i], outputs[i + 1]
    if stream.get("output_type") != "stream" or stream.get("name") != "stdout":
        return None
    if result.get("output_type") != "execute_result":
        return None
    text = _text(stream.get("text", ""))
    lines = text.split("\n")
    if not text.endswith("\n") or len(lines) > MAX_LINES + 2:
        return None
    head = PARTIAL_HEAD.fullmatch(lines[0])
    parsed = [PARTIAL_LINE.fullmatch(line) for line in lines[1:-1]]
    if head is None or not all(parsed):
        return None
    score, points = float(head.group(1)), float(head.group(2))
    shown = _text((result.get("data") or {}).get("text/plain", ""))
    if not re.fullmatch(_NUMBER, shown) or float(shown) != score or not 0 < score < points:
        return None
    passed = [m.group(2) for m in parsed if m and m.group(1) == "passed"]
    failed = [m.group(2) for m in parsed if m and m.group(1) == "failed"]
    n_passed, counted = int(head.group(3)), int(head.group(4))
    return tuple(_partial((score, points, n_passed, counted), passed, failed))  # type: ignore[return-value]


def _text(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text)


def verdict_outputs(cell: Any) -> list[Any]:
    """The test cell's outputs that have the verdict's form, rebuilt from their plain fields:
    what feedback shows of a test cell, whichever grader version autograded the notebook."""
    kept = []
    outputs = list(cell.get("outputs", []))
    i = 0
    while i < len(outputs):
        output = outputs[i]
        kind, text = output.get("output_type"), _text(output.get("text", ""))
        passed = PASSED.fullmatch(text) if output.get("name") == "stdout" else None
        partial = _partial_form(outputs, i)
        if partial is not None:
            kept += partial
            i += 2
            continue
        if kind == "stream" and passed:
            kept.append(_passed(int(passed.group(1))))
        elif kind == "error" and output.get("ename") in (FAILED, *STOPPED):
            kept.append(_failure(str(output.get("evalue", "")).split("; "), output["ename"]))
        i += 1
    return kept


def partial_score(cell: Any) -> float | None:
    """The points of a partial score the grader wrote in this test cell; None if none."""
    outputs = list(cell.get("outputs", []))
    for i in range(len(outputs)):
        form = _partial_form(outputs, i)
        if form is not None:
            return float(_text(form[1]["data"]["text/plain"]))
    return None


def stopped_by(output: Any) -> list[str]:
    """The names of the grader's stops (STOPPED) a partial score's stream names."""
    if output.get("output_type") != "stream" or not PARTIAL_HEAD.match(
        _text(output.get("text", ""))
    ):
        return []
    found = STOPPED_LINE.findall(_text(output.get("text", "")))
    return [name for name in found if name in STOPPED]


# --- expected values from the reference run --------------------------------------------------


def expected_from(executed_master_nb: Any) -> dict[str, dict]:
    """grade_id -> {"probes": {key: Probe fields}, "method": MethodRule fields or None}.

    Raises ValueError when the reference fails its own test or records malformed data.
    """
    out: dict[str, dict] = {}
    for cell in executed_master_nb.get("cells", []):
        if not is_test(cell):
            continue
        grade_id = cell["metadata"]["nbgrader"].get("grade_id", "")
        probes, rule, problems = probes_of(cell)
        error = _first_error(cell)
        if error is not None or problems:
            problem = problems[0] if error is None else _error_message(error, INSTRUCTOR)
            raise ValueError(f"reference run of {grade_id}: {problem}")
        unknown = sorted({p.kind for p in probes.values()} - set(CREDIT_KINDS))
        if unknown:
            raise ValueError(f"reference run of {grade_id}: unknown check kind {unknown[0]!r}")
        out[grade_id] = {
            "probes": {key: asdict(probe) for key, probe in probes.items()},
            "method": _rule_data(rule),
        }
    return out


def _rule_data(rule: MethodRule | None) -> dict | None:
    if rule is None:
        return None
    return {"uses": list(rule.uses), "forbids": list(rule.forbids), "hint": rule.hint}


def expectation(data: dict[str, dict], grade_id: str) -> tuple[dict[str, Probe], MethodRule | None]:
    """The `expected` and `rule` arguments of decide() for one test cell."""
    entry = data.get(grade_id) or {"probes": {}, "method": None}
    probes = {key: Probe(**fields) for key, fields in entry["probes"].items()}
    method = entry.get("method")
    rule = (
        None
        if method is None
        else MethodRule(tuple(method["uses"]), tuple(method["forbids"]), method["hint"])
    )
    return probes, rule


def save_expected(path: str | os.PathLike[str], data: dict[str, dict]) -> None:
    """Write `data` as JSON readable by its owner only (0600), replacing any older file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text + "\n")
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


def load_expected(path: str | os.PathLike[str]) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data
