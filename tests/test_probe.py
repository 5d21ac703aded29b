"""Hidden tests decided outside the student's kernel: probe encoding, comparison, verdicts."""

from __future__ import annotations

import json
import math
import os
import stat

import nbformat
import numpy as np
import pytest
from nbgrader.utils import determine_grade

from dlcourse import probe
from dlcourse.grader.verdict import (
    REDACTED,
    REVEALED,
    STOPPED,
    MethodRule,
    Probe,
    apply,
    compare,
    decide,
    decode,
    expectation,
    expected_from,
    load_expected,
    method_violations,
    probes_of,
    save_expected,
    verdict_outputs,
)
from dlcourse.grader.verdict import partial_score as verdict_partial

POINTS = 2.0


def roundtrip(value):
    return decode(json.loads(json.dumps(probe.encode(value), allow_nan=False)))


def p(key, value, **kw) -> Probe:
    return Probe(key, probe.encode(value), **kw)


def graded_cell(*outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("hidden test")
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": POINTS,
        "grade_id": "t1",
    }
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def recorded(key, value, **kw) -> dict:
    payload = {"key": key, "value": probe.encode(value), "rtol": 1e-5, "atol": 1e-6}
    payload |= {"hint": "", "dtype": False} | kw
    return {"output_type": "display_data", "data": {probe.MIME: payload}, "metadata": {}}


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def error(ename="AssertionError", evalue="") -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


def grade(cell) -> float:
    return determine_grade(cell)[0]


# --- encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -7, 2**70, 1.5, "Adam", "", [1, "a", None], {"a": [1, 2]}, {}],
)
def test_plain_values_round_trip(value):
    assert roundtrip(value) == value
    assert type(roundtrip(value)) is type(value)


def test_tuples_become_lists():
    assert roundtrip((1, (2, 3))) == [1, [2, 3]]


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_round_trip(x):
    encoded = probe.encode(x)
    assert "__float__" in encoded
    assert roundtrip(x) == x or (math.isnan(x) and math.isnan(roundtrip(x)))


def test_numpy_scalars_become_python_numbers():
    assert roundtrip(np.float32(0.5)) == 0.5 and type(roundtrip(np.float32(0.5))) is float
    assert roundtrip(np.int64(3)) == 3 and type(roundtrip(np.int64(3))) is int
    assert roundtrip(np.bool_(True)) is True


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8", "bool"])
def test_arrays_round_trip(dtype):
    arr = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    back = roundtrip(arr)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_arrays_with_nan_and_zero_size_round_trip():
    back = roundtrip(np.array([1.0, np.nan, -np.inf]))
    np.testing.assert_array_equal(back, [1.0, np.nan, -np.inf])
    assert roundtrip(np.zeros((0, 3))).shape == (0, 3)
    assert roundtrip(np.array(2.5)).shape == ()


def test_tensorflow_tensors_and_variables():
    tf = pytest.importorskip("tensorflow")
    t = tf.constant([[1.0, 2.0]], dtype=tf.float32)
    v = tf.Variable([1, 2, 3])
    assert roundtrip(t).dtype == np.float32 and roundtrip(t).shape == (1, 2)
    np.testing.assert_array_equal(roundtrip(v), [1, 2, 3])
    assert roundtrip({"w": v, "b": tf.constant(0.5)})["b"].item() == 0.5


def test_other_objects_are_named_not_pickled():
    class Secret:
        pass

    assert probe.encode(Secret()) == {"__repr__": "Secret"}
    assert probe.encode({1: 2}) == {"__repr__": "dict"}
    assert probe.encode(np.array([1 + 2j])) == {"__repr__": "ndarray[complex128]"}


def test_dicts_that_look_like_tags_stay_dicts():
    value = {"__error__": "not an error"}
    assert roundtrip(value) == value
    assert compare(p("k", value), p("k", value)) is None


def test_size_and_depth_are_bounded():
    assert probe.encode(np.zeros(probe.MAX_ELEMENTS + 1)) == {"__error__": "too large"}
    assert probe.encode([0] * (probe.MAX_ELEMENTS + 1)) == {"__error__": "too large"}
    deep: list = []
    for _ in range(probe.MAX_DEPTH + 5):
        deep = [deep]
    assert probe.encode(deep) == {"__error__": "too large"}
    loop: list = []
    loop.append(loop)
    assert probe.encode(loop) == {"__error__": "too large"}


def test_a_broken_array_is_an_error_not_a_crash():
    class Hostile:
        def __array__(self, *a, **k):
            raise RuntimeError("boom")

    assert probe.encode(Hostile()) == {"__error__": "could not encode: RuntimeError: boom"}


