"""The pieces of deploy/jupyterhub/jupyterhub_config.py that are worth a function: one course
on one JupyterHub, read from the environment (every variable has a production default).

- `DLCOURSE_HUB_COURSE`: the nbgrader course id (default `dlcourse`, as nbgrader_config.py).
- `DLCOURSE_HUB_COURSE_DIR`: the course directory, owned by the grader account
  (default `/srv/nbgrader/dlcourse`).
- `DLCOURSE_HUB_GRADER`: the course's grader Unix account (default `grader-dlcourse`); it runs
  the formgrader service and owns the course directory.
- `DLCOURSE_EXCHANGE`: nbgrader's exchange (default `/srv/nbgrader/exchange`, mode 1777).
- `DLCOURSE_HUB_ROSTER`: the students' CSV (nbgrader's `db student import` format: a column
  `id`, the Unix and hub user name; default `<course dir>/roster.csv`).
- `DLCOURSE_HUB_STAFF`: instructors and TAs, comma-separated hub/Unix user names.
- `DLCOURSE_HUB_FORMGRADER_PORT`: loopback port of the formgrader service (default 9999).
- `DLCOURSE_HUB_THREADS`: CPU threads per student kernel (default 2).
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dlcourse import settings

REPO = Path(__file__).resolve().parent.parent
# A Unix login name that useradd accepts everywhere, and JupyterHub keeps as it is.
USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class HubCourse:
    course: str
    course_dir: Path
    grader: str
    exchange: Path
    roster: Path
    staff: tuple[str, ...]
    formgrader_port: int
    threads: int

    @property
    def students(self) -> list[str]:
        return read_roster(self.roster) if self.roster.is_file() else []

    @property
    def student_group(self) -> str:
        return f"nbgrader-{self.course}"

    @property
    def staff_group(self) -> str:
        return f"formgrade-{self.course}"


def from_env(environ: Mapping[str, str] = os.environ) -> HubCourse:
    course_dir = Path(environ.get("DLCOURSE_HUB_COURSE_DIR", "/srv/nbgrader/dlcourse"))
    staff = environ.get("DLCOURSE_HUB_STAFF", "")
    return HubCourse(
        course=environ.get("DLCOURSE_HUB_COURSE", "dlcourse"),
        course_dir=course_dir,
        grader=environ.get("DLCOURSE_HUB_GRADER", "grader-dlcourse"),
        exchange=Path(environ.get(settings.EXCHANGE, "/srv/nbgrader/exchange")),
        roster=Path(environ.get("DLCOURSE_HUB_ROSTER", str(course_dir / "roster.csv"))),
        staff=tuple(name.strip() for name in staff.split(",") if name.strip()),
        formgrader_port=int(environ.get("DLCOURSE_HUB_FORMGRADER_PORT", "9999")),
        threads=int(environ.get("DLCOURSE_HUB_THREADS", "2")),
    )


class BadRoster(ValueError):
    pass


def read_roster(path: Path) -> list[str]:
    """The `id` column of a roster CSV; each must be a plain Unix user name."""
    with path.open(newline="") as fh:
        ids = [row.get("id", "").strip() for row in csv.DictReader(fh)]
    bad = [i for i in ids if not USERNAME.fullmatch(i)]
    if bad:
        raise BadRoster(f"{path}: not usable as Unix user names: {bad}")
    return ids


def groups(hc: HubCourse) -> dict[str, dict[str, list[str]]]:
    """`c.JupyterHub.load_groups`: the students' and the staff's groups (nbgrader's names)."""
    return {
        hc.student_group: {"users": hc.students},
        hc.staff_group: {"users": [*hc.staff, hc.grader]},
    }


def roles(hc: HubCourse) -> list[dict]:
    """`c.JupyterHub.load_roles`, as nbgrader's demo_multiple_classes: staff reach the
    formgrader service; students discover it; a single-user server's token may read its
    owner's groups (nbgrader's JupyterHubAuthPlugin asks which courses a student is in);
    the formgrader service reads users' groups and manages the students' group."""
    return [
        {
            "name": hc.staff_group,
            "groups": [hc.staff_group],
            "scopes": [f"access:services!service={hc.course}"],
        },
        {
            "name": hc.student_group,
            "groups": [hc.student_group],
            "scopes": ["list:services", f"read:services!service={hc.course}"],
        },
        {"name": "server", "scopes": ["inherit"]},
        {
            "name": f"{hc.course}-service",
            "services": [hc.course],
            "scopes": [
                "list:users",
                "read:users",
                "list:groups",
                "read:groups",
                f"groups!group={hc.student_group}",
            ],
        },
    ]


def bin_dir() -> Path:
    """This Python's scripts (the venv's bin/), where jupyterhub-singleuser lives."""
    return Path(sys.executable).parent


def common_environment(hc: HubCourse) -> dict[str, str]:
    env = {
        "PATH": os.pathsep.join([str(bin_dir()), "/usr/local/bin", "/usr/bin", "/bin"]),
        settings.EXCHANGE: str(hc.exchange),
        **settings.QUIET_TF,
    }
    data = data_dir()
    if data is not None:
        env[settings.DATA] = str(data)
    return env


def data_dir() -> Path | None:
    """The data sets for every user's kernels: DLCOURSE_DATA, else where this checkout finds
    them by itself (`data/` in it, `../shared/data` beside it), else None."""
    if settings.data_dir() is not None:
        return settings.data_dir()
    found = [d for d in (REPO / "data", REPO.parent / "shared" / "data") if d.is_dir()]
    return found[0] if found else None


def thread_limits(threads: int) -> dict[str, str]:
    """How many CPU threads one student's kernel uses: OpenMP/BLAS and TensorFlow's pools."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
    }


def student_environment(hc: HubCourse) -> dict[str, str]:
    """Students' servers: deploy/jupyterhub/student (nbgrader's hub plugin) before
    deploy/student (no instructor tools, no news; the course id and exchange)."""
    config = [REPO / "deploy" / "jupyterhub" / "student", REPO / "deploy" / "student"]
    return (
        common_environment(hc)
        | thread_limits(hc.threads)
        | {"JUPYTER_CONFIG_PATH": os.pathsep.join(map(str, config))}
    )


def formgrader_service(hc: HubCourse) -> dict:
    """The course's formgrader: a single-user server run by the hub as the grader account,
    in the course directory, at /services/<course>/ (nbgrader's pattern)."""
    grader_config = REPO / "deploy" / "jupyterhub" / "grader"
    return {
        "name": hc.course,
        "url": f"http://127.0.0.1:{hc.formgrader_port}",
        "command": [
            str(bin_dir() / "jupyterhub-singleuser"),
            f"--ServerApp.root_dir={hc.course_dir}",
        ],
        "user": hc.grader,
        "cwd": str(hc.course_dir),
        # The course's own service: staff are not asked to authorize it on each new login.
        "oauth_no_confirm": True,
        "environment": common_environment(hc)
        | thread_limits(hc.threads)
        | {
            "JUPYTER_CONFIG_PATH": str(grader_config),
            "JUPYTERHUB_DEFAULT_URL": "/formgrader",
            settings.COURSE: str(hc.course_dir),
        },
    }
