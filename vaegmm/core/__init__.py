"""Plumbing with no knowledge of the model: environment variables, atomic writes, threads, process-wide
singletons, the fork server. One of each, low enough that every other layer may use it."""
