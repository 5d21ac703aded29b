#!/usr/bin/env bash
# The course on one JupyterHub server, installed the way README ("Running the course for a
# class") shows: run as root from a clone of this repository, again after each `git pull`
# (idempotent). What students' processes can read holds no master copy of the course:
#
#   the clone (DLCOURSE_SRC)          0700 root: source/ with the solutions and hidden tests,
#                                     tests/ (fixtures, wrong answers), release/, notebooks/
#   the venv (DLCOURSE_HUB_ENV)       world-readable, root-owned: a plain (not editable)
#                                     install of the dlcourse package with its [cpu,course]
#                                     extras, the course's kernel spec, the proxy in proxy/,
#                                     deploy/ (the hub's and the servers' config) in
#                                     share/dlcourse/deploy
#   the course (DLCOURSE_HUB_COURSE_DIR)  0700 the grader account: nbgrader_config.py, source/,
#                                     later release/, the gradebook, submitted/, autograded/
#   the exchange (DLCOURSE_EXCHANGE)  1777: nbgrader's exchange (everyone writes, sticky bit)
#   the hub's state (DLCOURSE_HUB_STATE)  0700 root: database, cookie secret, proxy PID
#   the data sets (DLCOURSE_DATA)     checked: reachable and readable by all (installed by
#                                     `python -m dlcourse data install`, README)
#
# and the Unix accounts: the grader account (DLCOURSE_HUB_GRADER) and one per staff member
# named in DLCOURSE_HUB_STAFF (comma-separated), each added to the Unix group
# formgrade-<course>, whose members the hub puts into its staff group of the same name (they
# reach the formgrader). Students' accounts come from the class list:
# `python -m dlcourse roster class.csv --unix-users` (README).
#
# Settings: the environment, with the hub's own defaults (every DLCOURSE_HUB_* is listed in
# dlcourse/hub.py, and read from there: `python -m dlcourse.hub settings`), plus
#   DLCOURSE_SRC      the clone (default: the repository this script is in)
#   DLCOURSE_HUB_ENV  the venv for everybody (default /opt/dlcourse-env)
#   PYTHON            a Python 3.11 every user can run (default /usr/bin/python3.11)
#   TF_EXTRA          cpu (default) or gpu: tensorflow-cpu or tensorflow[and-cuda]
# Export the same DLCOURSE_* variables for the hub (the script prints its command line).
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "${DLCOURSE_SRC:-$here/../..}" && pwd)
ENV_DIR=${DLCOURSE_HUB_ENV:-/opt/dlcourse-env}
PYTHON=${PYTHON:-/usr/bin/python3.11}
TF_EXTRA=${TF_EXTRA:-cpu}