def test_record_and_record_call_emit_payloads(monkeypatch):
    sent = []
    monkeypatch.setattr(probe, "_emit", sent.append)
    probe.record("a", np.ones(2), rtol=0.1, hint="h", dtype=True)
    probe.record_call("b", lambda x: 1 / x, 0)
    probe.record_call("c", lambda x, y=1: x + y, 1, y=2, atol=0.5, weight=0.25)
    probe.method(uses=("tf.GradientTape",), forbids=("numpy",), hint="tf only")
    assert sent[0] == {
        "key": "a",
        "value": {"__ndarray__": {"dtype": "float64", "shape": [2], "data": [1.0, 1.0]}},
        "rtol": 0.1,
        "atol": 1e-6,
        "hint": "h",
        "dtype": True,
        "weight": 1.0,
        "kind": "match",
        "params": {},
    }
    assert sent[1]["value"] == {"__error__": "ZeroDivisionError: division by zero"}
    assert sent[2]["value"] == 3 and sent[2]["atol"] == 0.5 and sent[2]["weight"] == 0.25
    probe.record("d", [1], kind="custom_kind", params={"at": np.float32(0.5).item(), "n": [1]})
    assert sent[4]["kind"] == "custom_kind" and sent[4]["params"] == {"at": 0.5, "n": [1]}
    assert sent[3] == {
        "key": "__method__",
        "uses": ["tf.GradientTape"],
        "forbids": ["numpy"],
        "hint": "tf only",
    }
    for payload in sent:
        json.dumps(payload, allow_nan=False)


# --- comparing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("want", "got"),
    [
        (0.5, np.float32(0.5)),
        (1, 1.0),
        (1.0, 1),
        (3, np.int64(3)),
        (np.array([3.0, 4.0]), np.array([3, 4])),  # float64 counts vs int counts
        (np.array([3, 4]), np.array([3.0, 4.0])),
        (2.5, np.array(2.5)),  # scalar vs 0-d array
        (2.5, np.array([2.5])),  # scalar vs one-element array
        (np.array(2.5), 2.5),
        (np.float32(0.1) * 3, 0.3),
        (math.nan, math.nan),
        (np.array([np.nan, 1.0]), np.array([np.nan, 1.0])),
        ([1, (2.0, "x")], (1.0, [2, "x"])),
        ({"loss": 0.25, "acc": 1}, {"acc": 1.0, "loss": np.float32(0.25)}),
        (True, np.bool_(True)),
        (True, np.array(True)),
        (np.array([False]), False),
        (1e300, 10**300),
        ("Adam", "Adam"),
        (None, None),
    ],
)
def test_fair_comparisons_pass(want, got):
    assert compare(p("k", want), p("k", got)) is None


def test_tensorflow_results_compare_with_numpy_references():
    tf = pytest.importorskip("tensorflow")
    assert compare(p("k", np.eye(2)), p("k", tf.eye(2))) is None
    assert compare(p("k", 0.5), p("k", tf.constant(0.5))) is None


@pytest.mark.parametrize(
    ("want", "got", "message"),
    [
        (np.zeros((1, 3, 3, 3)), np.zeros((1, 3, 4, 3)), "shape (1, 3, 3, 3) expected, got"),
        (np.arange(27.0), np.arange(27.0) + (np.arange(27) < 4) * 2, "4 of 27 positions"),
        ("Adam", "AdamW", "expected Adam, got AdamW"),
        (True, 1, "expected True, got 1"),
        (1, True, "expected 1, got True"),
        (np.array(1.0), True, "expected 1.0, got True"),
        (np.array(True), 1, "expected True, got 1"),
        (1.0, 10**400, "expected 1.0"),
        (True, np.array([True, True]), "expected True"),
        (True, np.array(1), "expected True"),
        (np.array([True, False]), np.array([1, 0]), "expected an array of bool"),
        (3, 4, "expected 3, got 4"),
        (2**60, 2**60 + 1, "expected"),
        (0.5, 0.6, "expected 0.5, got 0.6"),
        (0.5, "0.5", "expected 0.5, got 0.5"),
        (None, 0, "expected None, got 0"),
        ([1, 2], [1, 2, 3], "list of 2, got a list of 3"),
        ([1, 2], np.array([1, 2]), "expected a list"),
        ({"a": 1}, {"b": 1}, "keys differ"),
        ({"a": 1}, {"a": 2}, "['a'] expected 1, got 2"),
        (np.ones(3), 1.0, "expected an array of shape (3,)"),
        (math.nan, 1.0, "expected nan"),
    ],
)
def test_discriminating_comparisons_fail(want, got, message):
    result = compare(p("center_crop(wide, 3)", want), p("center_crop(wide, 3)", got))
    assert result is not None and result.startswith("center_crop(wide, 3): ")
    assert message in result


def test_dtype_is_checked_only_when_asked():
    f32, f64 = np.ones(2, np.float32), np.ones(2, np.float64)
    assert compare(p("k", f32), p("k", f64)) is None
    assert "dtype float32 expected, got float64" in compare(p("k", f32, dtype=True), p("k", f64))


def test_tolerances_and_hint_come_from_expected_only():
    loose = dict(rtol=1e9, atol=1e9, hint="forged")
    message = compare(p("k", np.ones(3), hint="normalise first"), p("k", np.zeros(3), **loose))
    assert message == (
        "k: values differ at 3 of 3 positions (largest difference 1) (hint: normalise first)"
    )
    assert compare(p("k", 1.0, rtol=0.1), p("k", 1.05, rtol=0)) is None


def test_errors_never_equal_anything():
    err = {"__error__": "TypeError: nope"}
    assert compare(p("k", 1), Probe("k", err)) == "k: raised TypeError: nope"
    assert compare(Probe("k", err), Probe("k", err)) is not None
    assert compare(p("k", 1), None) == "k: no value was recorded"


