"""The SQLite results store: schema and file checks, runs and iterations, drivers that die, sweep locks."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vaegmm.model.config import preset
from vaegmm.store import APP_ID, SCHEMA_VERSION, RunStore, StoreError, config_hash, default_db_path, run_key

ROOT = Path(__file__).resolve().parents[1]


def cfg(**changes):
    return preset("quick-demo").replace(data__n=200, vae__epochs=2, iterations=2, **changes)


def test_tests_never_write_the_home_cache(session_db):
    assert default_db_path() == session_db and str(session_db).startswith(os.path.dirname(str(session_db)))
    assert ".cache" not in str(session_db)


def test_new_store_is_wal_with_schema_and_app_id(tmp_path):
    path = tmp_path / "sub" / "runs.db"
    with RunStore(path) as s:
        assert s.path == path
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["app_id"] == APP_ID and meta["schema"] == str(SCHEMA_VERSION)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sweeps", "runs", "sweep_runs", "iterations", "drivers"} <= tables
    conn.close()
    RunStore(path).close()  # reopens


def test_config_hash_ignores_seed_and_device_only():
    a = cfg()
    assert config_hash(a) == config_hash(a.replace(seed=7)) == config_hash(a.replace(vae__device="cpu"))
    assert config_hash(a) != config_hash(a.replace(vae__alpha=2.0))
    assert config_hash(a) == config_hash(a.to_dict())
    assert run_key(a, 3) == f"{config_hash(a)}-3"


def test_live_run_api_for_the_dashboard(tmp_path):
    with RunStore(tmp_path / "r.db") as s:
        rid = s.begin_run(cfg(), 4, "dashboard", label="#1 demo", preset="quick-demo", export_dir="/tmp/x")
        s.add_iteration(rid, {"iteration": 0, "accuracy": 0.1, "nmi": 0.0, "ari": 0.0, "seconds_vae": 0.0,
                              "seconds_gmm": 0.01, "class_counts": [100, 100]})
        s.add_iteration(rid, {"iteration": 1, "accuracy": 0.5, "nmi": 0.4, "ari": 0.3, "seconds_vae": 1.0,
                              "seconds_gmm": 0.02})
        run = s.get_run(rid)
        assert run["status"] == "running" and run["source"] == "dashboard" and run["seed"] == 4
        assert run["config"]["seed"] == 4 and run["export_dir"] == "/tmp/x" and run["label"] == "#1 demo"
        s.finish_run(rid, "stopped", "stopped by the user", seconds=1.5)
        run = s.get_run(rid)
        assert (run["status"], run["message"], run["seconds"]) == ("stopped", "stopped by the user", 1.5)
        df = s.iterations([rid], extra=True)
        assert list(df["iteration"]) == [0, 1] and list(df["accuracy"]) == [0.1, 0.5]
        assert df["extra"][0]["class_counts"] == [100, 100]
        assert [r["id"] for r in s.list_runs(source="dashboard", status="stopped")] == [rid]
        assert s.list_runs(source="cli") == [] and s.get_run(999) is None
        with pytest.raises(ValueError, match="source"):
            s.begin_run(cfg(), 0, "notebook")
        with pytest.raises(ValueError, match="ends as"):
            s.finish_run(rid, "running")


def _bytes_and_mtime(p: Path):
    return p.read_bytes(), p.stat().st_mtime_ns


@pytest.mark.parametrize("kind", ["garbage", "foreign", "newer", "truncated"])
def test_corrupt_or_foreign_files_are_refused_and_left_untouched(tmp_path, kind):
    p = tmp_path / "x.db"
    if kind == "garbage":
        p.write_bytes(b"this is not a database at all" * 40)
    elif kind == "foreign":
        c = sqlite3.connect(p)
        c.execute("CREATE TABLE notes (t TEXT)")
        c.execute("INSERT INTO notes VALUES ('keep me')")
        c.commit()
        c.close()
    elif kind == "newer":
        RunStore(p).close()
        c = sqlite3.connect(p)
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        c.commit()
        c.close()
    else:
        RunStore(p).close()
        data = p.read_bytes()
        p.write_bytes(data[:100] + b"\xff" * 3000)  # a valid header, then rubbish
    before = _bytes_and_mtime(p)
    with pytest.raises(StoreError) as e:
        RunStore(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    assert {"garbage": "not a SQLite database", "foreign": "another program", "newer": "newer vaegmm",
            "truncated": str(p)}[kind] in msg
    assert _bytes_and_mtime(p) == before
    assert not Path(f"{p}-wal").exists() or kind in ("newer",)


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod 555 does not stop root, so as root use /sys (read-only)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys")
    try:
        open(folder / "vaegmm-probe.db", "ab").close()
    except OSError:
        return folder
    pytest.skip("no read-only folder available")


def test_read_only_folder_gives_one_line(tmp_path):
    folder = _read_only_folder(tmp_path)
    before = sorted(os.listdir(folder))
    for path in (folder / "runs.db", folder / "sub" / "runs.db"):
        with pytest.raises(StoreError) as e:
            RunStore(path)
        msg = str(e.value)
        assert "\n" not in msg and "cannot create the results store" in msg and "read-only" in msg, msg
    assert sorted(os.listdir(folder)) == before


def test_readonly_open_reads_but_does_not_write(tmp_path):
    p = tmp_path / "r.db"
    with RunStore(p) as s:
        s.begin_run(cfg(), 0, "cli")
    with RunStore(p, readonly=True) as r:
        assert len(r.list_runs()) == 1
        with pytest.raises(StoreError, match="read-only"):
            r.begin_run(cfg(), 1, "cli")
    with pytest.raises(StoreError, match="no results store"):
        RunStore(tmp_path / "missing.db", readonly=True)


DIE = textwrap.dedent("""
    import os, sys
    from vaegmm.model.config import preset
    from vaegmm.store import RunStore
    s = RunStore(sys.argv[1])
    cfg = preset("quick-demo").replace(data__n=200)
    print(s.begin_run(cfg, 0, "dashboard"), flush=True)
    os._exit(0)  # dies without closing anything, as a killed server would
    """)


def test_runs_of_a_dead_driver_become_interrupted_live_ones_stay(tmp_path):
    p = tmp_path / "r.db"
    out = subprocess.run([sys.executable, "-c", DIE, str(p)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    dead_id = int(out.stdout.strip())
    live = RunStore(p)
    live_id = live.begin_run(cfg(), 1, "dashboard")
    other = RunStore(p)
    assert other.recover() == 1
    assert other.get_run(dead_id)["status"] == "interrupted"
    assert "ended" in other.get_run(dead_id)["message"]
    assert other.get_run(live_id)["status"] == "running"  # its driver (this process, another store) lives
    assert other.recover() == 0
    live.close()  # a clean close releases the driver lock: its leftover running run is now orphaned
    assert other.recover() == 1 and other.get_run(live_id)["status"] == "interrupted"
    other.close()


def test_one_driver_per_sweep_and_claims(tmp_path):
    p = tmp_path / "r.db"
    a, b = RunStore(p), RunStore(p)
    sid = a.create_sweep("s", {"x": 1})
    assert b.create_sweep("s", {"x": 1}) == sid  # the same spec: the same sweep
    with pytest.raises(StoreError, match="other settings"):
        b.create_sweep("s", {"x": 2})
    lock = a.lock_sweep(sid, "s")
    with pytest.raises(StoreError, match="already running in pid"):
        b.lock_sweep(sid, "s")
    assert b.get_sweep("s")["status"] == "running"
    lock.release()
    assert b.get_sweep("s")["status"] == "interrupted"  # no driver holds it: it can be resumed
    b.lock_sweep(sid, "s").release()

    c = cfg()
    what, rid = a.claim_run(sid, "all", c, 5)
    assert what == "new" and a.get_run(rid)["status"] == "running"
    assert b.claim_run(sid, "all", c, 5) == ("busy", rid)  # a live driver trains it
    a.record_result(rid, {"status": "finished", "seconds": 1.0, "iterations": [
        {"iteration": 0, "accuracy": 0.1}, {"iteration": 1, "accuracy": 0.6}], "host": "h", "pid": 1})
    assert b.claim_run(sid, "all", c, 5) == ("reuse", rid)
    dash = a.begin_run(c, 6, "dashboard")  # a finished live run of the same config serves a sweep too
    a.finish_run(dash, "finished")
    assert b.claim_run(sid, "all", c.replace(seed=99), 6) == ("reuse", dash)
    assert [r["run_id"] for r in b.sweep_runs(sid)] == [rid, dash]
    a.close(), b.close()


def test_claim_decision_is_the_sweeps_rule():
    from vaegmm.store.sweeps import BUSY, NEW, REUSE, claim_decision

    assert claim_decision(finished_run=3, trained_elsewhere=None) == REUSE == "reuse"
    assert claim_decision(finished_run=3, trained_elsewhere=4) == REUSE  # a finished run wins over a live one
    assert claim_decision(finished_run=None, trained_elsewhere=4) == BUSY == "busy"
    assert claim_decision(finished_run=None, trained_elsewhere=None) == NEW == "new"


def test_a_failed_write_rolls_back_and_sqlite_errors_become_store_errors(tmp_path):
    with RunStore(tmp_path / "r.db") as s:
        with pytest.raises(RuntimeError):
            with s.db.transaction() as conn:
                conn.execute("INSERT INTO sweeps (name, spec, created, status) VALUES ('x', '{}', 0, 'running')")
                raise RuntimeError("boom")
        assert s.list_sweeps() == []
        with pytest.raises(StoreError, match="cannot write"):
            with s.db.transaction() as conn:  # the status CHECK constraint refuses it
                conn.execute("INSERT INTO sweeps (name, spec, created, status) VALUES ('y', '{}', 0, 'bogus')")
        assert s.list_sweeps() == []
        sid = s.create_sweep("z", {})  # the store still writes after both
        assert [w["id"] for w in s.list_sweeps()] == [sid]
    with pytest.raises(StoreError, match="closed"):
        s.list_runs()


def test_a_schema_1_store_opens_read_only_as_it_is_and_is_migrated_when_written(tmp_path):
    """Issue 25 added the held-out columns (schema 2): an older store reads back with NULL held-out metrics, and
    opening it for writing adds the columns in one transaction, keeping every row."""
    from vaegmm.store.schema import SCHEMA

    p = tmp_path / "old.db"
    old_schema = SCHEMA.replace("    heldout_accuracy REAL, heldout_nmi REAL,  -- recognition of the held-out images "
                                "(schema 2)\n", "")
    assert old_schema != SCHEMA
    c = sqlite3.connect(p)
    c.execute("PRAGMA journal_mode = WAL")
    c.executescript(old_schema + "PRAGMA user_version = 1;")
    c.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [("app_id", APP_ID), ("schema", "1")])
    c.execute("INSERT INTO runs (key, config, config_hash, seed, source, status, created) "
              "VALUES ('k-0', '{}', 'k', 0, 'cli', 'finished', 0)")
    c.execute("INSERT INTO iterations (run_id, iteration, accuracy, nmi) VALUES (1, 0, 0.5, 0.4)")
    c.commit()
    c.close()
    with RunStore(p, readonly=True) as s:
        df = s.iterations([1])
        assert df["accuracy"].tolist() == [0.5] and df["heldout_accuracy"].tolist() == [None]
    with sqlite3.connect(p) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1  # reading changed nothing
    with RunStore(p) as s:
        s.add_iteration(1, {"iteration": 1, "accuracy": 0.6, "heldout_accuracy": 0.55, "heldout_nmi": 0.5})
        df = s.iterations([1])
        assert df["accuracy"].tolist() == [0.5, 0.6] and df["heldout_accuracy"].tolist()[1] == 0.55
    with sqlite3.connect(p) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert dict(c.execute("SELECT key, value FROM meta").fetchall())["schema"] == "2"
