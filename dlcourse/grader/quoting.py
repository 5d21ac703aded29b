"""A string a student controls (a file name, an exception's name or message, a cell id), made
safe to quote in a grading note: one line, every control, line-break and separator character
escaped as Python writes it (`\\n`, `\\x1b`, `\\u2028`), cut to a length. A forged line in a
name can then never become a line, a bullet or a heading of its own in the notes file, the
feedback page or the report."""

from __future__ import annotations

ELLIPSIS = "…"


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():  # excludes every line break and separator but the plain space
        return ch
    return ch.encode("unicode_escape").decode("ascii")


def printable(text: object, limit: int = 120) -> str:
    """`text` as one escaped line of at most `limit` characters (an escape is never cut)."""
    out: list[str] = []
    length = 0
    for ch in str(text):
        unit = _escaped(ch)
        if length + len(unit) > limit:
            out.append(ELLIPSIS)
            break
        out.append(unit)
        length += len(unit)
    return "".join(out)


def quoted(text: object, limit: int = 120) -> str:
    """`printable(text)` in single quotes, a quote inside it escaped."""
    return "'" + printable(text, limit).replace("'", "\\'") + "'"
