"""deploy/jupyterhub without a hub: what dlcourse/hub.py derives from the environment, the
roster checks, and the Zero-to-JupyterHub values file (offline: the chart's own schema is
not in any package registry this project uses, so the keys it relies on are listed here,
from the chart's documented values for chart 4.x)."""

from __future__ import annotations

import sys

import nbformat
import yaml

from dlcourse import hub

VALUES = "deploy/jupyterhub/z2jh-values.yaml"
# Every key path the values file may set (chart 4.x values reference); anything else is a
# typo the chart would reject or silently ignore.
CHART_KEYS = {
    "hub.config",
    "hub.loadRoles",
    "hub.extraConfig",
    "singleuser.image.name",
    "singleuser.image.tag",
    "singleuser.cmd",
    "singleuser.defaultUrl",
    "singleuser.fsGid",
    "singleuser.memory.guarantee",
    "singleuser.memory.limit",
    "singleuser.cpu.guarantee",
    "singleuser.cpu.limit",
    "singleuser.extraEnv",
    "singleuser.storage.type",
    "singleuser.storage.capacity",
    "singleuser.storage.extraVolumes",
    "singleuser.storage.extraVolumeMounts",
    "cull.enabled",
    "cull.timeout",
}
OPAQUE = {"hub.config", "hub.loadRoles", "hub.extraConfig", "singleuser.extraEnv"}


