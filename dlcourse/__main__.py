"""Command line: `python -m dlcourse {doctor,demo,release,outputs,autograde,cluster,roster}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="versions, devices and data sets")
    sub.add_parser("demo", help="check the set-up and run the course's main job")
    sub.add_parser("release", help="regenerate release/ from source/ with nbgrader")
    fmt = sub.add_parser("fmt", help="write committed notebooks in canonical form")
    fmt.add_argument("--check", action="store_true", help="change nothing; exit 1 if needed")
    outputs = sub.add_parser(
        "outputs",
        help="re-execute the walkthroughs: full mode into notebooks/, quick mode into the CI "
        "baseline tests/walkthroughs_quick/",
    )
    from dlcourse.outputs import add_arguments

    add_arguments(outputs)
    grade = sub.add_parser(
        "autograde",
        help="grade every collected submission of a worksheet: in parallel, sandboxed, with "
        "repairs, feedback, grading notes, a report and grades.csv",
    )
    grade.add_argument("worksheet")
    grade.add_argument("--course", help="course root (default: the nearest one from here)")
    grade.add_argument("--workers", type=int, help="concurrent students (default: CPU count)")
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on a Dask cluster, one task per student (tls://HOST:8786 only); the "
        "course directory must be shared with the workers, the gradebook on PostgreSQL",
    )
    grade.add_argument(
        "--certs",
        metavar="DIR",
        help="the client certificate folder for --scheduler (DIR/client from `cluster certs "
        "DIR`; default DLCOURSE_CLUSTER_CERTS)",
    )
    cluster = sub.add_parser("cluster", help="the Dask grading cluster's TLS certificates")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    certs = cluster_sub.add_parser(
        "certs",
        help="write a private CA's certificates and keys for scheduler, workers and the "
        "instructor's client into DIR/{scheduler,worker,client} (0600; the CA key is not kept)",
    )
    certs.add_argument("dir")
    roster = sub.add_parser(
        "roster",
        help="JupyterHub: import a class list (CSV, nbgrader's format) into the course's "
        "gradebook and the hub's roster; --unix-users also creates the students' accounts",
    )
    roster.add_argument("csv")
    roster.add_argument("--course", help="course directory (default DLCOURSE_HUB_COURSE_DIR)")
    roster.add_argument("--grader", help="grader account (default DLCOURSE_HUB_GRADER)")
    roster.add_argument("--unix-users", action="store_true", help="useradd missing students")
    datasets = sub.add_parser(
        "data",
        help="install the data sets into a folder (from a folder, an archive or a URL) or "
        "verify one, against the repository's SHA-256 checksums",
    )
    from dlcourse.data_install import add_arguments as add_data_arguments

    add_data_arguments(datasets)
    mutants = sub.add_parser(
        "mutants",
        help="mutation-test the hidden tests: grade mutants of each exercise's reference "
        "answer with the real tests and verdicts; report in benchmarks/mutants.md",
    )
    from dlcourse.mutants.command import add_arguments as add_mutants_arguments

    add_mutants_arguments(mutants)
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from dlcourse import doctor

        return 1 if doctor.run() else 0
    if args.command == "demo":
        from dlcourse.demo.__main__ import run

        return run()
    if args.command == "release":
        from dlcourse.grader import release

        return release.command()
    if args.command == "autograde":
        from dlcourse.grader import autograde

        return autograde.command(
            args.course, args.worksheet, args.workers, args.scheduler, args.certs
        )
    if args.command == "cluster":
        from dlcourse.grader import cluster_tls

        return cluster_tls.command(args.dir)
    if args.command == "roster":
        from dlcourse import roster as class_list

        return class_list.command(args.csv, args.course, args.grader, args.unix_users)
    if args.command == "data":
        from dlcourse import data_install

        return data_install.command(args)
    if args.command == "mutants":
        from dlcourse.mutants import command as mutants_command

        return mutants_command.command(args)
    if args.command == "fmt":
        from dlcourse import fmt as formatter
        from dlcourse.grader.course import Course

        return formatter.run(Course.at().root, args.check)
    if args.command == "outputs":
        from dlcourse import outputs as out

        if args.markdown_only:
            for name in args.notebooks or out.walkthroughs(out.repo_root()):
                out.sync_markdown(Path(name))
            return 0
        modes = None if args.mode == "both" else [args.mode]
        return out.run(args.notebooks, modes)
    return 2


if __name__ == "__main__":
    sys.exit(main())
