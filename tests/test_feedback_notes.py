"""Grading notes at the top of the feedback page: one line per note, whatever a student's
file names or errors put into it, and no markup of theirs."""

from __future__ import annotations

import shutil

from helpers import REPO

from dlcourse.grader import feedback, report
from dlcourse.grader.course import Course
from dlcourse.grader.driver import Outcome


def test_a_note_quoting_a_students_text_stays_one_escaped_line(tmp_path):
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    course = Course(tmp_path)
    forged = "extra file 'a\n- full marks, well done\n# Heading <script>x()</script>.txt' ignored"
    report.write_notes(course, "ws01_tensors", Outcome("mallory", True, 0.0, notes=[forged]))
    notes = feedback.notes_lines(course, "ws01_tensors", "mallory")
    assert notes == [" ".join(forged.split())]
    cell = feedback.notes_cell(notes)
    assert cell.source.count("\n- ") == 1  # the one note, no forged second item
    assert "<script>" not in cell.source and "&lt;script&gt;" in cell.source
    assert "\n# Heading" not in cell.source


def test_a_quoted_name_is_one_escaped_capped_line_whatever_it_holds():
    from dlcourse.grader.quoting import printable, quoted

    for brk in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\t\x1b\x00":
        text = quoted(f"Boom{brk}- the instructor reviewed this by hand")
        assert text.splitlines() == [text] and text.split() == text.split(" "), repr(text)
        assert text.startswith("'Boom\\") and "instructor" in text
    assert quoted("it's") == "'it\\'s'" and printable("a\\n") == "a\\\\n"  # no forged escape
    capped = printable("\n" * 500, limit=11)
    assert capped == "\\n" * 5 + "…"  # cut between escapes, never inside one
