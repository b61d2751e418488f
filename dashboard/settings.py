"""The sidebar's settings as a flat dict, their limits, and their round trip through the URL's query string.

Pure Python (no Streamlit): the page reads widgets into a ``settings`` dict, and this module turns it into a
:class:`~vaegmm.config.RunConfig`, into query parameters, and back. Keys are the widget keys without the
``cfg_`` prefix and the query-parameter names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from vaegmm.config import GMM_BACKENDS, RunConfig, preset
from vaegmm.data import BUNDLED_PER_DIGIT, per_digit_counts

DEFAULT_PRESET = "quick-demo"
PRESET_LABELS = {"quick-demo": "Quick demo", "serket-classic": "Serket classic",
                 "project-default": "Project default (best measured)", "no-feedback": "No feedback baseline"}
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


FIELDS: dict[str, Field] = {f.key: f for f in (
    Field("n", "MNIST images", "int", 10, MAX_IMAGES,
          help="Class-balanced subset. Up to 500 per digit come with the app; more are downloaded from OpenML "
               "once (or read from $VAEGMM_MNIST_DIR)."),
    Field("digits", "Digits", "digits", help="Which digits to include."),
    Field("k", "K (GMM classes)", "int", 1, 50, help="Number of mixture components; follows the number of digits."),
    Field("latent", "Latent dimension D", "int", 2, 64, help="Size of the code z."),
    Field("alpha", "alpha (KL weight)", "float", 0.0, 10.0,
          help="Weight of KL(q(z|o) || N(mu_c, I)): how strongly the GMM's class means pull the codes."),
    Field("iterations", "Mutual iterations", "int", 1, 50, help="VAE update, then GMM update, this many times."),
    Field("epochs", "VAE epochs per iteration", "int", 1, 1000),
    Field("batch", "Batch size", "int", 1, 10000),
    Field("gmm", "GMM backend", "choice", choices=GMM_BACKENDS,
          help="Collapsed Gibbs: Serket's own sampler (one point at a time); Blocked Gibbs: the same Bayesian GMM, "
               "all points at once, empty classes can come back; EM: scikit-learn's GaussianMixture."),
    Field("codes", "Codes sent to the GMM", "choice", choices=("mean", "sample"),
          help="The encoder's mean, or one sample of q(z|o) as in Serket."),
    Field("feedback", "Feedback (GMM -> VAE)", "bool",
          help="Off: the prior stays N(0, I), a VAE and a GMM trained apart (the baseline)."),
    Field("seed", "Seed", "int", 0, 2**31 - 1),
)}
KEYS = ("preset",) + tuple(FIELDS)


def settings_from_config(cfg: RunConfig, preset_name: str = DEFAULT_PRESET) -> dict:
    """The widget values that describe ``cfg``."""
    return {"preset": preset_name, "n": cfg.data.n, "digits": list(cfg.data.digits), "k": cfg.gmm.n_classes,
            "latent": cfg.vae.latent_dim, "alpha": float(cfg.vae.alpha), "iterations": cfg.iterations,
            "epochs": cfg.vae.epochs, "batch": cfg.vae.batch_size, "gmm": cfg.gmm.backend, "codes": cfg.codes,
            "feedback": bool(cfg.feedback), "seed": cfg.seed}


def preset_settings(name: str) -> dict:
    return settings_from_config(preset(name), name)


def default_settings() -> dict:
    return preset_settings(DEFAULT_PRESET)


def config_from_settings(s: Mapping[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig`; raises ``ValueError`` with a message for the page."""
    digits = tuple(sorted(int(d) for d in s["digits"]))
    if not digits:
        raise ValueError("choose at least one digit")
    base = preset(s.get("preset") or DEFAULT_PRESET)
    return base.replace(
        data__n=int(s["n"]), data__digits=digits, gmm__n_classes=int(s["k"]), vae__latent_dim=int(s["latent"]),
        vae__alpha=float(s["alpha"]), iterations=int(s["iterations"]), vae__epochs=int(s["epochs"]),
        vae__batch_size=int(s["batch"]), gmm__backend=str(s["gmm"]), codes=str(s["codes"]),
        feedback=bool(s["feedback"]), seed=int(s["seed"])).validate()


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


# ---------------------------------------------------------------------------------------------- URL
def _fmt(key: str, value: Any) -> str:
    f = FIELDS[key]
    if f.kind == "digits":
        return "".join(str(int(d)) for d in sorted(value))
    if f.kind == "bool":
        return "on" if value else "off"
    if f.kind == "float":
        return f"{float(value):g}"
    return str(value)


def to_query(s: Mapping[str, Any]) -> dict[str, str]:
    """The preset plus every field that differs from it: a short link that reopens the same experiment."""
    name = s.get("preset") or DEFAULT_PRESET
    base = preset_settings(name)
    out = {"preset": name}
    for key in FIELDS:
        if _fmt(key, s[key]) != _fmt(key, base[key]):
            out[key] = _fmt(key, s[key])
    return out


def _parse_value(f: Field, raw: str) -> Any:
    text = raw.strip()
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


def _expect(f: Field) -> str:
    if f.kind == "int":
        return f"an integer from {int(f.lo)} to {int(f.hi)}"
    if f.kind == "float":
        return f"a number from {f.lo:g} to {f.hi:g}"
    if f.kind == "choice":
        return " or ".join(f.choices)
    if f.kind == "bool":
        return "on or off"
    return "distinct digits 0-9, e.g. 0123"


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
            s[key] = _parse_value(f, value)
        except (ValueError, TypeError):
            warnings.append(f"Ignored {key}={value!r} from the link: expected {_expect(f)}. "
                            f"Using the default {_fmt(key, s[key])}.")
    if "digits" in raw and "k" not in raw:
        s["k"] = len(s["digits"])  # K follows the digits unless the link sets it
    return s, warnings


def describe(s: Mapping[str, Any]) -> str:
    """One line for lists of runs: the settings that matter most."""
    digits = "all" if len(s["digits"]) == 10 else "".join(map(str, s["digits"]))
    return (f"n={s['n']} digits={digits} K={s['k']} D={s['latent']} alpha={s['alpha']:g} "
            f"{s['iterations']}x{s['epochs']} ep, {s['gmm']}, {s['codes']}, feedback {'on' if s['feedback'] else 'off'}")


def settings_equal(a: Mapping[str, Any], b: Mapping[str, Any], keys: Callable = lambda: FIELDS) -> bool:
    return all(_fmt(k, a[k]) == _fmt(k, b[k]) for k in keys())
