"""`nbgrader collect` that a student cannot use against another student or the grader.

nbgrader 0.9.6's collect takes every inbound entry by its name: an entry filed under another
student's name replaces that student's work (it only warns that the owner differs), a
submission folder may itself be a symlink, and the copy follows symlinks inside the
submission as the collecting user (root on many servers: `/etc/shadow` lands in
`submitted/`). `StrictCollect` (set in nbgrader_config.py) refuses, with an error in the
log, every entry that is a link or not a folder and every entry owned by a user other than
the student it names (entries owned by the collecting account itself are accepted: that is a
single-user course, as in the demo); inside a submission, links are copied as links, never
followed (grading then refuses them with a note).
"""

from __future__ import annotations

import os
import pwd
import shutil

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.exchange import ignore_patterns


def owner_name(path: str) -> str | None:
    try:
        return pwd.getpwuid(os.lstat(path).st_uid).pw_name
    except KeyError:
        return None


class StrictCollect(ExchangeCollect):
    def init_src(self):
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
        path = os.path.join(self.inbound_path, record["filename"])
        if os.path.islink(path) or not os.path.isdir(path):
            return "the entry is a link or not a folder"
        owner_uid = os.lstat(path).st_uid
        if owner_uid == os.geteuid():
            return None
        owner = owner_name(path)
        if owner != record["username"]:
            return f"filed under {record['username']!r} but owned by {owner or owner_uid!r}"
        return None

    def fallbacks(self, refused: set[str], collected: set[str]) -> list[dict]:
        """Each student's newest acceptable entry when their newest one was refused."""
        import glob

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
        nbgrader_ignore = ignore_patterns(
            exclude=self.coursedir.ignore,
            include=self.coursedir.include,
            max_file_size=self.coursedir.max_file_size,
            log=self.log,
        )

        def ignore(folder: str, names: list[str]) -> set[str]:
            plain = [n for n in names if not os.path.islink(os.path.join(folder, n))]
            return set(nbgrader_ignore(folder, plain))

        shutil.copytree(src, dest, symlinks=True, ignore=ignore)