def test_redacted_messages_hide_expected_values():
    assert compare(p("opt", "Adam"), p("opt", "AdamW"), shown=REDACTED) == "opt: wrong value"
    message = compare(p("opt", "Adam"), p("opt", "AdamW"), shown=REVEALED)
    assert message == "opt: expected Adam, got another value"


SECRET = "rng.integers(0, 256, size=(3, 5, 7))"  # a hidden line, as student code could read it
HOSTILE_VALUES = [  # (expected, what a student's function gave, the instructor's detail)
    (np.ones(3), SECRET, SECRET[:20]),
    (1.5, SECRET, SECRET[:20]),
    ("Adam", SECRET, SECRET[:20]),
    ([1, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], "a list of 12"),
    ({"a": 1}, {"a": 1, SECRET: 2}, SECRET),
    (np.zeros(2), np.zeros((0, 314159, 2718)), "314159"),  # a shape can carry numbers
    (np.array([2.5]), np.array([0.0]), "2.5"),  # one element: the difference is the value
    (np.array(2.5), np.array(0.0), "2.5"),
    (np.arange(1000.0), np.arange(1000.0) * (np.arange(1000) % 7 != 0), "of 1000"),  # a count
    (np.array(["a"]), np.array([SECRET]), "1 of 1"),
]


@pytest.mark.parametrize(("want", "got", "detail"), HOSTILE_VALUES)
def test_messages_for_the_notebook_quote_nothing_from_the_kernel(want, got, detail):
    full = compare(p("k", want), p("k", got))
    assert full is not None and detail in full  # the instructor's log has it
    for shown in (REDACTED, REVEALED):
        message = compare(p("k", want), p("k", got), shown=shown)
        assert message is not None and message.startswith("k: ")
        assert detail not in message and SECRET[:10] not in message, message


def test_messages_for_the_notebook_quote_no_exception_text():
    for encoded in (
        {"__error__": f"ValueError: {SECRET}"},
        {"__error__": f"{SECRET}: boom"},  # a class named after the secret
        {"__error__": f"could not encode: {SECRET}"},
    ):
        assert SECRET in compare(p("k", 1), Probe("k", encoded))
        for shown in (REDACTED, REVEALED):
            assert SECRET not in compare(p("k", 1), Probe("k", encoded), shown=shown)
    assert compare(p("k", 1), Probe("k", {"__error__": "ValueError: x"}), shown=REDACTED) == (
        "k: raised ValueError"
    )
    reference_failed = Probe("k", {"__error__": f"KeyError: {SECRET}"})
    assert SECRET not in compare(reference_failed, p("k", 1), shown=REDACTED)


# --- reading cells ---------------------------------------------------------------------------


def test_probes_of_reads_dicts_and_json_strings():
    as_string = recorded("b", 2)
    as_string["data"][probe.MIME] = json.dumps(as_string["data"][probe.MIME])
    method = {"key": "__method__", "uses": ["a"], "forbids": [], "hint": ""}
    cell = graded_cell(
        recorded("a", 1),
        as_string,
        {"output_type": "display_data", "data": {probe.MIME: method}},
        stream("stdout", "hello"),
    )
    probes, rule, problems = probes_of(cell)
    assert set(probes) == {"a", "b"} and probes["b"].value == 2
    assert rule == MethodRule(("a",), (), "")
    assert problems == []


@pytest.mark.parametrize(
    "payload",
    [
        "not json {",
        "[1, 2]",
        42,
        {"key": "a"},
        {"key": 3, "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": False},
        {"key": "a", "value": 1, "rtol": -1, "atol": 0, "hint": "", "dtype": False},
        {"key": "a", "value": 1, "rtol": "x", "atol": 0, "hint": "", "dtype": False},
        {"key": "a", "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": "yes"},
        {"key": "a", "value": {"__float__": "zzz"}, "rtol": 0, "atol": 0, "hint": "", "dtype": 0},
        {"key": "a", "value": {"__ndarray__": {"dtype": "O", "shape": [1], "data": [1]}}},
        {"key": "__method__", "uses": "np", "forbids": [], "hint": ""},
        {"key": "a", "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": False, "weight": 0},
        {"key": "a", "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": False, "weight": -1},
        {"key": "a", "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": False, "kind": "A b"},
        {"key": "a", "value": 1, "rtol": 0, "atol": 0, "hint": "", "dtype": False, "params": []},
    ],
)
def test_malformed_payloads_are_problems_not_crashes(payload):
    out = {"output_type": "display_data", "data": {probe.MIME: payload}, "metadata": {}}
    probes, rule, problems = probes_of(graded_cell(out))
    assert probes == {} and rule is None and len(problems) == 1


