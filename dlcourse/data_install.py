"""Install the course's data sets into a folder, each file checked against the repository's
SHA-256 checksums (`dlcourse/datasets.sha256`, the format of `sha256sum`).

    python -m dlcourse data install DEST --from FOLDER_OR_ARCHIVE   # folder, .tar(.gz), .zip
    python -m dlcourse data install DEST --url URL_BASE             # fetches URL_BASE/<name>
    python -m dlcourse data verify [DIR]

The manifest lists the files `dlcourse.data`'s loaders read (the reconstruction's
`batches.meta` is not one of them). A file is written under a temporary name beside its
destination, hashed while it is written, and renamed into place only when its checksum
matches: a corrupt or truncated copy is refused and removed, never left where the loaders
look. Files already in DEST with the right checksum are kept (re-running is cheap and changes
nothing), a failure of one file leaves the others installed, and any failure makes the command
exit non-zero with the names of the files that are missing or bad.

Archives are never extracted as a whole: only the members named in the manifest are read, and
an archive holding absolute paths, `..` components, links or device files is refused outright.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import stat
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MANIFEST = Path(__file__).with_name("datasets.sha256")
BLOCK = 1 << 20
URL_TIMEOUT_S = 60

_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class ManifestError(ValueError):
    """The checksum manifest cannot be read."""


class SourceError(RuntimeError):
    """The source as a whole cannot be used (not found, unsafe archive, bad URL)."""


class MissingFile(LookupError):
    """The source has no copy of one file."""


def _safe_relative(name: str) -> str | None:
    """`name` as a clean relative POSIX path, or None when it is absolute or climbs out."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """{relative file name: expected SHA-256} from a `sha256sum`-format file."""
    entries: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise ManifestError(f"cannot read the checksum manifest {path}: {err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        name = _safe_relative(match.group(2)) if match else None
        if match is None or name is None:
            raise ManifestError(f"{path}:{number}: not a '<sha256>  ./<relative name>' line")
        entries[name] = match.group(1).lower()
    if not entries:
        raise ManifestError(f"{path} lists no files")
    return entries


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# --- sources: each opens one manifest name for reading, or raises MissingFile ---------------


class Source:
    """Where the files come from; subclasses implement `open` (and `close`, `order`)."""

    description: str

    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        """The file's bytes; MissingFile when the source has no such file."""
        raise NotImplementedError

    def order(self, names: list[str]) -> list[str]:
        """The order to read `names` in (an archive's own order avoids re-reading it)."""
        return names

    def close(self) -> None:
        pass


class FolderSource(Source):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        path = self.root / name
        if not path.is_file():
            raise MissingFile(f"not in {self.root}")
        with path.open("rb") as fh:
            yield fh


def _common_prefix(members: list[str], names: list[str]) -> str:
    """The folder inside an archive that holds the data files: "" when they are at its top,
    "data/" for an archive of a folder named data. The prefix that holds the most wins."""
    votes: dict[str, int] = {}
    for member in members:
        for name in names:
            if member == name or member.endswith("/" + name):
                prefix = member[: len(member) - len(name)]
                votes[prefix] = votes.get(prefix, 0) + 1
    if not votes:
        return ""
    return min(votes, key=lambda p: (-votes[p], len(p)))


CLIMBS = "is an absolute path or climbs out of its folder with '..'"
PLAIN = "a data archive holds plain files only"


def _refused(archive: Path, member: str, why: str) -> SourceError:
    return SourceError(f"refusing the archive {archive}: member {member!r} {why}")


