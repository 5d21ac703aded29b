"""`python -m dlcourse data install|verify`: the data sets installed from a folder, an archive or
a URL base, every file checked against the checksums the repository carries.

Offline: the fake data sets are a few small files with their own manifest (`--manifest`), the
URL branch runs against a real HTTP server on 127.0.0.1. One test checks the real data
(../shared/data beside the repo) against the committed manifest.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dlcourse import data, data_install
from dlcourse.__main__ import main

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

FAKE = {
    "mnist.npz": b"fake mnist " * 1000,
    "big.npz": bytes(range(256)) * 6000,  # 1.5 MB: more than one copy block
    "cifar/batches py/data_batch_1": b"batch one",  # a folder, and a space to quote in URLs
    "cifar/batches py/test_batch": b"test batch",
}


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_manifest(path: Path, files: dict[str, bytes]) -> Path:
    path.write_text("".join(f"{sha(body)}  ./{name}\n" for name, body in files.items()))
    return path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return root


@pytest.fixture
def manifest(tmp_path) -> Path:
    return write_manifest(tmp_path / "fake.sha256", FAKE)


@pytest.fixture
def source(tmp_path) -> Path:
    return write_tree(tmp_path / "handed-out", FAKE)


def run(*argv: str | Path) -> int:
    return main(["data", *map(str, argv)])


def installed(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def assert_no_leftovers(dest: Path) -> None:
    stray = [p for p in dest.rglob("*") if p.name.endswith(".part")]
    assert not stray, f"temporary files left behind: {stray}"


# --- the committed manifest and the real data ----------------------------------------------


def test_committed_manifest_lists_what_the_loaders_read():
    listed = data_install.read_manifest()
    reconstructed = [f"{data._RECONSTRUCTED}/{b}" for b in (*data.CIFAR_BATCHES, "test_batch")]
    npz = ["mnist.npz", "fashion-mnist.npz", "cifar10-exact-subset.npz"]
    assert sorted(listed) == sorted(npz + reconstructed)
    # ... with the checksums dlcourse.data accepts for the same files
    known = data.manifest()
    for name in npz:
        spec = next(s for s in known.values() if name in s["files"])
        assert listed[name] in spec["files"][name]["sha256"], name
    pickles = known["cifar10"]["files"][data._RECONSTRUCTED]["sha256"]
    for name in reconstructed:
        assert listed[name] == pickles[name.rsplit("/", 1)[1]], name


def test_committed_manifest_is_sha256sum_format():
    lines = data_install.MANIFEST.read_text().splitlines()
    assert lines and all(re.fullmatch(r"[0-9a-f]{64}  \./\S+", line) for line in lines), lines
    if shutil.which("sha256sum") and SHARED.is_dir():  # the coreutils check reads it too
        done = subprocess.run(
            ["sha256sum", "--check", "--strict", str(data_install.MANIFEST)],
            cwd=SHARED,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_real_shared_data_matches_committed_manifest(capsys):
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} missing on CI: CI runs with ../shared beside the clone")
        pytest.skip("../shared/data not beside the repo")
    assert run("verify", SHARED) == 0, capsys.readouterr().err
    # and the checksums shipped with the data agree with the repository's for every file
    sums = (SHARED / "SHA256SUMS").read_text().split("\n")
    theirs = {line.split()[1][2:]: line.split()[0] for line in sums if line.strip()}
    for name, digest in data_install.read_manifest().items():
        assert theirs[name] == digest, name


# --- from a folder ------------------------------------------------------------------------


def test_install_from_a_folder_then_rerun_changes_nothing(tmp_path, source, manifest, capsys):
    dest = tmp_path / "srv" / "dlcourse-data"
    assert run("install", dest, "--from", source, "--manifest", manifest) == 0
    assert installed(dest) == FAKE
    out = capsys.readouterr().out
    assert out.count("installed ") == len(FAKE) and f"DLCOURSE_DATA={dest}" in out
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((dest / "mnist.npz").stat().st_mode) == 0o666 & ~umask  # as `cp` makes

    before = {p: p.stat().st_ino for p in dest.rglob("*")}
    assert run("install", dest, "--from", source, "--manifest", manifest) == 0
    assert {p: p.stat().st_ino for p in dest.rglob("*")} == before  # nothing rewritten
    assert capsys.readouterr().out.count("kept ") == len(FAKE)
    assert run("verify", dest, "--manifest", manifest) == 0


def test_corrupt_and_missing_files_are_refused_the_good_ones_kept(
    tmp_path, source, manifest, capsys
):
    (source / "big.npz").write_bytes(FAKE["big.npz"][:-1] + b"!")  # one byte differs
    (source / "cifar" / "batches py" / "test_batch").unlink()
    dest = tmp_path / "dest"
    assert run("install", dest, "--from", source, "--manifest", manifest) == 1
    err = capsys.readouterr().err
    assert "2 of 4" in err and "big.npz" in err and "cifar/batches py/test_batch" in err
    assert installed(dest) == {
        k: v for k, v in FAKE.items() if k not in ("big.npz", "cifar/batches py/test_batch")
    }
    assert_no_leftovers(dest)

    # fixed at the source: the same command completes the folder
    write_tree(source, FAKE)
    assert run("install", dest, "--from", source, "--manifest", manifest) == 0
    assert installed(dest) == FAKE


def test_a_bad_file_already_in_dest_is_replaced_by_a_verified_copy(tmp_path, source, manifest):
    dest = write_tree(tmp_path / "dest", FAKE | {"mnist.npz": b"truncated"})
    assert run("verify", dest, "--manifest", manifest) == 1
    assert run("install", dest, "--from", source, "--manifest", manifest) == 0
    assert installed(dest) == FAKE


def test_verify_names_missing_and_corrupt_files(tmp_path, manifest, capsys, monkeypatch):
    dest = write_tree(tmp_path / "dest", FAKE)
    (dest / "mnist.npz").write_bytes(b"not mnist")
    (dest / "big.npz").unlink()
    monkeypatch.setenv("DLCOURSE_DATA", str(dest))  # verify's default folder
    assert run("verify", "--manifest", manifest) == 1
    captured = capsys.readouterr()
    assert "2 of 4" in captured.err and "mnist.npz" in captured.err and "big.npz" in captured.err
    assert re.search(r"FAILED\s+big\.npz: missing", captured.out)
    assert re.search(r"FAILED\s+mnist\.npz: SHA-256 differs", captured.out)


def test_source_that_does_not_exist(tmp_path, manifest, capsys):
    assert run("install", tmp_path / "d", "--from", tmp_path / "nope", "--manifest", manifest) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_install_needs_exactly_one_source(tmp_path):
    with pytest.raises(SystemExit) as exc:
        run("install", tmp_path / "d")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        run("install", tmp_path / "d", "--from", tmp_path, "--url", "http://127.0.0.1/")


# --- from an archive ----------------------------------------------------------------------


def make_tar(path: Path, folder: Path, arcname: str, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        tar.add(folder, arcname=arcname)
    return path


def make_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in files.items():
            zf.writestr(prefix + name, body)
    return path


@pytest.mark.parametrize(
    "kind", ["tar.gz, data/ inside", "tar, ./ inside", "zip, files at the top"]
)
def test_install_from_an_archive(tmp_path, source, manifest, kind):
    if kind.startswith("tar.gz"):
        archive = make_tar(tmp_path / "dlcourse-data.tar.gz", source, "data")
    elif kind.startswith("tar"):
        archive = make_tar(tmp_path / "dlcourse-data.tar", source, ".", mode="w")
    else:
        archive = make_zip(tmp_path / "dlcourse-data.zip", FAKE)
    dest = tmp_path / "dest"
    assert run("install", dest, "--from", archive, "--manifest", manifest) == 0
    assert installed(dest) == FAKE
    assert run("install", dest, "--from", archive, "--manifest", manifest) == 0  # idempotent
    assert installed(dest) == FAKE


def test_corrupt_member_of_an_archive_is_refused(tmp_path, source, manifest, capsys):
    (source / "mnist.npz").write_bytes(b"tampered")
    archive = make_tar(tmp_path / "data.tar.gz", source, "data")
    dest = tmp_path / "dest"
    assert run("install", dest, "--from", archive, "--manifest", manifest) == 1
    err = capsys.readouterr().err
    assert "1 of 4" in err and "mnist.npz" in err
    assert not (dest / "mnist.npz").exists()
    assert installed(dest) == {k: v for k, v in FAKE.items() if k != "mnist.npz"}
    assert_no_leftovers(dest)


def hostile_archives(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    def tar_with(name: str, build) -> Path:
        path = tmp_path / f"{name}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for body_name, body in FAKE.items():  # a complete, valid data set...
                info = tarfile.TarInfo(body_name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            build(tar)  # ... plus one hostile member
        return path

    def dotdot(tar):
        info = tarfile.TarInfo("../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))

    def absolute(tar):
        info = tarfile.TarInfo(str(tmp_path / "escaped"))
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))

    def symlink(tar):
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(info)

    def hardlink(tar):
        info = tarfile.TarInfo("hard")
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tar.addfile(info)

    for name, build in [
        ("dotdot", dotdot),
        ("absolute", absolute),
        ("symlink", symlink),
        ("hardlink", hardlink),
    ]:
        yield name, tar_with(name, build)

    with zipfile.ZipFile(tmp_path / "zip-dotdot.zip", "w") as zf:
        zf.writestr("mnist.npz", FAKE["mnist.npz"])
        zf.writestr("../escaped", b"evil")
    yield "zip-dotdot", tmp_path / "zip-dotdot.zip"

    with zipfile.ZipFile(tmp_path / "zip-symlink.zip", "w") as zf:
        zf.writestr("mnist.npz", FAKE["mnist.npz"])
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, str(tmp_path))
    yield "zip-symlink", tmp_path / "zip-symlink.zip"


def test_hostile_archives_are_refused_and_write_nothing(tmp_path, manifest, capsys):
    (tmp_path / "archives").mkdir()
    for name, archive in hostile_archives(tmp_path / "archives"):
        dest = tmp_path / "dest" / name
        assert run("install", dest, "--from", archive, "--manifest", manifest) == 1, name
        err = capsys.readouterr().err
        assert "refusing the archive" in err and "nothing installed" in err, (name, err)
        assert ("link" if "link" in name else "'..'") in err, (name, err)
        assert not dest.exists(), name
        assert not list(tmp_path.rglob("escaped")), name


# --- from a URL base ----------------------------------------------------------------------


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a copy of the fake data set: (URL base, its folder)."""
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    folder = write_tree(tmp_path / "www" / "dlcourse-data", FAKE)
    handler = partial(QuietHandler, directory=str(tmp_path / "www"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/dlcourse-data/", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_download_from_a_url_base_then_rerun(tmp_path, server, manifest, capsys):
    url, _ = server
    dest = tmp_path / "dest"
    assert run("install", dest, "--url", url, "--manifest", manifest) == 0
    assert installed(dest) == FAKE
    before = {p: p.stat().st_ino for p in dest.rglob("*")}
    assert run("install", dest, "--url", url, "--manifest", manifest) == 0
    assert {p: p.stat().st_ino for p in dest.rglob("*")} == before
    assert capsys.readouterr().out.count("kept ") == len(FAKE)


def test_download_refuses_a_corrupt_file_and_reports_a_missing_one(
    tmp_path, server, manifest, capsys
):
    url, folder = server
    (folder / "big.npz").write_bytes(FAKE["big.npz"][: 1 << 20])  # truncated on the server
    (folder / "mnist.npz").unlink()  # 404
    dest = tmp_path / "dest"
    assert run("install", dest, "--url", url, "--manifest", manifest) == 1
    captured = capsys.readouterr()
    assert "2 of 4" in captured.err and "big.npz" in captured.err and "mnist.npz" in captured.err
    assert "HTTP 404" in captured.out and "SHA-256" in captured.out
    assert not (dest / "big.npz").exists() and not (dest / "mnist.npz").exists()
    assert installed(dest) == {k: v for k, v in FAKE.items() if k not in ("big.npz", "mnist.npz")}
    assert_no_leftovers(dest)


def test_unreachable_server_fails_every_file_cleanly(tmp_path, manifest, capsys, monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    with ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler) as idle:
        port = idle.server_address[1]  # a port nothing listens on once closed
    dest = tmp_path / "dest"
    assert run("install", dest, "--url", f"http://127.0.0.1:{port}", "--manifest", manifest) == 1
    assert "4 of 4" in capsys.readouterr().err
    assert installed(dest) == {}


def test_only_http_and_https_urls(tmp_path, manifest, capsys):
    assert run("install", tmp_path / "d", "--url", "file:///etc", "--manifest", manifest) == 1
    assert "http:// or https://" in capsys.readouterr().err


# --- README -------------------------------------------------------------------------------


def readme_data_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if "-m dlcourse data " in line:
                argv = shlex.split(line)
                commands.append(argv[argv.index("dlcourse") + 1 :])
    return commands


def test_readme_installs_the_data_with_the_command_not_a_copy_from_shared():
    text = (REPO / "README.md").read_text()
    assert "cp -r ../shared/data" not in text
    commands = readme_data_commands()
    assert any(c[:2] == ["data", "install"] and "--from" in c for c in commands), commands
    assert any(c[:2] == ["data", "install"] and "--url" in c for c in commands), commands


def test_readme_data_commands_parse_and_run(tmp_path, source, manifest, server, monkeypatch):
    """Every README `dlcourse data` command, with its placeholders pointed at the fake data."""
    url, _ = server
    archive = make_tar(tmp_path / "handed-out.tar.gz", source, "data")
    for argv in readme_data_commands():
        argv = [
            str(tmp_path / "dest")
            if a.startswith("/srv/")
            else url
            if a.startswith("http")
            else str(archive)
            if a.startswith(("/path", "<"))
            else a
            for a in argv
        ]
        monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "dest"))
        assert main([*argv, "--manifest", str(manifest)]) == 0, argv
    assert installed(tmp_path / "dest") == FAKE


def test_cli_in_a_subprocess_installs_and_exits_non_zero_on_failure(tmp_path, source, manifest):
    """The module entry point as an instructor runs it (exit status, stderr)."""
    (source / "mnist.npz").write_bytes(b"bad")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlcourse",
            "data",
            "install",
            str(tmp_path / "d"),
            "--from",
            str(source),
            "--manifest",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "mnist.npz" in done.stderr and "refused" in done.stdout
    assert sorted(installed(tmp_path / "d")) == sorted(k for k in FAKE if k != "mnist.npz")
