"""README's hub section and quick start, run as written on a fresh Debian 12 with none of the
course's packages: a maintainer's check before calling a deployment done (not part of
`make test`: it downloads Debian, Python and npm packages).

    python3 deploy/fresh-debian/readme_on_fresh_debian.py ROOT DATA

As root, on a Debian/Ubuntu host with debootstrap and bubblewrap. ROOT: an empty folder for the
new system (not under /tmp); DATA: the course's data folder (what `--from` installs). The
system is built with `debootstrap --variant=minbase bookworm` and entered with bwrap's
pivot_root (not chroot, so user namespaces work inside), the host's network and /proc (a VM's
/proc is not masked). What it shares with the host: the registry configuration a machine of
this network needs (CA certificates in /usr/local/share/ca-certificates, /etc/pip.conf,
~/.npmrc), when the host has them. Then, inside, as root:

1. README's hub block, as written (the clone comes from this checkout's committed HEAD; the
   data from DATA; two students and two staff with passwords), then its last line, the hub,
   until it serves its login page and the formgrader service; the hub is stopped again;
2. README's quick start in a second clone: its apt line, `data install`, `make demo
   WORKSHEETS=ws01_tensors`.

Prints each step's outcome; exits non-zero at the first failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HUB = "Running the course for a class"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def readme_blocks(title: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", text[start : end if end != -1 else None], re.S)


def enter(root: Path, data: Path, bare: Path) -> list[str]:
    return [
        "env", "-i", f"PATH={PATH}", "HOME=/root", "TERM=xterm", "LANG=C.UTF-8",
        "bwrap", "--bind", str(root), "/", "--dev-bind", "/dev", "/dev",
        "--bind", "/proc", "/proc", "--bind", "/sys", "/sys", "--tmpfs", "/run",
        "--bind", str(bare), "/mnt/repo.git", "--ro-bind", str(data), "/mnt/dlcourse-data",
        "--unshare-uts", "--hostname", "fresh", "--die-with-parent",
    ]  # fmt: skip


def step(what: str, argv: list[str], log: Path, **kw) -> None:
    print(f"== {what} (log: {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kw)
    took = time.monotonic() - started
    if done.returncode != 0:
        print(f"   FAILED (exit {done.returncode}, {took:.0f} s):")
        print("".join(log.read_text(errors="replace").splitlines(True)[-30:]))
        sys.exit(1)
    print(f"   ok ({took:.0f} s)")


def build(root: Path) -> None:
    step("debootstrap (minbase bookworm)", ["debootstrap", "--variant=minbase", "bookworm",
         str(root), "http://deb.debian.org/debian"], root.parent / "debootstrap.log")  # fmt: skip
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 fresh\n")
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if cas:
        target = root / "usr" / "local" / "share" / "ca-certificates"
        target.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copy(ca, target)
    for source, dest in ((Path("/etc/pip.conf"), "etc/pip.conf"), (Path.home() / ".npmrc",
                         "root/.npmrc")):  # fmt: skip
        if source.exists():
            shutil.copy(source, root / dest)
    for mount in ("mnt/repo.git", "mnt/dlcourse-data"):
        (root / mount).mkdir(parents=True, exist_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or os.geteuid() != 0:
        print(__doc__)
        return 2
    root, data = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    if root.exists() and any(root.iterdir()):
        print(f"{root} is not empty")
        return 2
    root.mkdir(parents=True, exist_ok=True)
    logs = root.parent / f"{root.name}-logs"
    logs.mkdir(exist_ok=True)
    bare = root.parent / f"{root.name}-repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(bare)], check=True)
    build(root)
    inside = enter(root, data, bare)
    local_cas = root / "usr" / "local" / "share" / "ca-certificates"
    cas = "update-ca-certificates" if local_cas.is_dir() and any(local_cas.iterdir()) else ""

    readme = (REPO / "README.md").read_text()
    install, _driver = readme_blocks(HUB)
    install = install.replace("<this repository>", "/mnt/repo.git")
    install = install.replace("/path/to/dlcourse-data.tar.gz", "/mnt/dlcourse-data")
    lines = install.rstrip("\n").splitlines()
    hub_line = lines.pop()
    assert "jupyterhub -f" in hub_line, hub_line
    exports = next(line for line in lines if line.startswith("export "))
    people = {"ada": "Ada", "alan": "Alan", "alice": None, "bob": None}
    (root / "root" / "class.csv").write_text(
        "id,first_name,last_name,email\n"
        + "".join(f"{u},{n},Student,{u}@example.invalid\n" for u, n in people.items() if n)
    )
    (root / "root" / "passwords.txt").write_text("".join(f"{u}:{u}-pw-123456\n" for u in people))
    apt = next(i for i, line in enumerate(lines) if line.startswith("apt-get"))
    body = lines[: apt + 1] + ([cas] if cas else []) + lines[apt + 1 :]  # needs apt's package
    (root / "root" / "hub.sh").write_text("set -euxo pipefail\ncd /root\n" + "\n".join(body))
    step("README's hub steps 0-3, as written", [*inside, "bash", "/root/hub.sh"], logs / "hub.log")

    print("== README's hub step 4: the hub, until it serves its login page and the formgrader")
    with (logs / "hub-run.log").open("w") as out:
        hub = subprocess.Popen(
            [*inside, "bash", "-c", f"cd /root && {exports} && exec {hub_line}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline, ready = time.monotonic() + 240, False
        while time.monotonic() < deadline and hub.poll() is None and not ready:
            time.sleep(3)
            try:
                for path in ("/hub/login", "/services/dlcourse/formgrader"):
                    urllib.request.urlopen(f"http://127.0.0.1:8000{path}", timeout=10)
                ready = True
            except OSError:
                continue
    finally:
        os.killpg(hub.pid, signal.SIGTERM)
        hub.wait(timeout=30)
        subprocess.run(["pkill", "-f", "/opt/dlcourse-env/"], check=False)  # the proxy, servers
    if not ready:
        print("   FAILED: the hub did not serve both pages within 240 s:")
        print((logs / "hub-run.log").read_text(errors="replace")[-3000:])
        return 1
    print("   ok")

    bare_debian = re.search(r"sudo (apt-get install -y [a-z0-9. -]+)`", readme)
    assert bare_debian, "README's quick start names no apt line for a bare Debian"
    (root / "root" / "quick.sh").write_text(
        "set -euxo pipefail\n"
        f"{bare_debian.group(1)}\n"
        "git clone -q /mnt/repo.git /root/course && cd /root/course\n"
        "# A new user's first try: no data sets yet, and the doctor says how to get them.\n"
        "if make demo WORKSHEETS=ws01_tensors; then exit 1; fi\n"
        ".venv/bin/python -m dlcourse data install /srv/quick-data --from /mnt/dlcourse-data\n"
        "DLCOURSE_DATA=/srv/quick-data make demo WORKSHEETS=ws01_tensors\n"
    )
    step("README's quick start (make demo, one worksheet)", [*inside, "bash", "/root/quick.sh"],
         logs / "quick.log")  # fmt: skip
    print(f"README's hub section and quick start ran as written on a fresh Debian 12 ({root}).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