class TarSource(Source):
    def __init__(self, path: Path, names: list[str]) -> None:
        self.description = str(path)
        try:
            self.tar = tarfile.open(path, "r:*")
            members = self.tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise SourceError(f"cannot read the archive {path}: {err}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            if member.issym() or member.islnk():
                self.close()
                raise _refused(path, member.name, f"is a link (to {member.linkname!r}); {PLAIN}")
            if not (member.isfile() or member.isdir()):
                self.close()
                raise _refused(path, member.name, "is not a plain file or folder")
            clean = _safe_relative(member.name)
            if clean is None and member.isdir() and member.name.strip("./") == "":
                continue  # the archive's own top folder, "./"
            if clean is None:
                self.close()
                raise _refused(path, member.name, CLIMBS)
            self.members[clean] = member
        self.prefix = _common_prefix(list(self.members), names)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        member = self.members.get(self.prefix + name)
        if member is None or not member.isfile():
            raise MissingFile(f"not in {self.description}")
        fh = self.tar.extractfile(member)
        if fh is None:
            raise MissingFile(f"not a file in {self.description}")
        with fh:
            yield fh

    def order(self, names: list[str]) -> list[str]:
        def position(name: str) -> int:
            member = self.members.get(self.prefix + name)
            return member.offset if member is not None else -1

        return sorted(names, key=position)

    def close(self) -> None:
        self.tar.close()


class ZipSource(Source):
    def __init__(self, path: Path, names: list[str]) -> None:
        self.description = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, OSError) as err:
            raise SourceError(f"cannot read the archive {path}: {err}") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            clean = _safe_relative(info.filename)
            if clean is None:
                self.close()
                raise _refused(path, info.filename, CLIMBS)
            if stat.S_ISLNK(info.external_attr >> 16):
                self.close()
                raise _refused(path, info.filename, f"is a link; {PLAIN}")
            self.members[clean] = info
        self.prefix = _common_prefix(list(self.members), names)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        info = self.members.get(self.prefix + name)
        if info is None or info.is_dir():
            raise MissingFile(f"not in {self.description}")
        with self.zip.open(info) as fh:
            yield fh

    def close(self) -> None:
        self.zip.close()


class UrlSource(Source):
    def __init__(self, base: str) -> None:
        scheme = urllib.parse.urlsplit(base).scheme
        if scheme not in ("http", "https"):
            raise SourceError(f"--url needs an http:// or https:// address, not {base!r}")
        self.base = base.rstrip("/")
        self.description = self.base

    def url(self, name: str) -> str:
        return f"{self.base}/{urllib.parse.quote(name)}"

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        url = self.url(name)
        try:
            response = urllib.request.urlopen(url, timeout=URL_TIMEOUT_S)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code in (404, 410):
                raise MissingFile(f"not found at {url} (HTTP {err.code})") from None
            raise OSError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise OSError(f"cannot fetch {url}: {reason}") from None
        with response:
            yield response


def open_source(origin: str | Path, names: list[str], *, url: bool = False) -> Source:
    """A folder, a .tar/.tar.gz/.tgz/.zip archive, or (url=True) an HTTP(S) base address."""
    if url:
        return UrlSource(str(origin))
    path = Path(origin).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if not path.is_file():
        raise SourceError(f"{path} does not exist (give a data folder or archive)")
    if zipfile.is_zipfile(path):
        return ZipSource(path, names)
    if tarfile.is_tarfile(path):
        return TarSource(path, names)
    raise SourceError(f"{path} is neither a folder nor a .tar, .tar.gz or .zip archive")


# --- install and verify ------------------------------------------------------------------


@dataclass
class Report:
    kept: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class ChecksumMismatch(ValueError):
    pass


def _copy_verified(src: BinaryIO, target: Path, expected: str) -> None:
    """Write `src` beside `target` under a temporary name, then rename it into place only if
    its SHA-256 is `expected`; the temporary file never survives a failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    # O_EXCL: never follow or reuse something already there; 0o666 & ~umask like `cp`.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src.read(BLOCK), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != expected:
            raise ChecksumMismatch(
                f"SHA-256 {digest.hexdigest()[:16]}… differs from the repository's "
                f"{expected[:16]}…: corrupt or not the course's file, refused"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _is_verified(path: Path, expected: str) -> bool:
    return path.is_file() and sha256_of(path) == expected


Say = Callable[[str], None]


def _say(message: str) -> None:
    print(message, flush=True)


def install(
    dest: Path,
    source: Source,
    manifest: dict[str, str],
    say: Say = _say,
) -> Report:
    """Copy every manifest file from `source` into `dest`, verified; see the module's doc."""
    report = Report()
    dest.mkdir(parents=True, exist_ok=True)
    for name in source.order(list(manifest)):
        expected = manifest[name]
        target = dest / name
        if _is_verified(target, expected):
            report.kept.append(name)
            say(f"  kept       {name} (already installed, checksum OK)")
            continue
        try:
            with source.open(name) as src:
                _copy_verified(src, target, expected)
        except MissingFile as err:
            report.failed[name] = f"missing: {err}"
        except ChecksumMismatch as err:
            report.failed[name] = str(err)
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as err:
            report.failed[name] = f"could not be copied: {err}"
        else:
            report.installed.append(name)
            say(f"  installed  {name}")
            continue
        say(f"  FAILED     {name}: {report.failed[name]}")
    return report


