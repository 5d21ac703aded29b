"""Per-assignment grade reports (Markdown + PNG) and per-student grading notes.

Notes are kept in the grader's own area (`grading/notes/`, which `nbgrader generate_feedback
--force` does not touch); feedback generation puts them at the top of the student's feedback
page (`dlcourse.grader.feedback`). Everything a student controls (file names, ids) is escaped
before it goes into Markdown.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from dlcourse.grader import feedback, sandbox
from dlcourse.grader.course import Course
from dlcourse.grader.driver import Outcome


def md_escape(text: str) -> str:
    """Plain text for one Markdown line or table cell: no markup, no HTML, no line breaks."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def late_by(course: Course, worksheet: str, student: str) -> timedelta | None:
    with course.gradebook() as gb:
        try:
            seconds = gb.find_submission(worksheet, student).total_seconds_late
        except Exception:  # noqa: BLE001 - MissingEntry: never submitted
            return None
    return timedelta(seconds=round(seconds)) if seconds else None


def notes_for(course: Course, worksheet: str, outcome: Outcome) -> list[str]:
    notes = list(outcome.notes)
    late = late_by(course, worksheet, outcome.student)
    if late:
        notes.append(f"submitted {late} after the due date (late)")
    return notes


def write_notes(course: Course, worksheet: str, outcome: Outcome) -> Path | None:
    """A plain-text note saying what was done and why, kept in the grader's area."""
    path = course.notes(worksheet, outcome.student)
    notes = notes_for(course, worksheet, outcome)
    if not notes:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"Grading notes for {outcome.student}, {worksheet}:", ""]
    lines += [f"- {' '.join(str(n).split())}" for n in notes]  # one line each, whatever it quotes
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def scores_table(
    course: Course, worksheet: str
) -> tuple[list[str], dict[str, float], dict[str, dict[str, float]]]:
    """(test cell ids in order, max points per cell, student -> cell -> score)."""
    with course.gradebook() as gb:
        assignment = gb.find_assignment(worksheet)
        cells = [gc for nb in assignment.notebooks for gc in nb.grade_cells]
        ids = [gc.name for gc in cells]
        points = {gc.name: float(gc.max_score) for gc in cells}
        table = {}
        for sub in assignment.submissions:
            table[sub.student.id] = {
                g.name: float(g.score) for nb in sub.notebooks for g in nb.grades
            }
    return ids, points, table


def assignment_report(course: Course, worksheet: str, outcomes: list[Outcome]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids, points, table = scores_table(course, worksheet)
    total = sum(points.values())
    folder = course.reports
    folder.mkdir(exist_ok=True, mode=0o700)

    totals = {s: sum(row.values()) for s, row in table.items()}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(
        list(totals.values()),
        bins=min(10, max(1, len(totals))),
        range=(0, total),
        color="#4c72b0",
        edgecolor="white",
    )
    ax.set(
        title=f"{worksheet}: total scores", xlabel=f"score (out of {total:g})", ylabel="students"
    )
    fig.tight_layout()
    png = folder / f"{worksheet}-histogram.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)

    lines = [
        f"# {worksheet}",
        "",
        f"{len(table)} submissions, maximum {total:g} points.",
        "",
        f"Student code was graded with the {sandbox.protections().summary()}.",
        "",
        f"![score histogram]({png.name})",
        "",
        "## Questions",
        "",
        "| test cell | points | mean | difficulty (1 − mean/points) | full | partial | zero |",
        "|---|---|---|---|---|---|---|",
    ]
    for gid in ids:
        scores = [row.get(gid, 0.0) for row in table.values()]
        mean = sum(scores) / max(1, len(table))
        full = sum(1 for x in scores if x >= points[gid])
        zero = sum(1 for x in scores if x <= 0)
        difficulty = 1 - mean / points[gid] if points[gid] else 0.0
        lines.append(
            f"| {md_escape(gid)} | {points[gid]:g} | {mean:.2f} | {difficulty:.2f} "
            f"| {full} | {len(scores) - full - zero} | {zero} |"
        )
    lines += [
        "",
        "full, partial, zero: how many submissions earned all of a test cell's points, a "
        "share of them (some of its checks passed), or none.",
    ]
    lines += ["", "## Students", "", "| student | total | notes |", "|---|---|---|"]
    by_student = {o.student: o for o in outcomes}
    attention = []
    for student in sorted(table):
        outcome = by_student.get(student)
        # graded in this run, or earlier (the formgrader's button grades one student)
        notes = (
            notes_for(course, worksheet, outcome)
            if outcome
            else feedback.notes_lines(course, worksheet, student)
        )
        if notes:
            attention.append((student, notes))
        shown = f"{round(totals[student], 2):g} / {total:g}"
        lines.append(f"| {md_escape(student)} | {shown} | {len(notes)} |")
    lines += written_section(course, worksheet)
    lines += ["", "## Submissions that need attention", ""]
    if not attention:
        lines.append("None.")
    for student, notes in attention:
        lines.append(f"- **{md_escape(student)}**")
        lines += [f"  - {md_escape(n)}" for n in notes]
    path = folder / f"{worksheet}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


MANUAL_PENDING = "needs manual grading"


def written_scores(course: Course, worksheet: str) -> tuple[dict[str, float], dict]:
    """Written answers (graded by hand, dlcourse/grader/written.py): (grade_id -> points,
    student -> grade_id -> the grader's points, None while not graded). An answer left as
    handed out scores 0 without a grader (nbgrader's autograde gives it 0)."""
    with course.gradebook() as gb:
        assignment = gb.find_assignment(worksheet)
        cells = [gc for nb in assignment.notebooks for gc in nb.grade_cells]
        points = {gc.name: float(gc.max_score) for gc in cells if gc.cell_type == "markdown"}
        table = {
            sub.student.id: {
                g.name: g.manual_score if g.manual_score is not None else g.auto_score
                for nb in sub.notebooks
                for g in nb.grades
                if g.cell.cell_type == "markdown"
            }
            for sub in assignment.submissions
        }
    return points, table


def written_section(course: Course, worksheet: str) -> list[str]:
    """The report's table of written answers: each student's points, or "needs manual
    grading" until a grader has given them in the formgrader."""
    points, table = written_scores(course, worksheet)
    if not points:
        return []
    ids = sorted(points)
    pending = sum(1 for row in table.values() for gid in ids if row.get(gid) is None)
    lines = [
        "",
        "## Written answers (graded by hand in the formgrader)",
        "",
        f"{pending} answer(s) {MANUAL_PENDING}: until then each counts 0 in the totals above.",
        "",
        "| student | " + " | ".join(f"{md_escape(g)} ({points[g]:g})" for g in ids) + " |",
        "|---|" + "---|" * len(ids),
    ]
    for student in sorted(table):
        row = table[student]
        shown = [MANUAL_PENDING if row.get(g) is None else f"{row[g]:g}" for g in ids]
        lines.append(f"| {md_escape(student)} | " + " | ".join(shown) + " |")
    return lines
