"""The one way the benchmark scripts write into BENCHMARKS.md: each owns one ``## `` section."""
from __future__ import annotations

from pathlib import Path


def write_section(path: Path, md: str) -> None:
    """Replace the section of ``path`` whose heading is ``md``'s first line (``## Speed``, ``## Quality``...) up
    to the next ``## `` heading with ``md``, or append it when absent; every other section is kept as it is."""
    heading = md.splitlines()[0].rstrip()
    if not heading.startswith("## "):
        raise ValueError(f"md must start with a '## ' heading, got {heading!r}")
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if line.rstrip() == heading or line.startswith(heading + " ")), None)
    block = md.strip("\n") + "\n\n"
    if start is None:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        text = "".join(lines[:start]) + block + "".join(lines[end:])
    path.write_text(text.rstrip("\n") + "\n")
