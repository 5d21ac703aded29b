"""What a grading run may keep of a kernel's messages, counted before anything is kept.

`SandboxedExecute` asks an `OutputBudget` before it keeps any part of a kernel message in the
notebook it grades: a new output, an error, a display update that rewrites earlier outputs.
Bytes are counted as the notebook's JSON would hold them (UTF-8 text, one line of the file
per line of text, plus the keys and brackets around it; `footprint`), never by serialising.
Cleared outputs give their bytes back, so what the ledger holds is what the notebook holds.

Three limits apply at once: one output, one cell, one notebook. The cells a student wrote share
the notebook's budget less one cell's worth, kept for the course's own (locked) cells, whose
tests record what the grader decides from: a flood in an answer cell never starves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OUTPUT_OVERHEAD = 100  # an output's JSON beyond its strings: its keys, brackets, indentation
ITEM_OVERHEAD = 8  # a key, list item or number: quotes, commas, digits
LINE_OVERHEAD = 10  # nbformat writes text one JSON string per line, indented


def footprint(value: Any) -> int:
    """Bytes `value` takes in a notebook's JSON, without serialising it (no copy of it is made
    for ASCII text, the usual case)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass"))
            total += LINE_OVERHEAD * item.count("\n")
        elif isinstance(item, dict):
            total += ITEM_OVERHEAD * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += ITEM_OVERHEAD * len(item)
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            total += len(item)
        else:
            total += ITEM_OVERHEAD
    return total


def output_size(output: Any) -> int:
    """What one output (or the message content it comes from) takes in the notebook."""
    return footprint(output) + OUTPUT_OVERHEAD


@dataclass
class OutputBudget:
    output: int  # bytes, one output
    cell: int  # bytes, one cell's outputs together
    notebook: int  # bytes, the whole notebook's outputs
    kept: dict[int, int] = field(default_factory=dict)  # cell index -> bytes kept there
    total: int = 0

    def fits(self, changes: dict[int, int], largest: int, course_cell: bool) -> bool:
        """Whether adding `changes` (cell index -> bytes, negative for less) keeps every
        limit, `largest` being the largest single output it leaves. The cells a student wrote
        leave one cell's budget of the notebook's to the course's own cells."""
        notebook = self.notebook if course_cell else self.notebook - self.cell
        return (
            largest <= self.output
            and all(self.kept.get(i, 0) + n <= self.cell for i, n in changes.items() if n > 0)
            and self.total + sum(changes.values()) <= max(0, notebook)
        )

    def charge(self, cell_index: int, size: int) -> None:
        """`size` bytes kept in the cell (negative: given back)."""
        self.kept[cell_index] = max(0, self.kept.get(cell_index, 0) + size)
        self.total = max(0, self.total + size)
