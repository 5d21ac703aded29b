"""`python -m dlcourse mutants WS [WS ...]`: grade the mutants, write the report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPORT = Path("benchmarks") / "mutants.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("worksheets", nargs="+", metavar="WS", help="worksheet names, or 'all'")
    parser.add_argument("--course", help="course root (default: the nearest one from here)")
    parser.add_argument(
        "--exercise", action="append", metavar="GRADE_ID", help="only these answer cells"
    )
    parser.add_argument("--limit", type=int, help="at most this many mutants per exercise")
    parser.add_argument(
        "--report", type=Path, help=f"the report to update (default: COURSE/{REPORT})"
    )


def timeouts(course) -> tuple[float, float, float]:
    """(factor, floor, cap) of the per-cell timeouts, as grading sizes them."""
    from dlcourse.grader.execute import SandboxedExecute

    execute = SandboxedExecute(config=course.config)
    return execute.timeout_factor, execute.timeout_floor, execute.timeout or 60


def command(args: argparse.Namespace) -> int:
    from dlcourse.grader.course import Course
    from dlcourse.mutants import report
    from dlcourse.mutants.run import run_worksheet

    course = Course.at(args.course)
    names = args.worksheets
    if names == ["all"]:
        names = sorted(p.name for p in course.source().iterdir() if p.is_dir())
    triage = report.load_triage(course.root / report.TRIAGE)
    sections, survived = {}, 0
    for name in names:
        masters = sorted(course.source(name).glob("*.ipynb"))
        if not masters:
            print(f"error: {name} has no master notebook in {course.source()}", file=sys.stderr)
            return 2
        for master in masters:
            only = set(args.exercise) if args.exercise else None
            ws = run_worksheet(master, only=only, limit=args.limit, timeouts=timeouts(course))
            shown = " ".join(["python -m dlcourse mutants", name] + _options(args))
            sections[ws.name] = report.section(ws, triage, command=shown)
            survivors, _, _ = report.split(ws, triage)
            survived += len(survivors)
            problems = [f"{ex.grade_id}: {ex.problem}" for ex in ws.exercises if ex.problem]
            print(f"{ws.name}: {sum(len(e.outcomes) for e in ws.exercises)} mutants, "
                  f"{len(survivors)} surviving, {ws.seconds:.0f} s")  # fmt: skip
            for line in problems:
                print(f"  not judged: {line}", file=sys.stderr)
    path = args.report or course.root / REPORT
    report.write(path, sections)
    print(f"report: {path}")
    return 1 if survived else 0


def _options(args: argparse.Namespace) -> list[str]:
    out = [f"--exercise {e}" for e in args.exercise or []]
    return out + ([f"--limit {args.limit}"] if args.limit else [])