@pytest.mark.parametrize(
    "value",
    [
        {"__ndarray__": {"dtype": "float64", "shape": [2], "data": [1.0]}},
        {"__ndarray__": {"dtype": "object", "shape": [1], "data": [1]}},
        {"__ndarray__": {"dtype": "V8", "shape": [1], "data": [1]}},
        {"__ndarray__": {"dtype": "[('a', 'i4')]", "shape": [1], "data": [1]}},
        {"__ndarray__": {"dtype": "float64", "shape": [-1], "data": []}},
        {"__ndarray__": {"dtype": "float64", "shape": [1], "data": [[1.0]]}},
        {"__ndarray__": {"dtype": "int8", "shape": [1], "data": ["x"]}},
        {"__ndarray__": {"dtype": "float64", "shape": [10**9, 10**9], "data": []}},
        {"__repr__": 3},
        [float("nan")],
    ],
)
def test_malformed_values_are_rejected(value):
    cell = graded_cell(recorded("a", None) | {})
    cell.outputs[0]["data"][probe.MIME]["value"] = value
    probes, _, problems = probes_of(cell)
    assert probes == {} and problems and problems[0].startswith("a recorded value is malformed")


def test_a_key_recorded_twice_is_a_problem():
    _, _, problems = probes_of(graded_cell(recorded("a", 1), recorded("a", 2)))
    assert problems == ["a: recorded twice"]
    verdict = decide(graded_cell(recorded("a", 1), recorded("a", 2)), {"a": p("a", 1)}, None, [])
    assert not verdict.passed


# --- verdicts and outputs --------------------------------------------------------------------


def decided(cell, expected, rule=None, sources=(), **kw):
    verdict = decide(cell, expected, rule, list(sources))
    apply(cell, verdict, **kw)
    return verdict, grade(cell)


def test_right_answer_gets_full_points():
    verdict, points = decided(graded_cell(recorded("a", 1.0)), {"a": p("a", 1)})
    assert verdict.passed and verdict.checked == 1 and points == POINTS
    assert verdict.messages == []


@pytest.mark.parametrize("text", ["16", "2"])
def test_forged_execute_result_before_a_failure_gives_zero(text):
    forged = {
        "output_type": "execute_result",
        "execution_count": 3,
        "data": {"text/plain": text},
        "metadata": {},
    }
    cell = graded_cell(forged, recorded("a", 5), error())
    if float(text) > POINTS:  # what nbgrader alone does: crash the grading of this notebook
        with pytest.raises(ValueError, match="greater than maximum"):
            grade(cell)
    else:  # or give full points
        assert grade(cell) == POINTS
    verdict, points = decided(cell, {"a": p("a", 4)})
    assert not verdict.passed and points == 0
    assert cell.outputs[0].output_type == "error" and cell.outputs[0].ename == "TestFailed"
    assert all(o.output_type != "execute_result" for o in cell.outputs)
    assert all(probe.MIME not in o.get("data", {}) for o in cell.outputs)


def test_forged_execute_result_without_error_gives_zero_on_a_wrong_value():
    forged = {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {}}
    cell = graded_cell(forged, recorded("a", 5))
    assert decided(cell, {"a": p("a", 4)})[1] == 0


def test_a_right_answer_with_a_zero_execute_result_still_gets_full_points():
    low = {"output_type": "execute_result", "data": {"text/plain": "0"}, "metadata": {}}
    cell = graded_cell(recorded("a", 4), low)
    assert decided(cell, {"a": p("a", 4)})[1] == POINTS


def test_stderr_only_output_gets_full_points():
    warning = "UserWarning: Do not pass an `input_shape`\n  super().__init__(\n"
    cell = graded_cell(stream("stderr", warning), recorded("a", 1))
    assert grade(cell) == 0  # what nbgrader alone would give
    verdict, points = decided(cell, {"a": p("a", 1)})
    assert points == POINTS
    assert cell.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "hidden checks passed (1)\n"}
    ]


def test_the_kernels_outputs_of_a_test_cell_are_replaced_by_the_verdict():
    """The hidden part ran in the kernel: what it printed or showed may quote it."""
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    html = {"output_type": "display_data", "data": {"text/html": SECRET}, "metadata": {}}
    for outcome in (1, 2):
        cell = graded_cell(stream("stdout", SECRET), image, html, recorded("a", outcome))
        cell.outputs.append(nbformat.from_dict(stream("stderr", SECRET)))
        verdict, _ = decided(cell, {"a": p("a", 1)})
        assert len(cell.outputs) == 1 and SECRET not in json.dumps(cell.outputs)
        assert cell.outputs[0].output_type == ("stream" if verdict.passed else "error")


def test_an_error_is_a_failed_check_and_zeroes_the_checks_it_stopped():
    """An error after every check was recorded counts as one more failed check (never full
    marks); the checks an error stopped before they were recorded earn nothing."""
    cell = graded_cell(recorded("a", 1), error("ValueError", f"bad {SECRET}"))
    verdict, points = decided(cell, {"a": p("a", 1)})
    assert points == POINTS / 2 and verdict.messages == [
        f"the test raised ValueError: bad {SECRET}"
    ]
    assert verdict.redacted == verdict.revealed == ["the test raised ValueError"]
    assert [o.output_type for o in cell.outputs] == ["stream", "execute_result"]
    assert SECRET not in json.dumps(cell.outputs)
    cell = graded_cell(recorded("a", 1), error("ValueError", SECRET))
    verdict, points = decided(cell, {"a": p("a", 1), "b": p("b", 2), "c": p("c", 3)})
    assert points == round(POINTS / 3, 2) and verdict.counted == 3
    assert decided(graded_cell(error("ValueError", SECRET)), {"a": p("a", 1)})[1] == 0


