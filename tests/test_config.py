import pytest

from vaegmm.model.config import PRESETS, RunConfig, preset


def test_serket_classic_preset_matches_the_tutorial():
    c = preset("serket-classic")
    assert (c.data.n, c.vae.latent_dim, c.gmm.n_classes, c.vae.alpha) == (3000, 18, 10, 1.0)
    assert (c.vae.epochs, c.vae.batch_size, c.iterations) == (200, 500, 5)
    assert c.codes == "sample" and c.gmm.backend == "collapsed" and c.gmm.init == "random" and not c.gmm.warm_start
    assert c.feedback


def test_no_feedback_preset_is_the_project_default_without_feedback():
    a, b = preset("project-default").to_dict(), preset("no-feedback").to_dict()
    assert b.pop("feedback") is False and a.pop("feedback") is True
    assert a == b


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_fresh_copies(name):
    a = preset(name).validate()
    a.vae.alpha = 99.0
    assert preset(name).vae.alpha != 99.0


def test_dict_round_trip_and_replace():
    c = RunConfig().replace(vae__alpha=2.5, data__digits=(1, 7), gmm__n_classes=2, iterations=3)
    assert RunConfig.from_dict(c.to_dict()) == c
    assert c.vae.alpha == 2.5 and c.data.digits == (1, 7) and c.iterations == 3


@pytest.mark.parametrize("change, fragment", [
    ({"data__n": 0}, "n must be"),
    ({"data__digits": ()}, "digits must not be empty"),
    ({"data__digits": (1, 12)}, "[12]"),
    ({"data__digits": (3, 3)}, "must not repeat"),
    ({"vae__alpha": -1.0}, "alpha"),
    ({"vae__alpha": float("nan")}, "alpha"),
    ({"vae__latent_dim": 0}, "latent_dim"),
    ({"gmm__backend": "kmeans"}, "'kmeans'"),
    ({"codes": "median"}, "'median'"),
    ({"gmm__n_classes": 5000}, "n_classes (5000)"),
    ({"data__source": "ftp"}, "'ftp'"),
])
def test_validation_names_the_bad_value(change, fragment):
    with pytest.raises(ValueError) as e:
        RunConfig().replace(**change).validate()
    assert fragment in str(e.value)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown vae settings"):
        RunConfig.from_dict({"vae": {"alfa": 1}})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("classic")


def test_quick_demo_is_the_project_default_smaller():
    q, d = preset("quick-demo"), preset("project-default")
    assert q.data.n < d.data.n and q.vae.epochs < d.vae.epochs
    assert (q.gmm, q.codes, q.vae.alpha, q.iterations) == (d.gmm, d.codes, d.vae.alpha, d.iterations)


def test_collapsed_backend_runs_one_chain():
    RunConfig().replace(gmm__backend="gibbs", gmm__chains=3).validate()
    with pytest.raises(ValueError, match="chains = 3"):
        RunConfig().replace(gmm__backend="collapsed", gmm__chains=3).validate()


def test_each_list_of_allowed_values_is_the_one_every_entry_point_offers():
    """config's lists are what the CLI, the sidebar's vocabulary and the GMM factory accept."""
    from vaegmm.cli import build_parser
    from vaegmm.model import config, gmm, params

    parser = build_parser()
    for flag, values in (("--gmm", config.GMM_BACKENDS), ("--z", config.CODE_KINDS), ("--device", config.DEVICES),
                         ("--precision", config.PRECISIONS)):
        for value in values:
            parser.parse_args(["run", flag, value])
        with pytest.raises(SystemExit):
            parser.parse_args(["run", flag, "nonsense"])
    assert params.FIELDS["gmm"].choices == config.GMM_BACKENDS and params.FIELDS["codes"].choices == config.CODE_KINDS
    for backend in config.GMM_BACKENDS:
        gmm.make_gmm(backend, 3)
    for name, values in (("gmm__backend", config.GMM_BACKENDS), ("gmm__init", config.GMM_INITS),
                         ("gmm__select", config.GMM_SELECTS), ("codes", config.CODE_KINDS),
                         ("vae__device", config.DEVICES), ("vae__precision", config.PRECISIONS),
                         ("data__source", config.DATA_SOURCES)):
        for value in values:
            RunConfig().replace(**{name: value}).validate()
        with pytest.raises(ValueError, match="must be"):
            RunConfig().replace(**{name: "nonsense"}).validate()
