"""A hub whose managed service is slow to answer keeps running (dlcourse.hub.
wait_for_managed_services, called by deploy/jupyterhub/jupyterhub_config.py).

JupyterHub 5.5 alone gives a managed service about 10 s and then exits
(jupyterhub/jupyterhub#5138): README's hub died that way on a cold start, because the
formgrader service needed longer. A real JupyterHub and configurable-http-proxy on loopback,
with a managed service that answers only after 14 s: without the wait the hub exits 1 and says
which service it could not reach; with it the hub serves the service. Each hub is stopped by
PID; the service and the proxy go with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from servers import free_port

from dlcourse import hub

pytestmark = pytest.mark.slow
SLOW = 14  # s before the service answers: beyond JupyterHub's own ~10 s


def hub_config(state: Path, port: int, wait: bool) -> Path:
    service = free_port()
    serve = (
        f"import http.server, time; time.sleep({SLOW}); "
        f"http.server.HTTPServer(('127.0.0.1', {service}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    page = state / "services" / "slow" / "index.html"  # what the service serves, from `state`
    page.parent.mkdir(parents=True)
    page.write_text("the slow service")
    config = state / "jupyterhub_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from dlcourse import hub
            c = get_config()  # noqa: F821
            c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
            c.JupyterHub.hub_port = {free_port()}
            c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
            c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
            c.ConfigurableHTTPProxy.command = {hub.proxy_command()!r}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
            c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
            c.JupyterHub.authenticator_class = "dummy"
            c.JupyterHub.services = [{{
                "name": "slow",
                "url": "http://127.0.0.1:{service}",
                "command": [{sys.executable!r}, "-c", {serve!r}],
                "cwd": "{state}",
            }}]
            if {wait}:
                hub.wait_for_managed_services(60)
            """
        )
    )
    return config


def run_hub(state: Path, wait: bool) -> tuple[int | None, int, str]:
    """(the hub's exit status or None if it still runs, the status of GET /services/slow/,
    the hub's log), 40 s after its start."""
    port = free_port()
    config = hub_config(state, port, wait)
    log = state / "jupyterhub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            cwd=state,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}  # the proxy and the service: their own sessions
    try:
        deadline = time.monotonic() + SLOW + 26
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                seen |= {c.pid: c for c in started.children(recursive=True)}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/services/slow/") as got:
                    status = got.status
                break
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError:
                pass
            time.sleep(1)
        return proc.poll(), status, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for child in seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(list(seen.values()), timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _proxy():
    if not Path(hub.proxy_command()[0]).exists():
        reason = f"{hub.proxy_command()[0]} missing (make proxy)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_jupyterhub_alone_exits_when_a_managed_service_is_slow(tmp_path):
    exited, _, log = run_hub(tmp_path, wait=False)
    assert exited == 1, log[-3000:]
    assert "Cannot connect to slow service managed" in log, log[-3000:]


def test_the_course_config_waits_for_a_slow_managed_service(tmp_path):
    exited, status, log = run_hub(tmp_path, wait=True)
    assert exited is None, log[-3000:]
    assert status == 200, (status, log[-3000:])
