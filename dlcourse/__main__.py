"""Command line: `python -m dlcourse {doctor,demo,release,outputs}`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="versions, devices and data sets")
    sub.add_parser("demo", help="check the set-up and run the course's main job")
    sub.add_parser("release", help="regenerate release/ from source/ with nbgrader")
    outputs = sub.add_parser("outputs", help="re-execute walkthroughs in quick mode")
    outputs.add_argument("notebooks", nargs="*", help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from dlcourse import doctor

        return 1 if doctor.run() else 0
    if args.command == "demo":
        from dlcourse import demo

        return demo.run()
    if args.command == "release":
        from dlcourse import release

        return release.run()
    if args.command == "outputs":
        from dlcourse import outputs as out

        return out.run(args.notebooks)
    return 2


if __name__ == "__main__":
    sys.exit(main())