def test_an_error_name_is_quoted_only_when_it_is_pythons():
    cell = graded_cell(recorded("a", 1), error(SECRET, SECRET))
    verdict, _ = decided(cell, {"a": p("a", 1)})
    assert verdict.redacted == ["the test raised an exception"]
    assert SECRET not in json.dumps(cell.outputs)


@pytest.mark.parametrize("stop", STOPPED)
def test_a_cell_the_grader_stopped_keeps_the_name_the_driver_explains(stop):
    from dlcourse.grader.driver import OUTPUT_NOTES

    assert set(STOPPED) == set(OUTPUT_NOTES) - {"TestFailed"}
    cell = graded_cell(error(stop, "whatever the kernel said"))
    decided(cell, {"a": p("a", 1)})
    assert [o.ename for o in cell.outputs] == [stop]
    assert "whatever" not in json.dumps(cell.outputs)


@pytest.mark.parametrize("stop", STOPPED)
def test_a_partial_score_the_grader_cut_short_keeps_the_notes(stop, tmp_path):
    from dlcourse.grader.driver import OUTPUT_NOTES, output_notes

    cell = graded_cell(recorded("a", 1), error(stop, "whatever the kernel said"))
    decided(cell, {"a": p("a", 1), "b": p("b", 2)})
    assert [o.output_type for o in cell.outputs] == ["stream", "execute_result"]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "ws.ipynb")
    assert set(output_notes(tmp_path)) == {OUTPUT_NOTES[stop], OUTPUT_NOTES["TestFailed"]}


def test_malformed_or_repeated_records_are_not_quoted():
    forged = recorded(SECRET, 1)
    cell = graded_cell(recorded("a", 1), forged, forged, recorded("b", "x") | {"metadata": {}})
    cell.outputs[-1]["data"][probe.MIME]["value"] = {"__ndarray__": SECRET}
    verdict, points = decided(cell, {"a": p("a", 1)})
    assert points == 0 and any(SECRET in m for m in verdict.messages)
    assert verdict.redacted == ["some recorded values were malformed or recorded twice"]


def test_feedback_keeps_only_the_verdicts_outputs():
    passed = graded_cell(recorded("a", 1))
    decided(passed, {"a": p("a", 1)})
    failed = graded_cell(recorded("a", 2))
    decided(failed, {"a": p("a", 1)})
    for cell in (passed, failed):
        assert verdict_outputs(cell) == cell.outputs
    stale = graded_cell(  # what an older grader left in an autograded notebook
        stream("stdout", SECRET),
        stream("stdout", "hidden checks passed (3)\n" + SECRET),
        error("AssertionError", SECRET),
        {"output_type": "display_data", "data": {"text/plain": SECRET}, "metadata": {}},
        {
            "output_type": "error",
            "ename": "TestFailed",
            "evalue": "k: wrong",
            "traceback": [SECRET],
        },
    )
    kept = verdict_outputs(stale)
    assert [o.ename for o in kept] == ["TestFailed"] and SECRET not in json.dumps(kept)


def test_no_expected_values_means_no_error_output():
    assert decided(graded_cell(stream("stdout", "hi")), {})[1] == POINTS
    assert decided(graded_cell(error()), {})[1] == 0


def test_missing_keys_fail_and_extra_keys_are_ignored():
    cell = graded_cell(recorded("a", 1), recorded("extra", 9))
    verdict, points = decided(cell, {"a": p("a", 1), "b": p("b", 2)})
    assert points == POINTS / 2 and verdict.messages == ["b: no value was recorded"]
    assert decided(graded_cell(recorded("a", 1), recorded("x", 9)), {"a": p("a", 1)})[1] == POINTS


def test_partial_credit_is_the_weighted_share_of_the_checks_passed():
    expected = {"a": p("a", 1, weight=3), "b": p("b", 2), "c": p("c", 3, weight=0.5)}
    for values, points in [
        ((1, 2, 3), POINTS),
        ((1, 0, 0), 1.33),
        ((0, 2, 3), 0.67),
        ((0,) * 3, 0),
    ]:
        cell = graded_cell(*(recorded(k, v) for k, v in zip("abc", values, strict=True)))
        verdict, got = decided(cell, expected)
        assert got == points, values
        assert verdict.passed == (points == POINTS)
    cell = graded_cell(recorded("a", 1), recorded("b", 0), recorded("c", 0))
    decided(cell, expected)
    text = cell.outputs[0].text
    assert text.splitlines() == [
        "hidden checks: partial credit, 1.33 of 2 points (1 of 3 checks passed)",
        "  passed: a",
        "  failed: b: wrong value",
        "  failed: c: wrong value",
    ]
    assert cell.outputs[1] == {
        "output_type": "execute_result",
        "data": {"text/plain": "1.33"},
        "metadata": {},
        "execution_count": None,
    }
    nbformat.validate(nbformat.v4.new_notebook(cells=[cell]))


