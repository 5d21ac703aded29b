"""Per-assignment grade reports (Markdown + PNG) and per-student grading notes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dlcourse import sandbox
from dlcourse.autograde import Outcome


def _gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}")


def late_by(course: Path, worksheet: str, student: str) -> timedelta | None:
    with _gradebook(course) as gb:
        try:
            seconds = gb.find_submission(worksheet, student).total_seconds_late
        except Exception:  # noqa: BLE001 - MissingEntry: never submitted
            return None
    return timedelta(seconds=round(seconds)) if seconds else None


def notes_for(course: Path, worksheet: str, outcome: Outcome) -> list[str]:
    notes = list(outcome.notes)
    late = late_by(course, worksheet, outcome.student)
    if late:
        notes.append(f"submitted {late} after the due date (late)")
    return notes


def write_notes(course: Path, worksheet: str, outcome: Outcome) -> Path | None:
    """A plain-text note next to the student's feedback, saying what was done and why."""
    notes = notes_for(course, worksheet, outcome)
    if not notes:
        return None
    folder = course / "feedback" / outcome.student / worksheet
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grading-notes.txt"
    lines = [f"Grading notes for {outcome.student}, {worksheet}:", ""]
    lines += [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n")
    return path


def scores_table(
    course: Path, worksheet: str
) -> tuple[list[str], dict[str, float], dict[str, dict[str, float]]]:
    """(test cell ids in order, max points per cell, student -> cell -> score)."""
    with _gradebook(course) as gb:
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


def assignment_report(course: Path, worksheet: str, outcomes: list[Outcome]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids, points, table = scores_table(course, worksheet)
    total = sum(points.values())
    folder = course / "reports"
    folder.mkdir(exist_ok=True)

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
        "| test cell | points | mean | difficulty (1 − mean/points) |",
        "|---|---|---|---|",
    ]
    for gid in ids:
        mean = sum(row.get(gid, 0.0) for row in table.values()) / max(1, len(table))
        lines.append(f"| {gid} | {points[gid]:g} | {mean:.2f} | {1 - mean / points[gid]:.2f} |")
    lines += ["", "## Students", "", "| student | total | notes |", "|---|---|---|"]
    by_student = {o.student: o for o in outcomes}
    attention = []
    for student in sorted(table):
        outcome = by_student.get(student)
        notes = notes_for(course, worksheet, outcome) if outcome else []
        if notes:
            attention.append((student, notes))
        lines.append(f"| {student} | {totals[student]:g} / {total:g} | {len(notes)} |")
    lines += ["", "## Submissions that need attention", ""]
    if not attention:
        lines.append("None.")
    for student, notes in attention:
        lines.append(f"- **{student}**")
        lines += [f"  - {n}" for n in notes]
    path = folder / f"{worksheet}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
