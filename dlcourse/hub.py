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
- `DLCOURSE_HUB_STAFF`: instructors and TAs, comma-separated hub/Unix user names; the
  members of the Unix group `formgrade-<course>` are staff too (install-hub.sh creates the
  group and adds DLCOURSE_HUB_STAFF to it, so a hub restarted without the variable keeps them).
- `DLCOURSE_HUB_FORMGRADER_PORT`: loopback port of the formgrader service (default 9999).
- `DLCOURSE_HUB_THREADS`: CPU threads per student kernel (default 2).
- `DLCOURSE_HUB_STATE`: the hub's database, cookie secret and proxy PID file (default
  `/srv/jupyterhub`, 0700 root).
- `DLCOURSE_HUB_URL`: where the hub's proxy listens for browsers (default `http://:8000`).
- `DLCOURSE_HUB_API_PORT`: loopback port of the hub's own API, which the proxy, the
  servers and the formgrader call (default 8081).
- `DLCOURSE_HUB_PROXY_API_PORT`: loopback port of the proxy's REST API, which the hub calls
  (default 8001).
- `DLCOURSE_HUB_AUTH`: `pam` (default), `native` or `lti13` (jupyterhub_config.py).
- `DLCOURSE_HUB_MEM_LIMIT`, `DLCOURSE_HUB_CPU_LIMIT`: each student server's limits as
  the spawner sees them (default `2G` and the thread budget).
- `DLCOURSE_HUB_SERVICE_TIMEOUT`: seconds the hub waits for the formgrader service to answer
  when it starts (default 120; see `wait_for_managed_services`).
- `DLCOURSE_HUB_ENV`: install-hub.sh's only: the venv everybody uses, which the hub runs
  from (default `/opt/dlcourse-env`).

`python -m dlcourse.hub settings` prints the paths, names and ports among them (with
`DLCOURSE_DATA`) as shell assignments: deploy/jupyterhub/install-hub.sh reads them from there,
so the install and the hub agree on each default.

Where the hub finds deploy/ (the students' and the formgrader's Jupyter config): next to the
jupyterhub_config.py it was started with, which passes its own folder here; in the installed
layout that is `<venv>/share/dlcourse/deploy` (install-hub.sh copies it there), away from the
course's master copies.
"""

from __future__ import annotations

import csv
import grp
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dlcourse import settings

REPO = Path(__file__).resolve().parent.parent
# deploy/ of a checkout (an editable install); an installed package is handed the copy next
# to the config instead (jupyterhub_config.py passes it).
DEPLOY = REPO / "deploy"
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
    state: Path = Path("/srv/jupyterhub")
    url: str = "http://:8000"
    hub_port: int = 8081
    proxy_api_port: int = 8001
    auth: str = "pam"
    mem_limit: str = "2G"
    cpu_limit: float = 2.0
    service_timeout: float = 120.0

    @property
    def students(self) -> list[str]:
        return read_roster(self.roster) if self.roster.is_file() else []

    @property
    def all_staff(self) -> list[str]:
        """DLCOURSE_HUB_STAFF, then the Unix group `formgrade-<course>`'s members."""
        try:
            members = grp.getgrnam(self.staff_group).gr_mem
        except KeyError:
            members = []
        return list(dict.fromkeys([*self.staff, *members]))

    @property
    def student_group(self) -> str:
        return f"nbgrader-{self.course}"

    @property
    def staff_group(self) -> str:
        return f"formgrade-{self.course}"


