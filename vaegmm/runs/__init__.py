"""Runs: the one training function, worker processes, snapshots, a run's state machine and the run library."""
