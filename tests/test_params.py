"""vaegmm.model.params: the one vocabulary of the URL, the sidebar, the sweep grid and the CLI's --grid."""
import pytest

from vaegmm.model import params
from vaegmm.model.config import preset


def test_every_field_maps_to_a_config_key_and_round_trips():
    s = params.preset_settings("serket-classic")
    s.update(n=500, digits=[1, 7], k=2, latent=6, alpha=0.5, iterations=3, epochs=7, batch=64, gmm="em",
             codes="mean", feedback=False, seed=12)
    cfg = params.config_from_settings(s)
    assert params.settings_from_config(cfg, "serket-classic") == s
    assert cfg.gmm.sweeps == preset("serket-classic").gmm.sweeps  # fields outside the vocabulary stay


def test_apply_settings_changes_only_what_is_named():
    base = preset("project-default")
    cfg = params.apply_settings(base, {"alpha": 2, "feedback": False, "digits": [7, 1]})
    assert cfg.vae.alpha == 2.0 and cfg.feedback is False and cfg.data.digits == (1, 7)
    assert cfg.gmm.n_init == base.gmm.n_init and cfg.gmm.reg_covar == base.gmm.reg_covar
    with pytest.raises(ValueError, match="unknown setting"):
        params.apply_settings(base, {"lr": 1})


def test_parse_values_of_a_grid_axis():
    assert params.parse_values("alpha", "0.5, 1,2") == [0.5, 1.0, 2.0]
    assert params.parse_values("feedback", "on,off") == [True, False]
    assert params.parse_values("digits", "0123,01") == [[0, 1, 2, 3], [0, 1]]
    assert params.parse_values("gmm", "EM") == ["em"]


@pytest.mark.parametrize("key, text, fragment", [
    ("lr", "1", "unknown axis 'lr'"),
    ("alpha", "0.5,99", "alpha='99': expected a number from 0 to 10"),
    ("n", "5", "n='5': expected an integer from 10"),
    ("gmm", "em,kmeans", "gmm='kmeans'"),
    ("alpha", "", "no values"),
    ("alpha", "1,,2", "empty value"),
    ("alpha", "1,1.0", "appears twice"),
])
def test_parse_values_rejects_bad_axes_with_one_line(key, text, fragment):
    with pytest.raises(ValueError, match=None) as e:
        params.parse_values(key, text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_precision_is_a_setting_of_the_link_the_sidebar_and_the_grid():
    s, warnings = params.parse_query({"preset": "quick-demo", "precision": "BF16"})
    assert warnings == [] and s["precision"] == "bf16"
    assert params.config_from_settings(s).vae.precision == "bf16"
    assert params.to_query(s) == {"preset": "quick-demo", "precision": "bf16"}
    assert "precision" not in params.to_query(params.preset_settings("quick-demo"))  # the default fp32 stays out
    assert params.parse_values("precision", "fp32,auto") == ["fp32", "auto"]
    _, warnings = params.parse_query({"precision": "fp16"})
    assert warnings and "expected auto or bf16 or fp32" in warnings[0]
