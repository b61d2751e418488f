"""One vocabulary for a run's settings: the dashboard's sidebar, its URL, the sweep grid, the CLI's ``--grid`` and
the flags of ``python -m vaegmm run`` (built from :data:`FIELDS` in :mod:`vaegmm.cli`).

A *settings* dict is flat: ``{"preset": ..., "n": 3000, "digits": [0, ..., 9], "k": 10, "latent": 18, "alpha":
1.0, ...}``. Its keys are the dashboard's widget keys and URL query parameters. This module (pure Python, no
Streamlit) turns settings into a :class:`~vaegmm.model.config.RunConfig` and back, formats and parses single values
(``alpha=0.5``, ``digits=0123``, ``feedback=off``) with their limits, and reads a query string with one warning
per ignored parameter. The pages, the CLI and the sweeps import it from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from vaegmm.model.config import CODE_KINDS, GMM_BACKENDS, PRECISIONS, RunConfig, preset
from vaegmm.model.data import BUNDLED_PER_DIGIT, per_digit_counts

DEFAULT_PRESET = "quick-demo"
PRESET_LABELS = {"quick-demo": "Quick demo", "serket-classic": "Serket classic",
                 "project-default": "Project default (best measured)", "no-feedback": "No feedback baseline",
                 "feedback-lesson": "Feedback lesson (with vs without)"}
GMM_LABELS = {"collapsed": "Collapsed Gibbs (Serket)", "gibbs": "Blocked Gibbs", "em": "EM"}
MAX_IMAGES = 70000  # the full MNIST; the bundled copy holds 500 per digit
MNIST_MIN_PER_DIGIT = 6313  # the rarest digit (5) in the 70 000 MNIST images


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str  # "int", "float", "choice", "digits", "bool"
    lo: Optional[float] = None
    hi: Optional[float] = None
    choices: tuple = ()
    help: str = ""
    path: str = ""  # the RunConfig.replace key this field sets, e.g. "vae__alpha"


FIELDS: dict[str, Field] = {f.key: f for f in (
    Field("n", "MNIST images", "int", 10, MAX_IMAGES,
          help="Class-balanced subset. Up to 500 per digit come with the app; more are downloaded from OpenML "
               "once (or read from $VAEGMM_MNIST_DIR).", path="data__n"),
    Field("digits", "Digits", "digits", help="Which digits to include.", path="data__digits"),
    Field("k", "K (GMM classes)", "int", 1, 50, help="Number of mixture components; follows the number of digits.",
          path="gmm__n_classes"),
    Field("latent", "Latent dimension D", "int", 2, 64, help="Size of the code z.", path="vae__latent_dim"),
    Field("alpha", "alpha (KL weight)", "float", 0.0, 10.0,
          help="Weight of KL(q(z|o) || N(mu_c, I)): how strongly the GMM's class means pull the codes.",
          path="vae__alpha"),
    Field("iterations", "Mutual iterations", "int", 1, 50, help="VAE update, then GMM update, this many times.",
          path="iterations"),
    Field("epochs", "VAE epochs per iteration", "int", 1, 1000, path="vae__epochs"),
    Field("batch", "Batch size", "int", 1, 10000, path="vae__batch_size"),
    Field("gmm", "GMM backend", "choice", choices=GMM_BACKENDS,
          help="Collapsed Gibbs: Serket's own sampler (one point at a time); Blocked Gibbs: the same Bayesian GMM, "
               "all points at once, empty classes can come back; EM: scikit-learn's GaussianMixture.",
          path="gmm__backend"),
    Field("codes", "Codes sent to the GMM", "choice", choices=CODE_KINDS,
          help="The encoder's mean, or one sample of q(z|o) as in Serket.", path="codes"),
    Field("feedback", "Feedback (GMM -> VAE)", "bool",
          help="Off: the prior stays N(0, I), a VAE and a GMM trained apart (the baseline).", path="feedback"),
    Field("seed", "Seed", "int", 0, 2**31 - 1, path="seed"),
    Field("precision", "Matrix precision", "choice", choices=PRECISIONS,
          help="The VAE's matrix multiplies. fp32: exact (reproduces earlier numbers). bf16: mixed precision "
               "(float32 master weights), about 2x faster on CPUs with AVX512-BF16 or AMX, many times slower on "
               "others (emulated). auto: bf16 where the CPU or GPU multiplies it natively, else fp32.",
          path="vae__precision"),
)}
KEYS = ("preset",) + tuple(FIELDS)


def settings_from_config(cfg: RunConfig, preset_name: str = DEFAULT_PRESET) -> dict:
    """The widget values that describe ``cfg``."""
    return {"preset": preset_name, "n": cfg.data.n, "digits": list(cfg.data.digits), "k": cfg.gmm.n_classes,
            "latent": cfg.vae.latent_dim, "alpha": float(cfg.vae.alpha), "iterations": cfg.iterations,
            "epochs": cfg.vae.epochs, "batch": cfg.vae.batch_size, "gmm": cfg.gmm.backend, "codes": cfg.codes,
            "feedback": bool(cfg.feedback), "seed": cfg.seed, "precision": cfg.vae.precision}


def preset_settings(name: str) -> dict:
    return settings_from_config(preset(name), name)


def default_settings() -> dict:
    return preset_settings(DEFAULT_PRESET)


def _typed(key: str, value: Any) -> Any:
    """A field's value as the type RunConfig wants (digits sorted into a tuple)."""
    kind = FIELDS[key].kind
    if kind == "digits":
        return tuple(sorted(int(d) for d in value))
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def apply_settings(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """``cfg`` with some fields changed, by their URL names (``{"alpha": 0.5, "feedback": False}``); not
    validated. Unknown names raise ``ValueError``. Other parts of ``cfg`` (EM restarts, covariance floor...) stay."""
    unknown = [k for k in changes if k not in FIELDS]
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; choose from {', '.join(FIELDS)}")
    if not changes:
        return cfg
    return cfg.replace(**{FIELDS[k].path: _typed(k, v) for k, v in changes.items()})


def config_from_settings(s: Mapping[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig`; raises ``ValueError`` with a message for the page."""
    if not list(s["digits"]):
        raise ValueError("choose at least one digit")
    base = preset(s.get("preset") or DEFAULT_PRESET)
    return apply_settings(base, {k: s[k] for k in FIELDS}).validate()


def _per_digit(s: Mapping[str, Any]) -> int:
    """Images the most-asked digit needs (the loader's own balanced split)."""
    return max(per_digit_counts(int(s["n"]), s["digits"]).values())


def check_settings(s: Mapping[str, Any]) -> list[str]:
    """Problems the widgets cannot prevent, as messages (empty when the settings can run)."""
    problems = []
    if not s["digits"]:
        return ["Choose at least one digit."]
    if int(s["k"]) > int(s["n"]):
        problems.append(f"K = {s['k']} classes is more than the {s['n']} images.")
    per_digit = _per_digit(s)
    if per_digit > MNIST_MIN_PER_DIGIT:
        problems.append(f"{s['n']} images over {len(s['digits'])} digits needs {per_digit} per digit, but MNIST "
                        f"holds only {MNIST_MIN_PER_DIGIT} of its rarest digit: choose at most "
                        f"{MNIST_MIN_PER_DIGIT * len(s['digits'])} images for these digits.")
    if not problems:
        try:
            config_from_settings(s)
        except ValueError as e:
            problems.append(str(e))
    return problems


def data_note(s: Mapping[str, Any]) -> Optional[str]:
    """A hint when the settings need more images than the bundled copy holds."""
    if not s["digits"]:
        return None
    per_digit = _per_digit(s)
    if per_digit > BUNDLED_PER_DIGIT:
        return (f"{per_digit} images per digit is more than the {BUNDLED_PER_DIGIT} bundled with the app: the full "
                "MNIST is downloaded from OpenML once (or read from $VAEGMM_MNIST_DIR).")
    return None


# ---------------------------------------------------------------------------------------------- values
def format_value(key: str, value: Any) -> str:
    """A field's value as it is written in a link or a grid: ``0123``, ``on``, ``0.5``, ``em``."""
    f = FIELDS[key]
    if f.kind == "digits":
        return "".join(str(int(d)) for d in sorted(value))
    if f.kind == "bool":
        return "on" if value else "off"
    if f.kind == "float":
        return f"{float(value):g}"
    return str(value)


def parse_value(f: Field, raw: str) -> Any:
    """One value of field ``f`` from its text; ``ValueError`` when it is malformed or outside the field's limits."""
    text = str(raw).strip()
    if f.kind == "int":
        v = int(text)
    elif f.kind == "float":
        v = float(text)
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError
    elif f.kind == "choice":
        if text.lower() not in f.choices:
            raise ValueError
        return text.lower()
    elif f.kind == "bool":
        t = text.lower()
        if t in ("on", "1", "true", "yes"):
            return True
        if t in ("off", "0", "false", "no"):
            return False
        raise ValueError
    elif f.kind == "digits":
        chars = [c for c in text if c not in ", "]
        if not chars or any(not c.isdigit() for c in chars) or len(set(chars)) != len(chars):
            raise ValueError
        return sorted(int(c) for c in chars)
    else:  # pragma: no cover
        raise ValueError
    if (f.lo is not None and v < f.lo) or (f.hi is not None and v > f.hi):
        raise ValueError
    return v


def expected(f: Field) -> str:
    """What a field accepts, for error messages."""
    if f.kind == "int":
        return f"an integer from {int(f.lo)} to {int(f.hi)}"
    if f.kind == "float":
        return f"a number from {f.lo:g} to {f.hi:g}"
    if f.kind == "choice":
        return " or ".join(f.choices)
    if f.kind == "bool":
        return "on or off"
    return "distinct digits 0-9, e.g. 0123"


def parse_values(key: str, text: str) -> list:
    """The values of one grid axis, ``"0.5,1,2"`` -> ``[0.5, 1.0, 2.0]`` (``digits=0123,01``: two digit sets).
    ``ValueError`` naming the axis and the bad value: an unknown name, a value outside the field's limits, an
    empty or repeated value."""
    key = key.strip()
    f = FIELDS.get(key)
    if f is None:
        raise ValueError(f"unknown axis {key!r}; choose from {', '.join(k for k in FIELDS if k != 'seed')}")
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError(f"axis {key!r} has no values")
    out, seen = [], set()
    for part in parts:
        if not part:
            raise ValueError(f"axis {key!r}: empty value in {text!r}")
        try:
            v = parse_value(f, part)
        except (ValueError, TypeError):
            raise ValueError(f"axis {key}={part!r}: expected {expected(f)}") from None
        tag = format_value(key, v)
        if tag in seen:
            raise ValueError(f"axis {key!r}: value {tag} appears twice")
        seen.add(tag)
        out.append(v)
    return out


# ---------------------------------------------------------------------------------------------- URL
def to_query(s: Mapping[str, Any]) -> dict[str, str]:
    """The preset plus every field that differs from it: a short link that reopens the same experiment."""
    name = s.get("preset") or DEFAULT_PRESET
    base = preset_settings(name)
    out = {"preset": name}
    for key in FIELDS:
        if format_value(key, s[key]) != format_value(key, base[key]):
            out[key] = format_value(key, s[key])
    return out


def parse_query(params: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Settings from query parameters, and one warning per parameter that was ignored (unknown, out of range or
    of the wrong type). Missing or bad fields fall back to the preset's values."""
    warnings = []

    def first(v):
        return v[-1] if isinstance(v, (list, tuple)) and v else v

    raw = {k: str(first(v)) for k, v in params.items()}
    name = raw.get("preset", DEFAULT_PRESET)
    if name not in PRESET_LABELS:
        warnings.append(f"Ignored preset={name!r} from the link: choose one of {', '.join(PRESET_LABELS)}. "
                        f"Using {DEFAULT_PRESET}.")
        name = DEFAULT_PRESET
    s = preset_settings(name)
    for key, value in raw.items():
        if key == "preset":
            continue
        f = FIELDS.get(key)
        if f is None:
            warnings.append(f"Ignored unknown setting {key!r} in the link.")
            continue
        try:
            s[key] = parse_value(f, value)
        except (ValueError, TypeError):
            warnings.append(f"Ignored {key}={value!r} from the link: expected {expected(f)}. "
                            f"Using the default {format_value(key, s[key])}.")
    if "digits" in raw and "k" not in raw:
        s["k"] = len(s["digits"])  # K follows the digits unless the link sets it
    return s, warnings


def describe(s: Mapping[str, Any]) -> str:
    """One line for lists of runs: the settings that matter most."""
    digits = "all" if len(s["digits"]) == 10 else "".join(map(str, s["digits"]))
    return (f"n={s['n']} digits={digits} K={s['k']} D={s['latent']} alpha={s['alpha']:g} "
            f"{s['iterations']}x{s['epochs']} ep, {s['gmm']}, {s['codes']}, feedback {'on' if s['feedback'] else 'off'}")


def settings_equal(a: Mapping[str, Any], b: Mapping[str, Any], keys: Callable = lambda: FIELDS) -> bool:
    return all(format_value(k, a[k]) == format_value(k, b[k]) for k in keys())
