"""nbgrader's OverwriteCells without its false "checksum has changed!" warnings.

nbgrader stores a locked cell's checksum computed from the master copy, hidden tests included,
but releases the cell without them (jupyter/nbgrader#1961). So on every untouched submission,
OverwriteCells warns that each test cell with hidden tests "has changed", and an instructor
cannot tell a real edit of a locked cell from nbgrader's own bookkeeping. Here a locked cell
whose source is exactly the released form of the master cell gets its hidden tests back first;
a cell the student did edit still gets nbgrader's warning and is put back by nbgrader.
"""

from __future__ import annotations

import copy

from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

from dlcourse.grader import cells


class OverwriteCellsKnowingHiddenTests(OverwriteCells):
    def preprocess_cell(self, cell, resources, cell_index):
        gid = cells.grade_id(cell)
        if gid:
            try:
                master = self.gradebook.find_source_cell(gid, self.notebook_id, self.assignment_id)
            except MissingEntry:
                master = None  # nbgrader reports it
            if master is not None and master.locked and cell.source == self._released(cell, master):
                cell.source = master.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released(self, cell, master) -> str:
        released = copy.deepcopy(cell)
        released.source = master.source
        ClearHiddenTests(parent=self).preprocess_cell(released, {}, 0)
        return released.source
