"""`nbgrader collect` that a student cannot use against another student or the grader.

nbgrader 0.9.6's collect takes every inbound entry by its name: an entry filed under another
student's name replaces that student's work (it only warns that the owner differs), a
submission folder may itself be a symlink, the copy follows symlinks inside the submission as
the collecting user (root on many servers: `/etc/shadow` lands in `submitted/`), and what it
checks is not what it copies (a student's process can rename a link to the master notebook
over their notebook while collect copies). Lateness comes from the entry's timestamp.txt,
which the student writes.

`StrictCollect` (set in nbgrader_config.py):
- refuses, with an error in the log, every entry that is a link or not a folder and every
  entry owned by a user other than the student it names (entries owned by the collecting
  account itself are accepted: a single-user course, as in the demo);
- copies without ever following a link: the entry and every name in it are opened relative to
  the folder's descriptor with O_NOFOLLOW, the opened descriptor is fstat'ed (type, owner,
  size, ctime) and only regular files are copied, from that descriptor; links, FIFOs, sockets
  and devices are skipped with a note. nbgrader's ignore/include/max_file_size rules apply as
  nbgrader applies them, except that a file over the size limit is refused with a note the
  student sees in feedback (`dlcourse.grader.intake`), never dropped silently;
- decides the timestamp nbgrader uses for lateness (`submitted/<s>/<a>/timestamp.txt`) from
  what the student cannot set: the entry's ctime (the latest of the fstat'ed entry and files).
  The student's claim stands when it is no earlier than that, within `SLACK`; a missing,
  unparseable or backdated claim is replaced by the observed time, with a note in the
  student's grading notes and in the collect log. When collect first saw each entry, its
  ctime, the claim and the time used are kept in `grading/collect/<assignment>.json`.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.utils import parse_utc

from dlcourse.grader import intake
from dlcourse.grader.course import Course
from dlcourse.grader.quoting import printable

SLACK = timedelta(minutes=5)  # nbgrader submit stamps, then copies; clocks of NFS clients drift
MAX_ENTRIES = 1000  # names looked at in one submission (a student controls the tree)
MAX_DEPTH = 8
CHUNK = 2**20
OPEN_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NBGRADER_TIME = "%Y-%m-%d %H:%M:%S.%f UTC"


def owner_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def owner_refusal(uid: int, student: str) -> str | None:
    """Why a file owned by `uid` is not `student`'s (the collecting account is trusted)."""
    if uid == os.geteuid():
        return None
    owner = owner_name(uid)
    if owner != student:
        return f"filed under {student!r} but owned by {owner or uid!r}"
    return None


@dataclass(frozen=True)
class Rules:
    """nbgrader's CourseDirectory.ignore / include / max_file_size, as `ignore_patterns`."""

    exclude: list[str]
    include: list[str]
    max_bytes: int

    def skipped(self, name: str, is_file: bool) -> bool:
        if any(fnmatch.fnmatch(name, pattern) for pattern in self.exclude):
            return True
        if is_file and self.include:
            return not any(fnmatch.fnmatch(name, pattern) for pattern in self.include)
        return False


@dataclass
class Copied:
    ctime: float = 0.0  # the latest ctime of the entry and everything copied from it
    notes: list[str] = field(default_factory=list)  # for the student (and the log)
    count: int = 0


class Refused(Exception):
    """The entry itself cannot be collected (no longer a folder of the student's)."""


