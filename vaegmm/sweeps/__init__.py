"""Sweeps: a grid of settings x seeds, its driver, executors (local pool, Ray) and the statistics."""