def from_env(environ: Mapping[str, str] = os.environ) -> HubCourse:
    course_dir = Path(environ.get("DLCOURSE_HUB_COURSE_DIR", "/srv/nbgrader/dlcourse"))
    staff = environ.get("DLCOURSE_HUB_STAFF", "")
    threads = int(environ.get("DLCOURSE_HUB_THREADS", "2"))
    return HubCourse(
        course=environ.get("DLCOURSE_HUB_COURSE", "dlcourse"),
        course_dir=course_dir,
        grader=environ.get("DLCOURSE_HUB_GRADER", "grader-dlcourse"),
        exchange=Path(environ.get(settings.EXCHANGE, "/srv/nbgrader/exchange")),
        roster=Path(environ.get("DLCOURSE_HUB_ROSTER", str(course_dir / "roster.csv"))),
        staff=tuple(name.strip() for name in staff.split(",") if name.strip()),
        formgrader_port=int(environ.get("DLCOURSE_HUB_FORMGRADER_PORT", "9999")),
        threads=threads,
        state=Path(environ.get("DLCOURSE_HUB_STATE", "/srv/jupyterhub")),
        url=environ.get("DLCOURSE_HUB_URL", "http://:8000"),
        hub_port=int(environ.get("DLCOURSE_HUB_API_PORT", "8081")),
        proxy_api_port=int(environ.get("DLCOURSE_HUB_PROXY_API_PORT", "8001")),
        auth=environ.get("DLCOURSE_HUB_AUTH", "pam"),
        mem_limit=environ.get("DLCOURSE_HUB_MEM_LIMIT", "2G"),
        cpu_limit=float(environ.get("DLCOURSE_HUB_CPU_LIMIT", str(threads))),
        service_timeout=float(environ.get("DLCOURSE_HUB_SERVICE_TIMEOUT", "120")),
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
        hc.staff_group: {"users": [*hc.all_staff, hc.grader]},
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


def wait_for_managed_services(timeout: float) -> None:
    """Let a managed service take up to `timeout` seconds to answer when the hub starts.

    JupyterHub 5.5 gives a managed service about 10 s (ten one-second tries) and then exits
    with "Cannot connect to ... service managed" (jupyterhub/jupyterhub#5138, open; no setting).
    The formgrader is jupyterhub-singleuser with nbgrader and JupyterLab: on a cold start of a
    2-core server it needs 10-30 s, so the hub of README's step 4 died there. This makes each
    managed service's start wait until its URL answers as JupyterHub's own check asks (any
    non-5xx HTTP response), its process exits (the hub then says so), or `timeout` passes;
    JupyterHub's check runs afterwards, unchanged. Called from jupyterhub_config.py."""
    from jupyterhub.services.service import Service
    from jupyterhub.utils import AnyTimeoutError

    if getattr(Service.start, "waits_for_url", False):
        return
    started = Service.start

    async def start(self) -> None:
        await started(self)
        if not self.url:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and await self.spawner.poll() is None:
            try:
                await self.server.wait_up(http=True, timeout=1)
                return
            except AnyTimeoutError:
                continue

    start.waits_for_url = True  # type: ignore[attr-defined]
    Service.start = start


def bin_dir() -> Path:
    """This Python's scripts (the venv's bin/), where jupyterhub-singleuser lives."""
    return Path(sys.executable).parent


def proxy_command() -> list[str]:
    """configurable-http-proxy, pinned by deploy/jupyterhub/proxy and installed with `npm ci`
    into this venv's `proxy/` (`make proxy`; install-hub.sh for the installed venv)."""
    return [str(Path(sys.prefix) / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]


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


def student_environment(hc: HubCourse, deploy: Path = DEPLOY) -> dict[str, str]:
    """Students' servers: deploy/jupyterhub/student (nbgrader's hub plugin) before
    deploy/student (no instructor tools, no news; the course id and exchange)."""
    config = [deploy / "jupyterhub" / "student", deploy / "student"]
    return (
        common_environment(hc)
        | thread_limits(hc.threads)
        | {"JUPYTER_CONFIG_PATH": os.pathsep.join(map(str, config))}
    )


def formgrader_service(hc: HubCourse, deploy: Path = DEPLOY) -> dict:
    """The course's formgrader: a single-user server run by the hub as the grader account,
    in the course directory, at /services/<course>/ (nbgrader's pattern)."""
    grader_config = deploy / "jupyterhub" / "grader"
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


def shell_settings(hc: HubCourse) -> dict[str, str]:
    """The settings install-hub.sh needs, by variable name, as this module resolves them."""
    data = data_dir()
    return {
        "DLCOURSE_HUB_COURSE": hc.course,
        "DLCOURSE_HUB_COURSE_DIR": str(hc.course_dir),
        "DLCOURSE_HUB_GRADER": hc.grader,
        settings.EXCHANGE: str(hc.exchange),
        "DLCOURSE_HUB_ROSTER": str(hc.roster),
        "DLCOURSE_HUB_STAFF": ",".join(hc.staff),
        "DLCOURSE_HUB_STATE": str(hc.state),
        "DLCOURSE_HUB_URL": hc.url,
        "DLCOURSE_HUB_API_PORT": str(hc.hub_port),
        "DLCOURSE_HUB_PROXY_API_PORT": str(hc.proxy_api_port),
        "DLCOURSE_HUB_FORMGRADER_PORT": str(hc.formgrader_port),
        settings.DATA: str(data) if data is not None else "",
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m dlcourse.hub settings`: the settings as shell assignments (quoted)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["settings"]:
        print("usage: python -m dlcourse.hub settings", file=sys.stderr)
        return 2
    for key, value in shell_settings(from_env()).items():
        print(f"{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
