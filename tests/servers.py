"""Real servers for the tests and the capacity benchmark, on loopback, stopped by PID.

- `Postgres`: Debian's PostgreSQL (`/usr/lib/postgresql/*/bin`), `initdb` into a fresh temporary
  directory, listening on a free 127.0.0.1 port and a Unix socket in that directory. PostgreSQL
  refuses to run as root: as root, the data directory belongs to the `postgres` OS user (the
  Debian package creates it) and the server runs through `runuser -u postgres --`.
- `JupyterHub`: deploy/jupyterhub on free loopback ports (see the class).
- `running_lab`: `jupyter lab` (nbgrader's formgrader included) on a free loopback port, for the
  browser and door tests.
- `DaskCluster`: `dask scheduler` on a free loopback port (its address read back from a
  scheduler file) plus N `dask worker` processes, one thread each, no nanny, each in a process
  group of its own so one can be killed mid-run like a lost machine; over TLS with a fresh
  `python -m dlcourse cluster certs` set (README's recipe), every socket on 127.0.0.1.

Each stops everything it started, by PID, in `stop()` (and on `with` exit), whatever happened.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from dlcourse.grader import cluster_tls

PG_USER = "grader"  # the database role the gradebook connects as (trust auth, loopback only)


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} did not come up in {timeout:.0f} s\n{tail}")


def _stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 30, group=False) -> None:
    kill = os.killpg if group else os.kill
    try:
        kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.1)
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _running(pid: int) -> bool:
    """Alive and not a zombie: a child of ours that has exited stays in the process table
    (and answers kill(pid, 0)) until it is waited for, which the caller does next."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _Stoppable:
    """A server started by a test: stopped by PID on leaving the block, even when starting
    it failed half-way."""

    def start(self):
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class Postgres(_Stoppable):
    """A throwaway PostgreSQL server. `url(db)` is the SQLAlchemy URL of database `db`."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (make system: deploy/system-packages)")
        self.as_root = os.geteuid() == 0
        # Not under pytest's basetemp: its folders are 0700 root, out of the postgres user's reach.
        self.dir = Path(tempfile.mkdtemp(prefix="dlcourse-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if self.as_root else []

    def start(self) -> Postgres:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        subprocess.run(
            [*self._run_as(), str(self.bindir / "initdb"), "-D", str(self.data), "-U", PG_USER]
            + ["--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        cmd = [*self._run_as(), str(self.bindir / "postgres"), "-D", str(self.data)]
        cmd += ["-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.dir)]
        cmd += ["-c", "fsync=off", "-c", "max_connections=100"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        pidfile = self.data / "postmaster.pid"

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-3000:]}")
            if not pidfile.exists():
                return False
            lines = pidfile.read_text().splitlines()
            return len(lines) >= 8 and lines[7].strip() == "ready"

        _wait_for(ready, 60, "PostgreSQL", self.log)
        # The postmaster's own PID (runuser stays in between as its parent).
        self.pid = int(pidfile.read_text().split()[0])
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        if self.pid is not None:
            _stop_pid(self.pid, signal.SIGINT)  # fast shutdown: disconnects clients
            self.pid = None
        if self.proc is not None:
            _stop_pid(self.proc.pid)
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class DaskCluster(_Stoppable):
    """`dask scheduler` plus `workers` x `dask worker --nthreads 1`, on 127.0.0.1, over TLS:
    scheduler and workers take `certs/{scheduler,worker}`, the instructor's client
    `client_certs` (`security()`); their diagnostics HTTP servers listen on loopback too."""

    def __init__(self, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dlcourse-dask-"))
        self.certs = self.dir / "certs"
        self.client_certs = self.certs / "client"
        self.n_workers = workers
        self.env = env or dict(os.environ)
        self.dask = str(Path(sys.executable).parent / "dask")
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with (self.dir / log).open("wb") as out:
            return subprocess.Popen(
                [self.dask, *args],
                env=self.env,
                cwd=self.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg takes it all
            )

    def tls(self, role: str) -> list[str]:
        files = cluster_tls.role_files(self.certs / role)
        flags = {"--tls-ca-file": cluster_tls.CA_FILE, "--tls-cert": cluster_tls.CERT_FILE}
        flags["--tls-key"] = cluster_tls.KEY_FILE
        return [arg for flag, name in flags.items() for arg in (flag, str(files[name]))]

    def security(self):
        return cluster_tls.client_security(self.client_certs)

    def start(self) -> DaskCluster:
        cluster_tls.make(self.certs)
        scheduler_file = self.dir / "scheduler.json"
        self.scheduler = self._spawn(
            ["scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", str(free_port())]
            + ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]
            + self.tls("scheduler"),
            "scheduler.log",
        )
        _wait_for(scheduler_file.exists, 120, "dask scheduler", self.dir / "scheduler.log")
        time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for i in range(self.n_workers):
            self.add_worker(f"worker-{i}")
        from distributed import Client

        with Client(self.address, security=self.security(), timeout=60) as client:
            client.wait_for_workers(self.n_workers, timeout=180)
        return self

    def add_worker(self, name: str) -> subprocess.Popen:
        proc = self._spawn(
            ["worker", self.address, "--nthreads", "1", "--nworkers", "1", "--no-nanny"]
            + ["--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1", "--name", name]
            + self.tls("worker"),
            f"{name}.log",
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker's whole process group: a machine lost mid-run."""
        _stop_pid(self.workers[index].pid, signal.SIGKILL, group=True)
        self.workers[index].wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(self.dir.glob("*.log"))
        )

    def stop(self) -> None:
        """SIGTERM every process group at once, SIGKILL what is left after 10 s, by PID."""
        procs = [p for p in [*self.workers, self.scheduler] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _stop_pid(proc.pid, signal.SIGKILL, group=True)
                proc.wait()
        self.workers, self.scheduler = [], None
        shutil.rmtree(self.dir, ignore_errors=True)


# --- A small collected class for the gradebook/cluster tests -----------------------------------

CLASS = ("ada", "ben", "cleo", "dev", "eve")  # full, blank, half, realistic mistake, first wrong


def collect_class(course, worksheet: str, students=CLASS) -> list[str]:
    """Submissions built from the demo scenarios, placed where `nbgrader collect` puts them."""
    from helpers import submit

    from dlcourse.demo import scenarios
    from dlcourse.grader import cells

    release = course.release_notebooks(worksheet)
    source = course.source_notebooks(worksheet)
    for student in students:
        work = {}
        for name, nb in release.items():
            ctx = scenarios.Context(worksheet, nb, cells.reference_answers(source[name]))
            work[name] = scenarios.SCENARIOS[student].build(ctx)
        submit(course, worksheet, student, work)
    return list(students)


# --- JupyterHub (deploy/jupyterhub) ------------------------------------------------------------


class JupyterHub(_Stoppable):
    """`jupyterhub -f tests/hub_test_config.py` (the deploy config, a shared test password) on
    free loopback ports (DLCOURSE_HUB_URL, DLCOURSE_HUB_API_PORT, DLCOURSE_HUB_PROXY_API_PORT),
    as root (it starts each user's server as that Unix user). `env` carries the other
    DLCOURSE_HUB_* settings; its state (database, cookie secret, proxy PID) and log go to
    `state`; `jupyterhub` is the venv's (default: this Python's). Stopped by PID: the hub stops
    the proxy, the servers and the formgrader it started; whatever of its descendants is left
    is killed by PID afterwards."""

    def __init__(
        self, state: Path, env: dict[str, str], config: Path, jupyterhub: Path | None = None
    ) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env | {
            "DLCOURSE_HUB_STATE": str(state),
            "DLCOURSE_HUB_URL": self.url,
            "DLCOURSE_HUB_API_PORT": str(free_port()),
            "DLCOURSE_HUB_PROXY_API_PORT": str(free_port()),
        }
        self.config = config
        self.jupyterhub = jupyterhub or Path(sys.executable).parent / "jupyterhub"
        self.log = state / "jupyterhub.log"
        self.proc: subprocess.Popen | None = None
        self.descendants: list = []

    def start(self) -> JupyterHub:
        cmd = [str(self.jupyterhub), "-f", str(self.config)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.state,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited: {self.log.read_text()[-4000:]}")
            self._remember_descendants()
            try:
                with _opener().open(f"{self.url}/hub/api/", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait_for(ready, 120, "JupyterHub", self.log)
        return self

    def _remember_descendants(self) -> None:
        import psutil

        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        known = {p.pid for p in self.descendants}
        self.descendants += [p for p in found if p.pid not in known]

    def stop(self) -> None:
        import psutil

        if self.proc is None:
            return
        self._remember_descendants()
        self.proc.terminate()  # the hub stops the proxy, the servers and the services
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._remember_descendants()
        _, alive = psutil.wait_procs(self.descendants, timeout=5)
        for child in alive:
            try:
                child.kill()  # psutil checks that the PID still names the same process
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        self.proc = None


def _opener():
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


# --- JupyterLab (with nbgrader's formgrader), for the browser and door tests --------------------

LAB_START_TIMEOUT = 90  # seconds until /api/status answers


def get(url: str, token: str, timeout: float = 5, method: str = "GET") -> bytes:
    request = urllib.request.Request(
        url,
        data=b"" if method == "POST" else None,
        method=method,
        headers={"Authorization": f"token {token}"},
    )
    with _opener().open(request, timeout=timeout) as response:
        return response.read()


def stop_lab(proc: subprocess.Popen) -> None:
    """Kill a server by PID: its process group, then anything it started elsewhere.

    Kernels run in sessions of their own (jupyter_client starts them with setsid), so the
    server's descendants are collected first and killed by PID after the group.
    """
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        try:
            child.kill()  # psutil checks the PID still names the same process
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def running_lab(cwd: Path, root_dir: Path, env: dict, log_path: Path, artifacts: Path):
    """`jupyter lab` on a free loopback port; yields (base URL, token); killed afterwards,
    its log copied into `artifacts`."""
    token, port = secrets.token_hex(24), free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
    ]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                json.loads(get(f"{base}/api/status", token))
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab not answering:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        stop_lab(proc)
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, artifacts / log_path.name)
