"""Token authentication of a Ray cluster, from the driver's side (the sweep's ``--ray host:port`` or
``$VAEGMM_RAY_ADDRESS``). No ``ray`` import in here.

How Ray 2.60 does it (docs.ray.io "Ray token authentication"; ``ray/_private/worker.py`` and
``authentication_token_setup.py`` of the pinned wheel): with ``RAY_AUTH_MODE=token`` a process sends its token
with every request, taken from ``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token`` (the file ``ray get-auth-token --generate`` and a local ``ray.init()`` write).
``ray start --head`` turns token mode on by itself whenever a token is at hand, and so does a driver's
``ray.init()`` for a cluster it finds on this machine (``address="auto"``), but a driver given an explicit
``host:port`` does not: it connects without a token, the cluster answers "Unauthenticated: InvalidAuthToken" and
Ray retries for 20 s before "Failed to connect". So for an explicit address we apply Ray's own rule: with
``RAY_AUTH_MODE`` unset and a token at hand, token mode is on (an open cluster accepts a driver's token as well:
checked against ``ray start --head`` without one). Ray reads ``RAY_AUTH_MODE`` once, when it is imported, so this
must run before the process's first ``import ray``.
"""
from __future__ import annotations

import os
from pathlib import Path

from vaegmm.core.env import env_str

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
HELP = "set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the cluster's head node"


def default_token_file() -> Path:
    """``~/.ray/auth_token``: where ``ray start`` and ``ray get-auth-token --generate`` keep the token."""
    return Path.home() / ".ray" / "auth_token"


def token_source() -> str:
    """Where Ray would take this process's token from, in Ray's order: ``"RAY_AUTH_TOKEN"``, the file of
    ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``; ``""`` when there is none."""
    if env_str(TOKEN_ENV):
        return TOKEN_ENV
    path = env_str(TOKEN_PATH_ENV)
    if path:
        return path  # Ray aborts on an unreadable one: let it say so
    return str(default_token_file()) if default_token_file().is_file() else ""


def use_token_when_at_hand() -> bool:
    """Turn Ray's token mode on for this process when ``RAY_AUTH_MODE`` is unset and a token is at hand (see the
    module docstring); call it before the first ``import ray``. True when token mode is (now) on."""
    mode = env_str(MODE_ENV).lower()
    if mode:
        return mode == "token"
    if not token_source():
        return False
    os.environ[MODE_ENV] = "token"
    return True


def is_auth_failure(error: BaseException) -> bool:
    """Whether ``ray.init``'s exception (or one it was raised from) is Ray's authentication error: raised as
    ``ray.exceptions.AuthenticationError``, or carried as text in the last connection error of a
    ``ConnectionError``."""
    seen = error
    while seen is not None:
        if type(seen).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def auth_failure_text(address: str, ray_was_imported: bool) -> str:
    """One line: why the cluster at ``address`` refused this driver and what to set."""
    source = token_source()
    if ray_was_imported and env_str(MODE_ENV).lower() != "token":
        return (f"the Ray cluster at {address} asks for a token: set {MODE_ENV}=token before this program starts "
                f"(Ray reads it when it is imported), and {HELP}")
    if not source:
        return (f"the Ray cluster at {address} asks for a token and this machine has none: {HELP} (or copy that "
                f"node's ~/.ray/auth_token here, or name a copy with {TOKEN_PATH_ENV})")
    return f"the Ray cluster at {address} refused the token from {source}: {HELP}"