say() { echo "install-hub: $*"; }
die() { echo "install-hub: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it creates Unix accounts and root-only folders)"
[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/source" ] || die "$SRC is not a clone of the course"
case "$ENV_DIR/" in "$SRC"/*) die "DLCOURSE_HUB_ENV=$ENV_DIR is inside the clone ($SRC), which becomes 0700" ;; esac
case "${DLCOURSE_DATA:-/}/" in "$SRC"/*) die "DLCOURSE_DATA is inside the clone ($SRC), which becomes 0700" ;; esac

# Every folder above a path other users need must let them through (o+x): a venv under a
# 0700 /root would start for root and fail for everybody else.
reachable() {
  local path=$1 dir
  dir=$(dirname "$path")
  while [ "$dir" != / ]; do
    if [ -d "$dir" ] && [ $(($(stat -c %a "$dir" | sed 's/^/0/') & 1)) -eq 0 ]; then
      die "$path: users cannot pass through $dir (mode $(stat -c %a "$dir")); choose another place"
    fi
    dir=$(dirname "$dir")
  done
}

# 1. Debian packages: bubblewrap (the grading sandbox), python3.11-venv, npm (the proxy;
#    a nodejs that ships its own npm counts, see deploy/system-packages).
"$SRC/deploy/system-packages" hub
[ -x "$PYTHON" ] || die "$PYTHON missing: set PYTHON to a Python 3.11 every user can run"
reachable "$PYTHON"

# 2. The clone: root only, from now on.
chown root: "$SRC"
chmod 0700 "$SRC"
say "clone $SRC: 0700 root (source/, tests/, release/ are the grader's and root's only)"

# 3. The venv for everybody: the package installed from the clone, not linked to it.
reachable "$ENV_DIR"
if [ ! -x "$ENV_DIR/bin/python" ]; then
  say "creating the venv $ENV_DIR ($PYTHON)"
  "$PYTHON" -m venv "$ENV_DIR"
fi
chmod 0755 "$ENV_DIR"
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
if "$ENV_DIR/bin/python" -m pip show --quiet dlcourse >/dev/null 2>&1; then  # a rebuild, always
  quiet "$ENV_DIR/bin/python" -m pip uninstall --quiet --yes dlcourse
fi
say "pip install $SRC[$TF_EXTRA,course] into $ENV_DIR (not editable)"
quiet "$ENV_DIR/bin/python" -m pip install --quiet "$SRC[$TF_EXTRA,course]"
"$ENV_DIR/bin/python" -c 'import sys, dlcourse.kernel_env as k; sys.exit(k.main(["install"]))'
rm -rf "$ENV_DIR/share/dlcourse/deploy"
mkdir -p "$ENV_DIR/share/dlcourse"
cp -r "$SRC/deploy" "$ENV_DIR/share/dlcourse/deploy"
config="$ENV_DIR/share/dlcourse/deploy/jupyterhub/jupyterhub_config.py"

# 4. JupyterHub's proxy, as pinned in deploy/jupyterhub/proxy, into the venv's proxy/.
proxy="$ENV_DIR/proxy"
if ! cmp -s "$SRC/deploy/jupyterhub/proxy/package-lock.json" "$proxy/package-lock.json" ||
  [ ! -x "$proxy/node_modules/.bin/configurable-http-proxy" ]; then
  say "npm ci: configurable-http-proxy into $proxy"
  mkdir -p "$proxy"
  cp "$SRC/deploy/jupyterhub/proxy/package.json" "$SRC/deploy/jupyterhub/proxy/package-lock.json" "$proxy/"
  (cd "$proxy" && npm ci --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error)
fi
chmod -R a+rX "$ENV_DIR"

# The hub's settings and defaults, from dlcourse/hub.py (the environment overrides each).
eval "$("$ENV_DIR/bin/python" -m dlcourse.hub settings)"

# 5. Unix accounts: the grader, the staff (also in the Unix group formgrade-<course>, whose
#    members the hub makes staff: dlcourse/hub.py).
add_user() {
  [[ "$1" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "not a Unix user name: '$1'"
  if id -u "$1" >/dev/null 2>&1; then return; fi
  useradd --create-home --user-group --shell /bin/bash "$1"
  chmod 0700 "$(getent passwd "$1" | cut -d: -f6)"
  say "Unix account $1 created (home 0700; give it a password for PAM logins)"
}
add_user "$DLCOURSE_HUB_GRADER"
staff_group="formgrade-$DLCOURSE_HUB_COURSE"
groupadd -f "$staff_group"
IFS=, read -r -a staff <<<"$DLCOURSE_HUB_STAFF"
for name in "${staff[@]}"; do
  name=${name//[[:space:]]/}
  [ -n "$name" ] || continue
  add_user "$name"
  usermod -a -G "$staff_group" "$name"
done
say "staff (Unix group $staff_group): $(getent group "$staff_group" | cut -d: -f4)"

# 6. The course directory: the grader's alone.
course=$DLCOURSE_HUB_COURSE_DIR
grader=$DLCOURSE_HUB_GRADER
reachable "$course"
install -d -m 0755 "$(dirname "$course")"
install -d -o "$grader" -g "$grader" -m 0700 "$course"
cp "$SRC/nbgrader_config.py" "$course/nbgrader_config.py"
mkdir -p "$course/source"
for sheet in "$SRC"/source/*/; do  # new worksheets in; those the course has are kept as they are
  [ -e "$course/source/$(basename "$sheet")" ] || cp -r "$sheet" "$course/source/"
done
chown -R "$grader:$grader" "$course"
chmod 0700 "$course"
say "course $course: 0700 $grader"

# 7. The exchange (1777, as nbgrader's release expects) and the hub's state (0700 root).
reachable "$DLCOURSE_EXCHANGE"
install -d -m 1777 "$DLCOURSE_EXCHANGE"
chmod 1777 "$DLCOURSE_EXCHANGE"
install -d -m 0700 "$DLCOURSE_HUB_STATE"
chmod 0700 "$DLCOURSE_HUB_STATE"

# 8. The data sets (`python -m dlcourse data install`, README): every user's kernels read them.
if [ -n "${DLCOURSE_DATA:-}" ]; then
  reachable "$DLCOURSE_DATA/x"
  if [ -d "$DLCOURSE_DATA" ] && [ -n "$(find "$DLCOURSE_DATA" ! -perm -o+r -print -quit)" ]; then
    say "warning: not everything in $DLCOURSE_DATA is readable by all (chmod -R a+rX it)"
  fi
else
  say "DLCOURSE_DATA is not set: the kernels will not find the data sets (README: Data)"
fi

say "done. Start the hub as root, with the same DLCOURSE_* settings exported (behind HTTPS):"
echo "  $ENV_DIR/bin/jupyterhub -f $config"
