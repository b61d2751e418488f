"""bench/quality.py --quick runs end to end, so the benchmark cannot rot (a smoke test, not a benchmark)."""
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def test_quality_quick_runs_and_writes_only_its_section(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Speed\n\nspeed table stays\n\n## Quality\n\nold quality text\n")
    results = tmp_path / "runs.jsonl"
    t0, cpu0 = time.perf_counter(), _child_cpu()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), "--quick", "--results", str(results),
                          "--db", str(tmp_path / "quality.db"),
                          "--markdown", str(md)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    # about 5 s on an idle 2-core machine; CPU time, not wall time, so that a busy shared machine does not fail it
    assert _child_cpu() - cpu0 < 30, f"--quick took {_child_cpu() - cpu0:.1f} s of CPU ({time.perf_counter() - t0:.1f} s wall)"
    runs = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(runs) == 8  # 4 variants x 2 seeds
    assert {r["label"] for r in runs} == {"default", "no-feedback", "serket", "alpha0"}
    for r in runs:
        assert len(r["accuracy"]) == 3 and all(0.0 <= a <= 1.0 for a in r["accuracy"])  # iterations 0..2
    text = md.read_text()
    assert "speed table stays" in text and "old quality text" not in text
    assert text.index("## Speed") < text.index("## Quality")
    assert "python bench/quality.py --quick" in text and "| iteration | accuracy | NMI | ARI |" in text
    # one number: the default variant's final accuracy in the summary is the mean of its runs' last accuracies
    last = [r["accuracy"][-1] for r in runs if r["label"] == "default"]
    row = next(line for line in text.splitlines() if line.startswith("| (a) project default"))
    assert row.split("|")[4].strip().startswith(f"{statistics.mean(last):.3f} ± "), row
