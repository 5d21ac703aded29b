# One-command entry points. Each target creates .venv with the pinned stack when missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# GPU users: make TF_EXTRA=gpu ...  (installs tensorflow[and-cuda] instead of tensorflow-cpu)
TF_EXTRA ?= cpu
# nbgrader runs `alembic` from PATH when it creates a gradebook: keep the venv first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
# pip.conf on course machines may name local indexes that do not exist; hide that noise.
PIPQUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help setup system system-grader kernel-env demo test lab student-lab doctor release outputs clean proxy

help:
	@echo "make demo    - set up, check devices and data, grade the demo class (WORKSHEETS=\"ws01_tensors\" for one)"
	@echo "make test    - run the whole test suite (what CI runs)"
	@echo "make lab     - start JupyterLab in the course repo (instructors)"
	@echo "make student-lab - start JupyterLab as a student sees it, in STUDENT_DIR (default ~/dlcourse-student)"
	@echo "make system  - install missing Debian packages: bubblewrap, chromium, postgresql, npm (as root/sudo)"
	@echo "make proxy   - JupyterHub's configurable-http-proxy (pinned, from npm) into .venv/proxy"
	@echo "make doctor  - versions, devices and data sets"
	@echo "make release - regenerate release/ from source/ with nbgrader"
	@echo "make outputs - re-execute the walkthroughs: full mode into notebooks/, quick baselines for nbval"

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Need $(PYTHON) (Python 3.11). Set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(PIPQUIET)
	$(PY) -m pip install --quiet -e ".[$(TF_EXTRA),course,test]" $(PIPQUIET)
	touch $@

# The venv's python3 kernel gets the course's kernel environment (TensorFlow's start-up log
# silenced) on every `make setup`, so a reinstall of ipykernel cannot quietly drop it.
setup: $(VENV)/.installed
	$(PY) -c 'import sys, dlcourse.kernel_env as k; sys.exit(k.main(["install"]))'

# Debian packages: bubblewrap for the grading sandbox (demo), plus chromium and PostgreSQL for
# the tests. One list, in deploy/system-packages; nothing happens when all are installed.
system-grader:
	deploy/system-packages grader

system:
	deploy/system-packages test

doctor: setup
	$(PY) -m dlcourse doctor

demo: setup system-grader
	WORKSHEETS="$(WORKSHEETS)" $(PY) -m dlcourse demo

test: setup system proxy
	$(PY) -m pytest

# JupyterHub's proxy (deploy/jupyterhub, tests/test_hub.py): configurable-http-proxy pinned by
# deploy/jupyterhub/proxy/package-lock.json, installed with `npm ci` into the ignored .venv.
CHP := $(VENV)/proxy/node_modules/.bin/configurable-http-proxy
$(CHP): deploy/jupyterhub/proxy/package.json deploy/jupyterhub/proxy/package-lock.json
	mkdir -p $(VENV)/proxy
	cp deploy/jupyterhub/proxy/package.json deploy/jupyterhub/proxy/package-lock.json $(VENV)/proxy/
	cd $(VENV)/proxy && npm ci --omit=dev --no-audit --no-fund --loglevel=error
	touch $@

proxy: setup $(CHP)

# Jupyter refuses to run as root unless told; containers and course VMs often are root.
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT)

# A student's JupyterLab (deploy/student: no instructor tools, no news), started in a work
# folder outside the course; fetch/submit use DLCOURSE_EXCHANGE (default: this repo's).
STUDENT_DIR ?= $(HOME)/dlcourse-student
# The work folder is outside the course: its kernels are told where the data sets are.
COURSE_DATA = $(shell $(PY) -c "from dlcourse.data import course_data_dir; print(course_data_dir() or '')")
# The exchange is made (1777, as nbgrader's release makes it) when missing, so the Assignment
# List says "no assignments" rather than "exchange directory does not exist" before a release.
STUDENT_EXCHANGE = $${DLCOURSE_EXCHANGE:-$(CURDIR)/work/exchange}
student-lab: setup
	mkdir -p "$(STUDENT_DIR)"
	@test -d "$(STUDENT_EXCHANGE)" || { mkdir -p "$(STUDENT_EXCHANGE)" && \
	  chmod 1777 "$(STUDENT_EXCHANGE)" && echo "exchange $(STUDENT_EXCHANGE) created (1777)"; }
	cd "$(STUDENT_DIR)" && JUPYTER_CONFIG_PATH="$(CURDIR)/deploy/student" \
	  DLCOURSE_EXCHANGE="$(STUDENT_EXCHANGE)" \
	  DLCOURSE_DATA="$${DLCOURSE_DATA:-$(COURSE_DATA)}" \
	  "$(CURDIR)/$(VENV)/bin/jupyter" lab $(ALLOW_ROOT)

release: setup
	$(PY) -m dlcourse release

outputs: setup
	$(PY) -m dlcourse outputs

clean:
	rm -rf $(VENV) work .pytest_cache
