"""A run's identity in the store: its key is ``<config hash>-<seed>``. The hash is a SHA-256 of the canonical JSON
of ``RunConfig.to_dict()`` without ``seed`` (it is in the key on its own) and without ``vae.device`` (where a run
trains does not change the experiment; float rounding differs between machines anyway)."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def to_json(x: Any) -> str:
    """Compact JSON with sorted keys (a stable text for equal values); numpy scalars and arrays and tuples become
    plain numbers and lists."""
    return json.dumps(x, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON-able: {type(x).__name__}")


def config_with_seed(config: Any, seed: int) -> dict:
    """``RunConfig.to_dict()`` (or a dict of it) as JSON-able types with ``seed`` set: what a run row stores."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d = json.loads(to_json(d))
    d["seed"] = int(seed)
    return d


def canonical_config(config: Any) -> dict:
    """``RunConfig.to_dict()`` (or a dict of it) as JSON-able types, without the fields the hash ignores."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d = json.loads(json.dumps(d))  # tuples -> lists, a deep copy
    d.pop("seed", None)
    d.get("vae", {}).pop("device", None)
    return d


def config_hash(config: Any) -> str:
    """SHA-256 (first 20 hex digits) of the canonical JSON of the config, without seed and device."""
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_key(config: Any, seed: int) -> str:
    """``<config hash>-<seed>``: runs with the same key are the same experiment (a sweep reuses a finished one)."""
    return f"{config_hash(config)}-{int(seed)}"