def _paths(tree: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in OPAQUE:
            found |= _paths(value, f"{path}.")
        else:
            found.add(path)
    return found


def _course(tmp_path, roster: str = "id\nann\nbob\n") -> hub.HubCourse:
    (tmp_path / "roster.csv").write_text(roster)
    return hub.from_env(
        {
            "DLCOURSE_HUB_COURSE_DIR": str(tmp_path),
            "DLCOURSE_HUB_STAFF": "ida, tom",
            "DLCOURSE_HUB_GRADER": "grader-dlcourse",
        }
    )


def test_groups_roles_and_the_formgrader_service(tmp_path):
    course = _course(tmp_path)
    assert hub.groups(course) == {
        "nbgrader-dlcourse": {"users": ["ann", "bob"]},
        "formgrade-dlcourse": {"users": ["ida", "tom", "grader-dlcourse"]},
    }
    roles = {role["name"]: role for role in hub.roles(course)}
    assert roles["formgrade-dlcourse"]["scopes"] == ["access:services!service=dlcourse"]
    assert roles["server"]["scopes"] == ["inherit"]
    assert roles["dlcourse-service"]["services"] == ["dlcourse"]
    service = hub.formgrader_service(course)
    assert service["name"] == "dlcourse" and service["user"] == "grader-dlcourse"
    assert service["cwd"] == str(tmp_path) and service["url"].startswith("http://127.0.0.1:")
    assert service["command"][0].endswith("jupyterhub-singleuser")
    env = hub.student_environment(course)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert env["DLCOURSE_EXCHANGE"] == "/srv/nbgrader/exchange"
    assert env["JUPYTER_CONFIG_PATH"].endswith("deploy/student")


def test_a_roster_with_unusable_names_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("id\nann\nRoot Beer\n../x\n")
    try:
        hub.read_roster(tmp_path / "bad.csv")
    except hub.BadRoster as err:
        assert "Root Beer" in str(err) and "../x" in str(err)
    else:
        raise AssertionError("accepted")


def test_z2jh_values_use_known_keys_and_the_same_groups_and_roles(repo, tmp_path):
    values = yaml.safe_load((repo / VALUES).read_text())
    assert _paths(values) <= CHART_KEYS, _paths(values) - CHART_KEYS
    # The staff role and the server role: as on one server, but for the grader's server.
    roles = values["hub"]["loadRoles"]
    assert roles["formgrade-dlcourse"]["groups"] == ["formgrade-dlcourse"]
    assert roles["server"]["scopes"] == ["inherit"]
    snippet = values["hub"]["extraConfig"]["dlcourse"]
    compile(snippet, "extraConfig.dlcourse", "exec")  # valid Python

    class Config(dict):
        def __getattr__(self, name):
            return self.setdefault(name, Config())

        def __setattr__(self, name, value):
            self[name] = value

    c = Config()
    exec(snippet, {"c": c})  # noqa: S102 - our own file's snippet, as the hub runs it
    groups = c.JupyterHub.load_groups
    assert set(groups) == {"nbgrader-dlcourse", "formgrade-dlcourse"}
    allowed = set(values["hub"]["config"]["Authenticator"]["allowed_users"])
    assert {u for g in groups.values() for u in g["users"]} <= allowed
    env = values["singleuser"]["extraEnv"]
    assert env["TF_NUM_INTRAOP_THREADS"] == str(values["singleuser"]["cpu"]["limit"])
    assert "/deploy/jupyterhub/student:" in env["JUPYTER_CONFIG_PATH"]
    mounts = {m["name"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    volumes = {v["name"] for v in values["singleuser"]["storage"]["extraVolumes"]}
    assert mounts <= volumes and {"exchange", "course", "data"} <= volumes


def test_staging_keeps_the_submission_secret_release_feedback_needs(tmp_path):
    """nbgrader's release_feedback names each feedback file after a hash of the submission's
    secret: staged/ (and so autograded/ and feedback/) must keep it."""
    from dlcourse.grader import preflight

    submitted = tmp_path / "submitted"
    submitted.mkdir()
    nb = nbformat.v4.new_notebook()
    nbformat.write(nb, submitted / "ws.ipynb")
    (submitted / "timestamp.txt").write_text("2026-01-01 00:00:00 UTC")
    (submitted / "submission_secret.txt").write_text("s3cret")
    staged = preflight.stage(submitted, tmp_path / "staged", "ann", {"ws": nb})
    assert (staged.folder / "submission_secret.txt").read_text() == "s3cret"
    assert not staged.notes


def _load(path, monkeypatch, **env):
    from traitlets.config.loader import PyFileConfigLoader

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return PyFileConfigLoader(path.name, str(path.parent)).load_config()


def test_the_hub_config_for_each_authenticator_and_the_test_config(repo, tmp_path, monkeypatch):
    (tmp_path / "roster.csv").write_text("id\nann\n")
    monkeypatch.setenv("DLCOURSE_HUB_COURSE_DIR", str(tmp_path))
    config = repo / "deploy" / "jupyterhub" / "jupyterhub_config.py"
    pam = _load(config, monkeypatch)
    assert pam.JupyterHub.authenticator_class == "pam"
    assert pam.Authenticator.allowed_users == {"ann", "grader-dlcourse"}
    assert pam.JupyterHub.services[0]["user"] == "grader-dlcourse"
    assert pam.Spawner.cmd[0].endswith("jupyterhub-singleuser")
    native = _load(config, monkeypatch, DLCOURSE_HUB_AUTH="native", DLCOURSE_HUB_STAFF="ida")
    assert native.JupyterHub.authenticator_class == "native"
    assert native.Authenticator.admin_users == {"ida"}
    lti = {f"DLCOURSE_LTI_{k}": "x" for k in ("ISSUER", "CLIENT_ID", "AUTHORIZE_URL", "JWKS_URL")}
    lti13 = _load(config, monkeypatch, DLCOURSE_HUB_AUTH="lti13", **lti)
    assert lti13.JupyterHub.authenticator_class.endswith("LTI13Authenticator")
    test_config = repo / "tests" / "hub_test_config.py"
    test = _load(test_config, monkeypatch, DLCOURSE_HUB_TEST_PASSWORD="pw")
    assert test.JupyterHub.authenticator_class == "shared-password"
    assert test.SharedPasswordAuthenticator.user_password == "pw"
    assert test.JupyterHub.services == pam.JupyterHub.services  # the deploy config, as it is


def test_the_hubs_ports_and_paths_are_settings(monkeypatch):
    course = hub.from_env(
        {
            "DLCOURSE_HUB_API_PORT": "18081",
            "DLCOURSE_HUB_PROXY_API_PORT": "18001",
            "DLCOURSE_HUB_STATE": "/var/lib/hub",
            "DLCOURSE_HUB_THREADS": "3",
        }
    )
    assert (course.hub_port, course.proxy_api_port) == (18081, 18001)
    assert course.state.as_posix() == "/var/lib/hub" and course.cpu_limit == 3.0
    defaults = hub.from_env({})
    assert (defaults.hub_port, defaults.proxy_api_port, defaults.url) == (
        8081,
        8001,
        "http://:8000",
    )
    settings = hub.shell_settings(course)
    assert settings["DLCOURSE_HUB_API_PORT"] == "18081"
    assert settings["DLCOURSE_HUB_COURSE_DIR"] == "/srv/nbgrader/dlcourse"
    # The proxy is the running venv's: .venv/proxy here, <venv>/proxy where install-hub.sh put it.
    assert hub.proxy_command()[0].startswith(sys.prefix + "/proxy/")


def test_the_hub_config_takes_ports_and_deploy_from_where_it_is(repo, tmp_path, monkeypatch):
    """A copy of deploy/ elsewhere (install-hub.sh puts one into the venv) is the one used."""
    import shutil

    shutil.copytree(repo / "deploy", tmp_path / "deploy")
    config = _load(
        tmp_path / "deploy" / "jupyterhub" / "jupyterhub_config.py",
        monkeypatch,
        DLCOURSE_HUB_API_PORT="18081",
        DLCOURSE_HUB_PROXY_API_PORT="18001",
    )
    assert config.JupyterHub.hub_port == 18081
    assert config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18001"
    paths = config.Spawner.environment["JUPYTER_CONFIG_PATH"].split(":")
    assert paths == [
        str(tmp_path / "deploy" / "jupyterhub" / "student"),
        str(tmp_path / "deploy" / "student"),
    ]
    service = config.JupyterHub.services[0]["environment"]["JUPYTER_CONFIG_PATH"]
    assert service == str(tmp_path / "deploy" / "jupyterhub" / "grader")


def test_formgrader_links_resolve_on_the_service():
    from urllib.parse import urljoin

    from dlcourse.hub_server import hub_url_prefix

    prefix = hub_url_prefix(".", "/services/dlcourse/")
    assert not prefix.startswith("../")  # nbgrader takes that for a course outside its root
    href = "/tree/" + prefix + "/source/ws01_tensors"  # nbgrader's linkTo("directory", ...)
    assert urljoin("http://hub/services/dlcourse/formgrader/x", href) == (
        "http://hub/services/dlcourse/tree/source/ws01_tensors"
    )
    assert hub_url_prefix(".", None) == "."  # not on a hub: nbgrader's own


def test_formgrader_link_patch_applies_once(monkeypatch):
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension

    from dlcourse import hub_server

    # nbgrader's own url_prefix stands in as "." (the course is the server's root); put back
    # after the test, so the patch does not outlive it.
    monkeypatch.setattr(FormgradeExtension, "url_prefix", property(lambda self: "."))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/services/dlcourse/")
    hub_server._patch()
    hub_server._patch()  # a second load changes nothing
    assert FormgradeExtension.url_prefix.fget(object()) == "./../services/dlcourse/tree/."


def test_staff_come_from_the_variable_and_the_unix_group(tmp_path, monkeypatch):
    import grp
    from types import SimpleNamespace

    def getgrnam(name):
        if name != "formgrade-dlcourse":
            raise KeyError(name)
        return SimpleNamespace(gr_mem=["tom", "eve"])

    monkeypatch.setattr(grp, "getgrnam", getgrnam)
    course = _course(tmp_path)  # DLCOURSE_HUB_STAFF="ida, tom"
    assert course.all_staff == ["ida", "tom", "eve"]
    assert hub.groups(course)["formgrade-dlcourse"]["users"] == [
        "ida",
        "tom",
        "eve",
        "grader-dlcourse",
    ]
