"""What one student costs on the course's JupyterHub: memory of a worksheet kernel.

For each worksheet: a kernel from the venv's `python3` spec (the one students' servers use),
the worksheet's first code cell (imports and `setup()`), resident memory then; every other
code cell with the reference answers filled in, the kernel's peak resident memory (VmHWM).
Quick mode (DLCOURSE_QUICK=1, as validation and grading run) by default; `--full` as a
student who runs the worksheet in the lab (full data sets, full training). Prints a Markdown
table for benchmarks/README.md.

    .venv/bin/python benchmarks/hub_capacity.py [--full] [WORKSHEET ...]  # quick: 1 min
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import psutil
from jupyter_client.manager import KernelManager

from dlcourse.grader import cells

REPO = Path(__file__).resolve().parent.parent


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(client, code: str) -> None:
    reply = client.execute_interactive(code, timeout=600, store_history=False)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")


def measure(worksheet: str, quick: bool) -> tuple[float, float, float]:
    source = nbformat.read(REPO / "source" / worksheet / f"{worksheet}.ipynb", as_version=4)
    release = nbformat.read(REPO / "release" / worksheet / f"{worksheet}.ipynb", as_version=4)
    nb = cells.answered(release, cells.reference_answers(source))
    code = [c.source for c in nb.cells if c.cell_type == "code" and not cells.is_test(c)]
    km = KernelManager(kernel_name="python3")
    env = os.environ | {"DLCOURSE_QUICK": "1" if quick else "0"}
    km.start_kernel(cwd=str(REPO / "release" / worksheet), env=env)
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        pid = km.provisioner.process.pid
        start = time.monotonic()
        run(client, code[0])
        imports = psutil.Process(pid).memory_info().rss / 2**20
        for cell in code[1:]:
            run(client, cell)
        return imports, vm_hwm_mb(pid), time.monotonic() - start
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def main(args: list[str]) -> int:
    quick = "--full" not in args
    names = [a for a in args if a != "--full"]
    names = names or sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())
    print("| worksheet | resident after imports | peak resident (all cells) | run time |")
    print("|---|---|---|---|")
    for name in names:
        imports, peak, seconds = measure(name, quick)
        print(f"| {name} | {imports:,.0f} MB | {peak:,.0f} MB | {seconds:.0f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
