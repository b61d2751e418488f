"""What the results file holds: the tables (SQL), the schema version and the app id that mark the file as ours,
the allowed values of the status and source columns, and the migrations that bring an older file up to date."""
from __future__ import annotations

APP_ID = "vaegmm-runs"
SCHEMA_VERSION = 2
SOURCES = ("sweep", "dashboard", "cli")
RUN_STATES = ("running", "finished", "failed", "stopped", "interrupted")
SWEEP_STATES = ("running", "finished", "stopped", "interrupted", "failed")

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE drivers (
    id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started REAL NOT NULL, lock TEXT NOT NULL);
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN {SWEEP_STATES}), message TEXT NOT NULL DEFAULT '', updated REAL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,                -- config_hash-seed
    config TEXT NOT NULL,             -- RunConfig.to_dict() as JSON, seed included
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    source TEXT NOT NULL CHECK (source IN {SOURCES}),
    label TEXT NOT NULL DEFAULT '',
    preset TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN {RUN_STATES}),
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL, started REAL, finished REAL,
    seconds REAL,                     -- wall seconds of the run
    host TEXT, pid INTEGER,           -- where it trained
    export_dir TEXT,                  -- a folder written by the run (CLI --out, dashboard export), if any
    driver_id INTEGER REFERENCES drivers(id),
    extra TEXT NOT NULL DEFAULT '{{}}'  -- timings (load, cpu), attempts, worker details
);
CREATE INDEX runs_key ON runs(key, status);
CREATE INDEX runs_status ON runs(status);
CREATE TABLE sweep_runs (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id), cell TEXT NOT NULL, seed INTEGER NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(id), PRIMARY KEY (sweep_id, cell, seed));
CREATE INDEX sweep_runs_run ON sweep_runs(run_id);
CREATE TABLE iterations (
    run_id INTEGER NOT NULL REFERENCES runs(id), iteration INTEGER NOT NULL,
    accuracy REAL, nmi REAL, ari REAL, seconds_vae REAL, seconds_gmm REAL,
    extra TEXT NOT NULL DEFAULT '{{}}',  -- class_counts, per-epoch recon / kl
    heldout_accuracy REAL, heldout_nmi REAL,  -- recognition of the held-out images (schema 2)
    PRIMARY KEY (run_id, iteration));
"""

# version -> the SQL that brings a file of the version before it up to that version (run in one transaction).
# Only columns are added, so an older vaegmm's rows stay as they were and read back with NULL in the new columns.
MIGRATIONS = {
    2: "ALTER TABLE iterations ADD COLUMN heldout_accuracy REAL; "
       "ALTER TABLE iterations ADD COLUMN heldout_nmi REAL;",
}