def test_a_broken_method_rule_or_a_forged_record_zeroes_partial_credit():
    expected = {"a": p("a", 1), "b": p("b", 2)}
    rule = MethodRule(forbids=("np",))
    cell = graded_cell(recorded("a", 1), recorded("b", 0))
    assert decided(cell, expected, rule, [NUMPY_ANSWER])[1] == 0
    cell = graded_cell(recorded("a", 1), recorded("b", 0))
    assert decided(cell, expected, rule, ["def total(x):\n    return sum(x)\n"])[1] == 1.0
    twice = graded_cell(recorded("a", 1), recorded("a", 1), recorded("b", 0))
    assert decided(twice, expected)[1] == 0
    by_behaviour = {"a": p("a", 1), "b": p("b", 2), "tape": p("tape", -2, kind="method")}
    cell = graded_cell(recorded("a", 1), recorded("b", 0), recorded("tape", -2))
    assert decided(cell, by_behaviour)[1] == round(POINTS * 2 / 3, 2)
    cell = graded_cell(recorded("a", 1), recorded("b", 2), recorded("tape", 1))
    verdict, points = decided(cell, by_behaviour)
    assert points == 0 and verdict.redacted == ["tape: wrong value"]


def test_a_credit_kind_gives_a_share_of_a_check(monkeypatch):
    from dlcourse.grader import verdict as v

    def half(expected, got, shown):
        return (0.5, f"{expected.key}: half") if got is not None else (0.0, "none")

    monkeypatch.setitem(v.CREDIT_KINDS, "half", half)
    monkeypatch.setitem(v.CREDIT_KINDS, "broken", lambda *_: (2.0, None))
    monkeypatch.setitem(v.CREDIT_KINDS, "crashes", lambda *_: 1 / 0)
    cell = graded_cell(recorded("a", 1), recorded("b", 1))
    verdict, points = decided(cell, {"a": p("a", 1, kind="half"), "b": p("b", 1)})
    assert points == 1.5 and verdict.redacted == ["a: half"] and verdict.passed_checks == ["b"]
    for kind in ("broken", "crashes", "unknown"):
        cell = graded_cell(recorded("a", 1), recorded("b", 1))
        verdict, points = decided(cell, {"a": p("a", 1, kind=kind), "b": p("b", 1)})
        assert points == 1.0 and verdict.redacted[0].startswith("a: the grader c")


@pytest.mark.parametrize(
    ("fraction", "points", "score"),
    [
        (0.001, 2.0, 0.01),
        (0.9999, 2.0, 1.99),
        (0.5, 0.01, 0.0),
        (1 / 3, 1.0, 0.33),
        (0.0, 2.0, 0.0),
    ],
)
def test_a_partial_score_is_never_zero_nor_full(fraction, points, score):
    from dlcourse.grader.verdict import Verdict

    assert Verdict(False, ["x"], 1, fraction=fraction).score(points) == score
    assert Verdict(True, [], 1).score(points) == points


def test_feedback_rebuilds_a_partial_score_and_no_forgery_of_it():
    cell = graded_cell(recorded("a", 1), recorded("b", 0))
    decided(cell, {"a": p("a", 1), "b": p("b", 2)}, show_hidden_values=True)
    assert verdict_outputs(cell) == cell.outputs and len(cell.outputs) == 2
    assert verdict_partial(cell) == 1.0
    head = "hidden checks: partial credit, 1 of 2 points (1 of 2 checks passed)\n"
    result = {"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}}
    for forged in (
        [stream("stdout", head + SECRET), result],  # a line not of the form
        [stream("stdout", head + f"  failed: x\n{SECRET}\n"), result],
        [stream("stdout", head), result | {"data": {"text/plain": "2"}}],  # the points disagree
        [stream("stdout", head)],  # no points
        [stream("stderr", head), result],
        [result, stream("stdout", head)],
        [
            stream("stdout", head.replace("1 of 2 points", "2 of 2 points")),
            result | {"data": {"text/plain": "2"}},
        ],
    ):
        assert verdict_outputs(graded_cell(*forged)) == [], forged
    # and a kernel that prints the form in a test cell is replaced by the verdict
    cell = graded_cell(stream("stdout", head), result, recorded("a", 0))
    assert grade(cell) == 1.0  # what nbgrader alone would give
    assert (
        decided(cell, {"a": p("a", 1)})[1] == 0 and verdict_outputs(cell)[0].ename == "TestFailed"
    )


def test_failure_text_hides_expected_values_unless_asked():
    cell = graded_cell(recorded("opt", "AdamW"))
    verdict, _ = decided(cell, {"opt": p("opt", "Adam")})
    assert verdict.messages == ["opt: expected Adam, got AdamW"]  # the instructor's log
    assert cell.outputs[0].evalue == "opt: wrong value"
    cell = graded_cell(recorded("opt", "AdamW"))
    decided(cell, {"opt": p("opt", "Adam")}, show_hidden_values=True)
    assert cell.outputs[0].evalue == "opt: expected Adam, got another value"
    assert cell.outputs[0].traceback[1] == "  - opt: expected Adam, got another value"


def test_the_outputs_stay_valid_nbformat():
    cell = graded_cell(stream("stderr", "w\n"), recorded("a", 2), error())
    decided(cell, {"a": p("a", 1)})
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.validate(nb)


# --- method rules ----------------------------------------------------------------------------

NUMPY_ANSWER = "import numpy as np\n\ndef total(x):\n    return np.sum(x)\n"
TF_ANSWER = (
    "import tensorflow as tf\n\ndef grad(f, x):\n    with tf.GradientTape() as t:\n"
    "        t.watch(x)\n        y = f(x)\n    return t.gradient(y, x)\n"
)


@pytest.mark.parametrize(
    ("source", "violates"),
    [
        (NUMPY_ANSWER, True),
        ("import numpy\nx = numpy.ones(2)", True),
        ("from numpy import sum as s", True),
        ("import numpy.linalg as la", True),
        ("import math\nmath.sqrt(2)", True),
        ("m = __import__('numpy')", True),
        ("import importlib\nm = importlib.import_module('math')", True),
        ("def f(x):\n    return x.sum()", False),
        ("import tensorflow as tf\ntf.reduce_sum([1])", False),
    ],
)
def test_forbidden_names(source, violates):
    rule = MethodRule(forbids=("numpy", "np", "math"), hint="use TensorFlow ops only")
    found = method_violations(rule, [source])
    assert bool(found) is violates
    if violates:
        assert found[0].endswith("(hint: use TensorFlow ops only)")


def test_required_names_by_attribute_and_import():
    rule = MethodRule(uses=("GradientTape",))
    assert method_violations(rule, [TF_ANSWER]) == []
    assert method_violations(MethodRule(uses=("tf.GradientTape",)), [TF_ANSWER]) == []
    assert method_violations(rule, ["from tensorflow import GradientTape"]) == []
    assert method_violations(rule, ["def grad(f, x):\n    return None"]) == [
        "the answer should use GradientTape"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "tf.compat.v1.gradients(y, x)",
        "g = tf.compat.v2.gradients",
        "from tensorflow import gradients\ngradients(y, x)",
        "from tensorflow.compat.v1 import gradients as grads",
        "import tensorflow.compat.v1 as v1\nv1.gradients(y, x)",
        "from tensorflow.compat import v1\nv1.gradients(y, x)",
        "import tensorflow as T\nT.gradients(y, x)",
        "getattr(tf.compat.v1, 'gradients')(y, x)",
        "from tensorflow import test as t\nt.compute_gradient(f, [x])",
    ],
)
def test_forbidden_dotted_names_under_any_alias_or_import_form(source):
    rule = MethodRule(forbids=("tf.gradients", "tf.test.compute_gradient"))
    assert method_violations(rule, [source]), source


