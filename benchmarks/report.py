"""Write one benchmark's results into its own section of ``docs/benchmarks.md``.

Each benchmark owns the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; rerunning it with
``--write`` replaces that section and leaves the others alone (without ``--write`` a benchmark only prints, so a
measurement never changes the tracked document).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

from pipeline.files import atomic_write

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names, run with `--write`.\n"


def machine() -> str:
    """One line naming this machine: CPU model, cores, memory, Python, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
            f"{_dt.date.today().isoformat()}")


def write_section(name: str, markdown: str, doc: Path | None = None) -> None:
    """Replace (or append) the section ``name`` of the benchmarks document (``DOC`` by default) with ``markdown``."""
    doc = doc or DOC
    text = doc.read_text() if doc.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write(doc, text)
