"""environment.yml (conda users) and pyproject.toml (pip users) must pin the same stack."""

import re
import tomllib

import yaml


def _pins(lines):
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([\w.]+)", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(3)
    return pins


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pip_pins = _pins(project["dependencies"] + extras["cpu"] + extras["course"] + extras["test"])
    env = yaml.safe_load((repo / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == pip_pins


def test_every_dependency_is_pinned(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [
        d for e in project["optional-dependencies"].values() for d in e
    ]
    unpinned = [d for d in deps if "==" not in d]
    assert unpinned == []


def test_required_stack_versions(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = _pins(extras["cpu"] + extras["course"] + extras["test"])
    assert pins["tensorflow-cpu"] == "2.21.0" and pins["keras"] == "3.15.1"
    assert pins["jupyterlab"] == "4.6.6" and pins["notebook"] == "7.6.5"
    assert pins["nbgrader"] == "0.9.6" and pins["nbval"] == "0.11.0"
    assert _pins(extras["gpu"])["tensorflow"] == "2.21.0"


def test_installed_versions_match_pins(repo):
    from importlib.metadata import version

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for name, pinned in _pins(extras["cpu"] + extras["course"] + extras["test"]).items():
        assert version(name) == pinned, name