def test_a_students_own_name_is_not_an_alias():
    rule = MethodRule(forbids=("tf.gradients",))
    assert method_violations(rule, ["gradients = [1.0, 2.0]\ngradients.append(3.0)"]) == []
    assert method_violations(rule, ["import numpy as np\nnp.gradient([1.0, 2.0])"]) == []


def test_autodiff_altered_changes_what_the_tape_answers_and_only_inside():
    tf = pytest.importorskip("tensorflow")

    def from_tape(w):
        w = tf.Variable(w)
        with tf.GradientTape() as tape:
            loss = w * w
        return float(tape.gradient(loss, w))

    @tf.function
    def traced(w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            loss = w * w
        return tape.gradient(loss, w)

    def by_hand(w):
        return 2.0 * w

    assert float(traced(tf.constant(3.0))) == 6.0  # traced before the change
    altered = probe.AUTODIFF_FACTOR * 6.0
    assert probe.call_with_autodiff_altered(from_tape, 3.0) == altered
    assert float(probe.call_with_autodiff_altered(traced, tf.constant(3.0))) == altered
    assert probe.call_with_autodiff_altered(by_hand, 3.0) == 6.0
    with pytest.raises(RuntimeError):  # graph-mode tf.gradients under any name: no answer
        probe.call_with_autodiff_altered(
            tf.function(lambda x: tf.compat.v1.gradients(x * x, x)), tf.constant(1.0)
        )
    assert from_tape(3.0) == 6.0 and float(traced(tf.constant(3.0))) == 6.0
    assert not tf.config.functions_run_eagerly()


def test_names_from_several_answer_cells_count_together():
    assert method_violations(MethodRule(uses=("tf", "f")), ["import tensorflow as tf", "f()"]) == []


def test_unparseable_answers_and_magics():
    rule = MethodRule(uses=("x",), hint="write a loop")
    assert method_violations(rule, ["def f(:\n"]) == [
        "the answer could not be parsed (hint: write a loop)"
    ]
    assert method_violations(rule, ["%timeit 1\nx = 1\n!ls"]) == []


def test_method_violations_fail_the_verdict():
    rule = MethodRule(forbids=("np",), hint="no numpy")
    verdict, points = decided(graded_cell(recorded("a", 1)), {"a": p("a", 1)}, rule, [NUMPY_ANSWER])
    assert points == 0 and verdict.messages == ["the answer must not use np (hint: no numpy)"]
    assert verdict.checked == 2


# --- expected values -------------------------------------------------------------------------


def master_notebook(*test_outputs) -> nbformat.NotebookNode:
    solution = nbformat.v4.new_code_cell("def f(x):\n    return x")
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "s1"}
    return nbformat.v4.new_notebook(cells=[solution, graded_cell(*test_outputs)])


