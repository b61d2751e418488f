"""bench/sweeps.py --quick runs end to end (local pool, local Ray, driver memory, a tiny headline) and renders its
section, so the benchmark cannot rot (a smoke test, not a benchmark)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vaegmm.store import RunStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.ray
def test_sweeps_quick_renders_the_section(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Speed\n\nspeed stays\n\n## Sweeps\n\nold\n\n## Quality\n\nquality stays\n")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "sweeps.py"), "--quick", "--headline", "--measure",
                          "--state", str(tmp_path / "state.json"), "--db", str(tmp_path / "headline.db"),
                          "--out", str(md)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    text = md.read_text()
    assert "speed stays" in text and "quality stays" in text and "\nold\n" not in text
    for needle in ("**Throughput**", "sweep, local process pool, `--jobs 2`", "local Ray", "**Overhead per run**",
                   "**Ray's start-up**", "**Driver memory**", "**Headline sweep**", "| feedback | alpha |",
                   "at alpha=0.5: feedback=on"):
        assert needle in text, needle
    # one number: every run of the tiny headline (2 feedback x 3 alpha x 2 seeds) finished, and the store agrees
    finished, total = map(int, re.search(r"(\d+) of (\d+) runs finished", text).groups())
    with RunStore(tmp_path / "headline.db") as store:
        stored = [r for r in store.list_runs() if r["status"] == "finished"]
    assert finished == total == 12 == len(stored)
