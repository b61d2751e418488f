"""`python -m vaegmm sweep / report`, and `run` recording into the store: bad input is one line and changes
nothing; a tiny sweep prints its summary; resume trains nothing twice."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vaegmm.cli import main
from vaegmm.store import RunStore

TINY = ["--preset", "quick-demo", "--grid", "n=120", "--grid", "epochs=1", "--grid", "iterations=1",
        "--grid", "latent=3", "--grid", "batch=60"]


def _read_only_db() -> str:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs a folder this user cannot write; see test_store for the non-root variant")
    return "/sys/vaegmm-test/runs.db"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaegmm: error: "), err
    return err[0]


@pytest.mark.parametrize("args, fragment", [
    (["--grid", "lr=1,2"], "unknown axis 'lr'"),
    (["--grid", "alpha=0.5,99"], "alpha='99': expected a number from 0 to 10"),
    (["--grid", "k=0,2"], "k='0': expected an integer from 1 to 50"),
    ([], "empty grid"),
    (["--grid", "alpha"], "--grid expects NAME=V1,V2"),
    (["--grid", "alpha=0,1,2,3,4,5,6,7,8,9", "--seeds", "51"], "510 runs, more than the maximum of 500"),
    (["--grid", "alpha=1,2", "--seeds", "3", "--max-runs", "5"], "more than the maximum of 5"),
    (["--grid", "alpha=1,2", "--seeds", "9-3"], "ends before it starts"),
    (["--grid", "alpha=1,2", "--ray", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["--grid", "alpha=1,2", "--gpus-per-run", "1"], "needs Ray"),
    (["--resume", "nosuch"], "no sweep named 'nosuch'"),
])
def test_bad_sweeps_are_one_line_and_store_nothing(tmp_path, capsys, args, fragment):
    db = tmp_path / "runs.db"
    assert main(["sweep", "--db", str(db), *args]) == 2
    assert fragment in one_error_line(capsys)
    if db.exists():
        with RunStore(db, readonly=True) as s:
            assert s.list_runs() == [] and s.list_sweeps() == []


@pytest.mark.parametrize("kind", ["garbage", "foreign", "read-only"])
def test_unusable_databases_are_one_line_and_untouched(tmp_path, capsys, kind):
    db = tmp_path / "x.db"
    if kind == "garbage":
        db.write_bytes(b"\x00\x01 not sqlite" * 100)
    elif kind == "foreign":
        c = sqlite3.connect(db)
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
    else:
        db = Path(_read_only_db())
    before = db.read_bytes() if db.exists() else None
    assert main(["sweep", "--db", str(db), *TINY, "--grid", "alpha=1,2", "--seeds", "1"]) == 2
    line = one_error_line(capsys)
    assert {"garbage": "not a SQLite database", "foreign": "another program", "read-only": "read-only"}[kind] in line
    assert main(["report", "x", "--db", str(db)]) == 2
    one_error_line(capsys)
    assert (db.read_bytes() if db.exists() else None) == before


def test_tiny_sweep_report_compare_csv_and_resume(tmp_path, capsys):
    db = tmp_path / "runs.db"
    args = ["sweep", "--db", str(db), *TINY, "--grid", "feedback=on,off", "--seeds", "7", "8", "--jobs", "2",
            "--name", "fb", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sweep 'fb' (finished): feedback (on, off) x 2 seeds (7, 8) = 4 runs on quick-demo" in out
    assert "runs: 4 finished" in out
    rows = [line for line in out.splitlines() if line.startswith("feedback=")]
    assert [r.split()[0] for r in rows] == ["feedback=on", "feedback=off"] and all(" 2/2 " in r for r in rows)
    assert "- feedback=on " in out and "2 seeds" in out and "95 % CI" in out
    with RunStore(db, readonly=True) as s:
        n = len(s.list_runs())
        assert n == 4 and {r["source"] for r in s.list_runs()} == {"sweep"}

    assert main(["report", "fb", "--db", str(db), "--compare", "feedback=off", "feedback=on",
                 "--csv", str(tmp_path / "fb.csv")]) == 0
    out = capsys.readouterr().out
    assert "feedback=off" in out.splitlines()[-1] and out.count("- ") == 1
    csv = (tmp_path / "fb.csv").read_text().splitlines()
    assert csv[0].startswith("cell,feedback,seed,run_id,status") and len(csv) == 5
    assert main(["report", "--db", str(db)]) == 0
    assert capsys.readouterr().out.startswith("fb  (finished, 4 runs stored")

    # which setting generalises: the held-out metrics are columns of the table and a --metric of the comparison
    assert main(["report", "fb", "--db", str(db), "--metric", "heldout_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "held-out acc" in out.splitlines()[3] and "held-out accuracy (" in out.split("paired comparisons")[1]
    with RunStore(db, readonly=True) as s:
        finals = s.iterations([r["id"] for r in s.list_runs()]).groupby("run_id").tail(1)
        assert finals["heldout_accuracy"].notna().all() and finals["heldout_nmi"].between(0, 1).all()

    assert main(["sweep", "--db", str(db), "--resume", "fb", "--quiet"]) == 0
    assert "runs: 4 finished" in capsys.readouterr().out
    with RunStore(db, readonly=True) as s:
        assert len(s.list_runs()) == n  # nothing trained again


def test_run_is_recorded_in_the_store_unless_told_not_to(tmp_path, capsys):
    db = tmp_path / "runs.db"
    base = ["run", "--n", "120", "--epochs", "1", "--iterations", "1", "--latent-dim", "3", "--batch-size", "60",
            "--quiet", "--db", str(db)]
    assert main(base + ["--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert main(base + ["--out", str(tmp_path / "b"), "--no-store"]) == 0
    capsys.readouterr()
    with RunStore(db, readonly=True) as s:
        runs = s.list_runs()
        assert len(runs) == 1
        r = runs[0]
        assert (r["source"], r["status"], r["seed"]) == ("cli", "finished", 3)
        assert r["export_dir"] == str((tmp_path / "a").resolve()) and r["seconds"] > 0
        assert list(s.iterations([r["id"]])["iteration"]) == [0, 1]


def test_bench_heldout_renders_its_section_from_a_sweep(tmp_path, capsys):
    """bench/heldout.py (issue 25's table) end to end on a tiny sweep named as the benchmark names its sweeps."""
    import subprocess
    import sys

    db = tmp_path / "runs.db"
    assert main(["sweep", "--db", str(db), *TINY, "--seeds", "0-2", "--jobs", "2", "--name", "heldout-quick-demo",
                 "--quiet"]) == 0
    capsys.readouterr()
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Held-out digits\n\nold\n\n## Quality\n\nkept\n")
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "bench" / "heldout.py"), "--db", str(db), "--write", str(md)],
                       capture_output=True, text=True, timeout=120, cwd=root)
    assert p.returncode == 0, p.stderr[-2000:]
    text = md.read_text()
    assert "\nold\n" not in text and "## Quality\n\nkept" in text
    row = next(line for line in text.splitlines() if line.startswith("| quick-demo |"))
    with RunStore(db, readonly=True) as s:
        finals = s.iterations([r["id"] for r in s.list_runs()]).groupby("run_id").tail(1)
    assert f"| {finals['heldout_accuracy'].mean():.3f} ± " in row and row.split(" | ")[1] == "3 (0-2)"