def copy_entry(src: str, dest: str, student: str, rules: Rules) -> Copied:
    """Copy the inbound entry `src` to the new folder `dest` without following anything."""
    parent = os.open(os.path.dirname(src) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(os.path.basename(src), OPEN_NOFOLLOW | os.O_DIRECTORY, dir_fd=parent)
        except OSError as err:
            raise Refused(f"the entry is a link or not a folder ({err.strerror})") from err
    finally:
        os.close(parent)
    try:
        info = os.fstat(fd)
        if reason := owner_refusal(info.st_uid, student):
            raise Refused(reason)
        copied = Copied(ctime=info.st_ctime)
        os.mkdir(dest, 0o700)
        _copy_folder(fd, dest, "", student, rules, copied, 0)
        copied.ctime = max(copied.ctime, os.fstat(fd).st_ctime)  # changed while copied
        os.chmod(dest, 0o755)
        return copied
    finally:
        os.close(fd)


def _copy_folder(
    fd: int, dest: str, rel: str, student: str, rules: Rules, copied: Copied, depth: int
) -> None:
    for name in sorted(os.listdir(fd)):
        shown = printable(os.path.join(rel, name))
        copied.count += 1
        if copied.count > MAX_ENTRIES:
            copied.notes.append(
                f"the submission has more than {MAX_ENTRIES} files; the rest was not collected"
            )
            return
        try:
            first = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        is_dir, is_file = stat.S_ISDIR(first.st_mode), stat.S_ISREG(first.st_mode)
        if rules.skipped(name, is_file):
            continue
        if not (is_dir or is_file):
            copied.notes.append(f"'{shown}' is {_kind(first.st_mode)}; it was not collected")
            continue
        try:
            child = os.open(name, OPEN_NOFOLLOW | (os.O_DIRECTORY if is_dir else 0), dir_fd=fd)
        except OSError as err:
            copied.notes.append(
                f"'{shown}' could not be opened without following a link "
                f"({err.strerror}); it was not collected"
            )
            continue
        try:
            info = os.fstat(child)  # what was opened, not what the name pointed at before
            if stat.S_IFMT(info.st_mode) != stat.S_IFMT(first.st_mode):
                copied.notes.append(f"'{shown}' changed while it was collected; not collected")
                continue
            if reason := owner_refusal(info.st_uid, student):
                copied.notes.append(f"'{shown}' was not collected: {reason}")
                continue
            copied.ctime = max(copied.ctime, info.st_ctime)
            target = os.path.join(dest, name)
            if is_dir:
                if depth >= MAX_DEPTH:
                    copied.notes.append(f"'{shown}' is nested too deep; it was not collected")
                    continue
                os.mkdir(target, 0o755)
                _copy_folder(
                    child, target, os.path.join(rel, name), student, rules, copied, depth + 1
                )
            elif reason := _copy_file(child, info, target, rules.max_bytes):
                copied.notes.append(f"'{shown}' {reason}; it was not collected")
            copied.ctime = max(copied.ctime, os.fstat(child).st_ctime)  # changed while copied
        finally:
            os.close(child)


def _copy_file(fd: int, info: os.stat_result, target: str, limit: int) -> str | None:
    if info.st_size > limit:
        return intake.over_limit(info.st_size, limit)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    size = 0
    with os.fdopen(out, "wb") as fh:
        while chunk := os.read(fd, CHUNK):
            size += len(chunk)
            if size > limit:  # grew after fstat
                fh.close()
                os.unlink(target)
                return intake.over_limit(None, limit)
            fh.write(chunk)
    os.chmod(target, 0o644)
    return None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link (links are not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    return "a device or special file, not a file"


def utc(seconds: float) -> datetime:
    """Epoch seconds as nbgrader's naive UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def decide_timestamp(claim: str | None, observed: datetime) -> tuple[datetime, str | None]:
    """The submission time nbgrader records, and the note when the claim was not used."""
    when = observed.strftime(NBGRADER_TIME)
    if claim is None:
        return observed, (
            f"the submission had no timestamp.txt; the time the grader saw it last change "
            f"({when}) was used for lateness"
        )
    try:
        claimed = parse_utc(claim.strip())
    except (ValueError, OverflowError, TypeError):
        return observed, (
            f"the submission's timestamp ({printable(claim.strip()[:40])!r}) could not "
            f"be read; the time the grader saw it last change ({when}) was used for lateness"
        )
    if claimed < observed - SLACK:
        return observed, (
            f"the submission's timestamp ({claimed.strftime(NBGRADER_TIME)}) is earlier than "
            f"the time the grader saw it last change ({when}); the later time was used for "
            f"lateness"
        )
    return claimed, None


class StrictCollect(ExchangeCollect):
    def init_src(self):
        # Owners are checked here, on what is opened (`copy_entry`); nbgrader's own check
        # follows links and stops the whole collect when an entry vanishes meanwhile.
        self.check_owner = False
        super().init_src()
        kept = []
        for record in self.src_records:
            reason = self.refusal(record)
            if reason:
                self.log.error("Not collected: %s: %s", record["filename"], reason)
            else:
                kept.append(record)
        if len(kept) < len(self.src_records):
            # A refused entry must not hide the student's own, earlier, valid one.
            refused = {r["filename"] for r in self.src_records} - {r["filename"] for r in kept}
            self.src_records = kept + self.fallbacks(refused, {r["username"] for r in kept})

    def refusal(self, record: dict) -> str | None:
        """A first look at the entry's name (checked again on the opened entry when copied)."""
        try:
            info = os.lstat(os.path.join(self.inbound_path, record["filename"]))
        except OSError as err:
            return f"the entry could not be read ({err.strerror})"
        if not stat.S_ISDIR(info.st_mode):
            return "the entry is a link or not a folder"
        return owner_refusal(info.st_uid, record["username"])

    def fallbacks(self, refused: set[str], collected: set[str]) -> list[dict]:
        """Each student's newest acceptable entry when their newest one was refused."""
        pattern = os.path.join(self.inbound_path, f"*+{self.coursedir.assignment_id}+*")
        records = [self._path_to_record(f) for f in glob.glob(pattern)]
        best: dict[str, dict] = {}
        for record in self._sort_by_timestamp(records):
            name = record["username"]
            if name in collected or name in best or record["filename"] in refused:
                continue
            if self.refusal(record) is None:
                best[name] = record
        return list(best.values())

    def do_copy(self, src, dest, log=None):
        """Copy one entry to `dest` (absent when refused), decide its timestamp, keep a record."""
        entry = os.path.basename(src)
        student = self._path_to_record(src)["username"]
        assignment = self.coursedir.assignment_id
        rules = Rules(
            list(self.coursedir.ignore),
            list(self.coursedir.include),
            int(1000 * self.coursedir.max_file_size),
        )
        first_seen = utc(datetime.now(UTC).timestamp())
        work = tempfile.mkdtemp(prefix=".collect-", dir=os.path.dirname(dest))
        try:
            copied = copy_entry(src, os.path.join(work, "entry"), student, rules)
        except Refused as err:
            shutil.rmtree(work, ignore_errors=True)
            self.log.error("Not collected: %s: %s", entry, err)
            return
        except Exception:
            shutil.rmtree(work, ignore_errors=True)
            raise
        copy = Path(work) / "entry"
        claim_file = copy / intake.TIMESTAMP
        claim = claim_file.read_text(errors="replace") if claim_file.is_file() else None
        course = Course(Path(self.coursedir.root).resolve())
        record = intake.load_record(course, assignment)
        seen = record["entries"].setdefault(entry, {"first_seen": first_seen.isoformat()})
        seen["ctime"] = utc(copied.ctime).isoformat()
        used, late_note = decide_timestamp(claim, utc(copied.ctime))
        notes = copied.notes + ([late_note] if late_note else [])
        timestamp = used.strftime(NBGRADER_TIME)
        claim_file.write_text(timestamp)
        if os.path.lexists(dest):
            shutil.rmtree(dest)
        os.replace(copy, dest)
        os.rmdir(work)
        record["students"][student] = {
            "entry": entry,
            "claimed": claim.strip()[:100] if claim is not None else None,
            "first_seen": seen["first_seen"],
            "ctime": seen["ctime"],
            "timestamp": timestamp,
            "notes": notes,
        }
        intake.save_record(course, assignment, record)
        for note in notes:
            self.log.warning("%s (%s): %s", student, entry, note)