def test_expected_from_save_and_load(tmp_path):
    method = {"key": "__method__", "uses": ["f"], "forbids": ["np"], "hint": "h"}
    nb = master_notebook(
        recorded("a", np.ones(2), rtol=0.01),
        {"output_type": "display_data", "data": {probe.MIME: method}, "metadata": {}},
    )
    data = expected_from(nb)
    path = tmp_path / "expected.json"
    save_expected(path, data)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_expected(path)
    assert loaded == data
    expected, rule = expectation(loaded, "t1")
    assert expected["a"].rtol == 0.01 and rule == MethodRule(("f",), ("np",), "h")
    assert expectation(loaded, "missing") == ({}, None)
    weighted = expected_from(master_notebook(recorded("a", 1, weight=0.5, params={"k": [1]})))
    save_expected(path, weighted)
    expected, _ = expectation(load_expected(path), "t1")
    a = expected["a"]
    assert (a.weight, a.kind, a.params) == (0.5, "match", {"k": [1]})
    old = {"t1": {"probes": {"a": {"key": "a", "value": 1}}, "method": None}}  # before weights
    assert expectation(old, "t1")[0]["a"].weight == 1.0
    with pytest.raises(ValueError, match="unknown check kind"):
        expected_from(master_notebook(recorded("a", 1, kind="no_such_kind")))


def test_save_expected_tightens_an_existing_file(tmp_path):
    path = tmp_path / "expected.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    save_expected(path, {})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_expected_from_refuses_a_failing_reference():
    with pytest.raises(ValueError, match="t1"):
        expected_from(master_notebook(recorded("a", 1), error()))


def test_type_checks_ask_the_value_s_own_type_not_the_value():
    """is_tensor and tracing_count are decided by TensorFlow's own classes: an array whose
    __class__ claims tf.Tensor, a class whose metaclass says it equals anything, a tf.function
    whose tracing count was replaced, or an object reporting one trace, earn nothing."""
    tf = pytest.importorskip("tensorflow")

    class Claims(np.ndarray):
        @property
        def __class__(self):
            return tf.Tensor

    class EqualsAnything(type):
        def __eq__(cls, other):
            return True

        __hash__ = type.__hash__

    class Liar(metaclass=EqualsAnything):
        def experimental_get_tracing_count(self):
            return 1

    fake = np.zeros(3, np.float32).view(Claims)
    assert isinstance(fake, tf.Tensor)  # what fooled the hidden tests before
    assert probe.is_tensor(tf.constant([1.0])) and probe.is_tensor(tf.zeros((2, 2)))
    assert not any(probe.is_tensor(v) for v in (fake, np.zeros(3), Liar(), 1.0, None))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def once(x):
        return x * 2.0

    @tf.function
    def retraces(x):
        return x * 2.0

    for n in (1, 2, 3):
        once(tf.ones(n))
        retraces(tf.ones(n))
    retraces.experimental_get_tracing_count = lambda: 1
    assert probe.tracing_count(once) == 1
    assert probe.tracing_count(retraces) > 1
    assert probe.tracing_count(Liar()) is None and probe.tracing_count(len) is None


def test_is_a_asks_the_value_s_own_type_and_its_own_mro():
    """probe.is_a judges ndarray, keras.Model and dict by the value's own type and that type's
    own MRO: a __class__ property, a metaclass's __instancecheck__ or __mro__, or a registered
    virtual subclass earn nothing; real subclasses (an OrderedDict, a Sequential) count."""
    import collections

    keras = pytest.importorskip("keras")

    class ClaimsModel:
        @property
        def __class__(self):
            return keras.Model

    class ClaimsArray(list):
        @property
        def __class__(self):
            return np.ndarray

    class Says(type):
        def __instancecheck__(cls, other):
            return True

        @property
        def __mro__(cls):
            return (cls, dict, object)

    class Pretends(metaclass=Says):
        pass

    assert isinstance(ClaimsModel(), keras.Model) and isinstance(ClaimsArray(), np.ndarray)
    assert not probe.is_a(ClaimsModel(), "keras.Model")
    assert not probe.is_a(ClaimsArray([1]), "ndarray") and not probe.is_a(Pretends(), "dict")
    assert probe.is_a(keras.Sequential([keras.Input((3,))]), "keras.Model")
    assert probe.is_a(np.zeros(2), "ndarray") and not probe.is_a(np.float32(1.0), "ndarray")
    assert probe.is_a(collections.OrderedDict(), "dict") and not probe.is_a([], "dict")
    with pytest.raises(ValueError, match="unknown kind"):
        probe.is_a(1, "tensor")


def test_a_test_cell_sees_python_s_builtins_not_the_student_s():
    pytest.importorskip("IPython")
    student = {"__name__": "__main__", "isinstance": lambda *a: True, "type": lambda o: int}
    try:
        exec(  # the cell runs from the student's globals, as the kernel runs it
            "from dlcourse import probe\n"
            "probe.run_test('seen_by_test = (isinstance(1, str), type(1.5).__name__)')\n",
            student,
        )
        assert probe.test_values["seen_by_test"] == (False, "float")
        assert "seen_by_test" not in student
    finally:
        probe.test_values.pop("seen_by_test", None)
        probe._student = None
