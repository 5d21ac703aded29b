"""Decide a hidden test cell's score in the grader's process, from plain data the kernel recorded.

The student's kernel only reports values (dlcourse.probe); here they are compared with the values
the reference solution produced in a trusted run, and the cell's outputs are rewritten so that
nbgrader's determine_grade reads exactly full points or zero.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlcourse.grader.cells import is_test
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


@dataclass(frozen=True)
class MethodRule:
    uses: tuple[str, ...] = ()
    forbids: tuple[str, ...] = ()
    hint: str = ""


@dataclass
class Verdict:
    passed: bool
    messages: list[str]  # full detail, expected values included: for the instructor
    checked: int
    redacted: list[str] = field(default_factory=list)  # the same, without hidden values


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


def _probe(payload: dict) -> Probe:
    if set(payload) != {"key", "value", "rtol", "atol", "hint", "dtype"}:
        raise Malformed("unexpected fields")
    key, hint, dtype = payload["key"], payload["hint"], payload["dtype"]
    if not isinstance(key, str) or not key or len(key) > 200:
        raise Malformed("bad key")
    if not isinstance(hint, str) or not isinstance(dtype, bool):
        raise Malformed(f"{key}: bad hint or dtype")
    rtol, atol = _tolerance(payload["rtol"]), _tolerance(payload["atol"])
    try:
        decode(payload["value"])
    except (Malformed, RecursionError) as exc:
        raise Malformed(f"{key}: {exc}") from None
    return Probe(key, payload["value"], rtol, atol, hint[:500], dtype)


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


def compare(expected: Probe, got: Probe | None, *, reveal: bool = True) -> str | None:
    """None when `got` matches `expected`; else a short message. Tolerances come from `expected`."""
    if got is None:
        return _with_hint(f"{expected.key}: no value was recorded", expected.hint)
    try:
        want, have = decode(expected.value), decode(got.value)
    except (Malformed, RecursionError) as exc:
        return _with_hint(f"{expected.key}: malformed value ({exc})", expected.hint)
    problem = _diff(want, have, expected, reveal)
    if problem is None:
        return None
    return _with_hint(f"{expected.key}: {problem}", expected.hint)


def _with_hint(message: str, hint: str) -> str:
    return f"{message} (hint: {hint})" if hint else message


def _diff(want: Any, have: Any, exp: Probe, reveal: bool) -> str | None:
    if isinstance(want, _Error):
        return f"the reference run failed here ({want.message})"
    if isinstance(have, _Error):
        return f"raised {have.message}"
    if isinstance(want, np.ndarray):
        return _diff_array(want, have, exp, reveal)
    if isinstance(want, bool):
        return _diff_exact(want, _as_scalar(have, "b"), reveal)
    if want is None or isinstance(want, (str, _Repr)):
        return _diff_exact(want, have, reveal)
    if isinstance(want, (int, float)):
        return _diff_number(want, have, exp, reveal)
    if isinstance(want, list):
        return _diff_list(want, have, exp, reveal)
    if isinstance(want, dict):
        return _diff_dict(want, have, exp, reveal)
    return f"cannot compare {type(want).__name__}"


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


def _expected_got(want: Any, have: Any, reveal: bool) -> str:
    if reveal:
        return f"expected {_show(want)}, got {_show(have)}"
    return f"wrong value (got {_show(have)})"


def _diff_exact(want: Any, have: Any, reveal: bool) -> str | None:
    if type(want) is type(have) and want == have:
        return None
    return _expected_got(want, have, reveal)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _as_scalar(x: Any, kinds: str = "iuf") -> Any:
    """A 0-d or one-element array of one of `kinds` as a Python scalar; anything else unchanged."""
    if isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in kinds:
        return x.reshape(()).item()
    return x


def _diff_number(want: Any, have: Any, exp: Probe, reveal: bool) -> str | None:
    have = _as_scalar(have)
    if not _is_number(have):
        return _expected_got(want, have, reveal)
    return None if _same_number(want, have, exp) else _expected_got(want, have, reveal)


def _same_number(want: int | float, have: int | float, exp: Probe) -> bool:
    if isinstance(want, int) and isinstance(have, int):
        return want == have
    try:
        w, h = float(want), float(have)
    except OverflowError:
        return False
    return bool(np.isclose(h, w, rtol=exp.rtol, atol=exp.atol, equal_nan=True))


def _diff_list(want: list, have: Any, exp: Probe, reveal: bool) -> str | None:
    if not isinstance(have, list):
        return f"expected a list, got {_show(have)}"
    if len(want) != len(have):
        return f"expected a list of {len(want)}, got a list of {len(have)}"
    for i, (w, h) in enumerate(zip(want, have, strict=True)):
        problem = _diff(w, h, exp, reveal)
        if problem is not None:
            return f"[{i}] {problem}"
    return None


def _diff_dict(want: dict, have: Any, exp: Probe, reveal: bool) -> str | None:
    if not isinstance(have, dict):
        return f"expected a dict, got {_show(have)}"
    if set(want) != set(have):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        return f"keys differ (missing {missing}, unexpected {extra})"
    for k in want:
        problem = _diff(want[k], have[k], exp, reveal)
        if problem is not None:
            return f"[{k!r}] {problem}"
    return None


def _diff_array(want: np.ndarray, have: Any, exp: Probe, reveal: bool) -> str | None:
    if not isinstance(have, np.ndarray):
        if want.size == 1 and (_is_number(have) or isinstance(have, bool)):
            return _diff(want.reshape(()).item(), have, exp, reveal)
        return f"expected an array of shape {tuple(want.shape)}, got {_show(have)}"
    if want.shape != have.shape:
        return f"shape {tuple(want.shape)} expected, got {tuple(have.shape)}"
    if exp.dtype and want.dtype != have.dtype:
        return f"dtype {want.dtype} expected, got {have.dtype}"
    numeric = "iuf"
    if want.dtype.kind in numeric and have.dtype.kind in numeric:
        return _diff_values(want, have, exp)
    if want.dtype.kind != have.dtype.kind and not {want.dtype.kind, have.dtype.kind} <= {"U", "S"}:
        return f"expected an array of {want.dtype.name}, got {have.dtype.name}"
    wrong = int(np.count_nonzero(want != have))
    return f"values differ at {wrong} of {want.size} positions" if wrong else None


def _diff_values(want: np.ndarray, have: np.ndarray, exp: Probe) -> str | None:
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
    return f"values differ at {wrong} of {want.size} positions{largest}"


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
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            dotted = _dotted(node)
            if dotted:
                names.add(dotted)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names |= _module_names(alias.name) | ({alias.asname} if alias.asname else set())
        elif isinstance(node, ast.ImportFrom):
            names |= _module_names(node.module or "")
            for alias in node.names:
                names |= {alias.name} | ({alias.asname} if alias.asname else set())
        elif isinstance(node, ast.Call):
            names |= _dynamic_import(node)
    names.discard("")
    return names


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


def decide(
    cell: Any,
    expected: dict[str, Probe],
    rule: MethodRule | None,
    answer_sources: list[str],
) -> Verdict:
    """Pass only with no error output, every expected key matched and the method rule kept.

    `expected` and `rule` must come from the trusted reference run, never from the student's cell.
    """
    got, _, problems = probes_of(cell)
    if not expected:
        problems = []  # nothing is checked here, so nothing recorded can be wrong
    messages, redacted = list(problems), list(problems)
    error = _first_error(cell)
    if error is not None:
        messages.insert(0, error)
        redacted.insert(0, error)
    for key, probe in expected.items():
        full = compare(probe, got.get(key))
        if full is not None:
            messages.append(full)
            redacted.append(compare(probe, got.get(key), reveal=False) or full)
    if rule is not None:
        violations = method_violations(rule, answer_sources)
        messages += violations
        redacted += violations
    checked = len(expected) + (1 if rule is not None else 0)
    return Verdict(not messages, messages, checked, redacted)


def _first_error(cell: Any) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            ename, evalue = str(output.get("ename", "")), str(output.get("evalue", ""))
            return f"the test raised {ename}: {evalue[:300]}".rstrip(": ")
    return None


# --- rewriting the outputs -------------------------------------------------------------------


def apply(cell: Any, verdict: Verdict, *, show_hidden_values: bool = False) -> None:
    """Rewrite the outputs so that determine_grade reads full points on pass, zero on fail."""
    import nbformat

    outputs = []
    for output in cell.get("outputs", []):
        kept = _rewritten(output, verdict.passed)
        if kept is not None:
            outputs.append(nbformat.from_dict(kept))
    if verdict.passed:
        text = f"hidden checks passed ({verdict.checked})\n"
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    else:
        messages = verdict.messages if show_hidden_values else verdict.redacted
        outputs.insert(0, _failure(messages or ["hidden checks failed"]))
    cell["outputs"] = outputs


def _rewritten(output: Any, passed: bool) -> dict | None:
    kind = output.get("output_type")
    if kind in ("display_data", "execute_result") and MIME in (output.get("data") or {}):
        return None
    if kind == "execute_result":  # still shown, but can no longer set a partial grade
        return {
            "output_type": "display_data",
            "data": dict(output.get("data") or {}),
            "metadata": dict(output.get("metadata") or {}),
        }
    if kind == "stream" and output.get("name") != "stdout":
        return {"output_type": "stream", "name": "stdout", "text": _stderr_text(output)}
    if kind == "error" and passed:
        return None
    if kind == "update_display_data":
        return None
    return dict(output)


def _stderr_text(output: Any) -> str:
    text = output.get("text", "")
    if isinstance(text, list):
        text = "".join(text)
    text = str(text)
    lines = text.splitlines(keepends=True)
    return "".join(f"[stderr] {line}" for line in lines)


def _failure(messages: list[str]) -> Any:
    import nbformat

    return nbformat.v4.new_output(
        "error",
        ename="TestFailed",
        evalue="; ".join(messages),
        traceback=["TestFailed: hidden checks failed", *(f"  - {m}" for m in messages)],
    )


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
        if error or problems:
            raise ValueError(f"reference run of {grade_id}: {error or problems[0]}")
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