def verify(directory: Path, manifest: dict[str, str], say: Say = _say) -> Report:
    report = Report()
    for name, expected in manifest.items():
        path = directory / name
        if not path.is_file():
            report.failed[name] = f"missing ({path})"
        elif sha256_of(path) != expected:
            report.failed[name] = (
                f"SHA-256 differs from the repository's {expected[:16]}… ({path}): corrupt, "
                f"truncated or not the course's file"
            )
        else:
            report.kept.append(name)
            say(f"  OK      {name}")
            continue
        say(f"  FAILED  {name}: {report.failed[name]}")
    return report


def _summary_of_failures(report: Report, total: int) -> str:
    names = ", ".join(report.failed)
    return f"{len(report.failed)} of {total} data files missing or bad: {names}"


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="data_command", required=True)
    inst = actions.add_parser(
        "install",
        help="install the data sets into DEST from a folder, an archive or a URL base, each "
        "file checked against the repository's SHA-256 checksums",
    )
    inst.add_argument("dest", metavar="DEST", type=Path, help="folder to install into")
    origin = inst.add_mutually_exclusive_group(required=True)
    origin.add_argument(
        "--from",
        dest="source",
        metavar="FOLDER_OR_ARCHIVE",
        help="a data folder, or a .tar, .tar.gz or .zip archive of one",
    )
    origin.add_argument(
        "--url", metavar="URL_BASE", help="HTTP(S) base address: fetches URL_BASE/<file name>"
    )
    check = actions.add_parser(
        "verify", help="check a data folder against the repository's SHA-256 checksums"
    )
    check.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        type=Path,
        help="default: $DLCOURSE_DATA, else the first data folder dlcourse.data finds",
    )
    for sub in (inst, check):
        sub.add_argument(
            "--manifest",
            type=Path,
            default=MANIFEST,
            help="checksum file in sha256sum format (default: the package's datasets.sha256)",
        )


def _default_data_dir() -> Path | None:
    from dlcourse import data, settings

    return settings.data_dir() or data.course_data_dir()


def command(args: argparse.Namespace) -> int:
    try:
        manifest = read_manifest(args.manifest)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.data_command == "verify":
        directory = args.dir or _default_data_dir()
        if directory is None:
            print("error: no data folder found; give DIR or export DLCOURSE_DATA", file=sys.stderr)
            return 1
        print(f"Checking {directory} against {args.manifest}")
        report = verify(directory, manifest)
        if not report.ok:
            print(f"error: {_summary_of_failures(report, len(manifest))}", file=sys.stderr)
            return 1
        print(f"All {len(manifest)} data files in {directory} match their checksums.")
        return 0

    dest: Path = args.dest.expanduser()
    try:
        source = open_source(args.url or args.source, list(manifest), url=args.url is not None)
    except SourceError as err:
        print(f"error: {err}; nothing installed", file=sys.stderr)
        return 1
    print(f"Installing {len(manifest)} data files from {source.description} into {dest}")
    try:
        report = install(dest, source, manifest)
    except OSError as err:  # DEST itself cannot be created or written
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        source.close()
    if not report.ok:
        print(
            f"error: {_summary_of_failures(report, len(manifest))}. The files reported OK are "
            f"in place; fix the source and run the same command again.",
            file=sys.stderr,
        )
        return 1
    print(
        f"Done: {len(report.installed)} installed, {len(report.kept)} already there, all "
        f"checked. Point the course at them: export DLCOURSE_DATA={dest.absolute()}"
    )
    return 0
