import subprocess
import sys

import numpy as np
import pytest

from vaegmm.cli import build_parser, config_from_args, main
from vaegmm.model.config import preset
from vaegmm.views.export import read_run


def test_preset_and_overrides():
    cfg = config_from_args(build_parser().parse_args(["run", "--preset", "serket-classic", "--alpha", "0.5",
                                                       "--digits", "1,7", "--no-feedback"]))
    assert cfg.data.n == 3000 and cfg.vae.alpha == 0.5 and cfg.data.digits == (1, 7)
    assert cfg.gmm.n_classes == 2 and cfg.feedback is False


def test_gmm_backends_by_name():
    for name in ("collapsed", "gibbs", "em"):
        assert config_from_args(build_parser().parse_args(["run", "--gmm", name])).gmm.backend == name
    assert config_from_args(build_parser().parse_args(["run", "--preset", "serket-classic"])).gmm.backend == "collapsed"


def test_the_flags_are_the_links_settings_and_the_old_names_still_work():
    """One vocabulary (vaegmm.model.params.FIELDS): every setting of a link is a flag of the same name, with the
    same parser and limits; the CLI's earlier names are second names of the same settings."""
    from vaegmm.model.params import FIELDS, format_value, preset_settings

    parser = build_parser()
    base = preset_settings("quick-demo")
    for key in FIELDS:
        args = parser.parse_args(["run", "--preset", "quick-demo", f"--{key}", format_value(key, base[key])])
        assert getattr(args, key) == base[key] and config_from_args(args) == preset("quick-demo")
    by_link = ["--k", "4", "--latent", "3", "--batch", "50", "--codes", "mean", "--feedback", "off", "--gmm", "EM"]
    by_old = ["--classes", "4", "--latent-dim", "3", "--batch-size", "50", "--z", "mean", "--no-feedback", "--gmm", "em"]
    one, two = (config_from_args(parser.parse_args(["run", *args])) for args in (by_link, by_old))
    assert one == two and (one.gmm.n_classes, one.vae.latent_dim, one.vae.batch_size, one.feedback) == (4, 3, 50, False)


@pytest.mark.parametrize("args, fragment", [
    (["run", "--alpha", "-1"], "argument --alpha: expected a number from 0 to 10, got '-1'"),
    (["run", "--gmm", "dp"], "argument --gmm: expected collapsed or gibbs or em, got 'dp'"),
    (["run", "--digits", "a,b"], "argument --digits: expected distinct digits 0-9"),
    (["run", "--classes", "0"], "argument --k/--classes: expected an integer from 1 to 50, got '0'"),
    (["run", "--n", "6000", "--source", "bundled"], "holds 500 per digit"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, fragment):
    p = subprocess.run([sys.executable, "-m", "vaegmm", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaegmm: error:") and fragment in lines[0], p.stderr


def test_tiny_run_writes_folder_and_table(tmp_path, capsys):
    rc = main(["run", "--n", "200", "--epochs", "2", "--iterations", "2", "--latent-dim", "3", "--batch-size",
               "50", "--gmm", "em", "--classes", "4", "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in table] == ["0", "1", "2"]
    back = read_run(tmp_path / "out")
    assert [round(float(row[1]), 4) for row in table] == [round(back["accuracy"][i], 4) for i in range(3)]
    assert back["codes"][2].shape == (200, 3) and np.all(back["classes"][2] < 4)


def test_bf16_on_a_cpu_without_native_bf16_warns_once_and_still_trains(tmp_path, capsys, monkeypatch):
    import vaegmm.model.vae as vae_mod

    monkeypatch.setattr(vae_mod, "_cpu_has_bf16_gemm", lambda: False)
    rc = main(["run", "--n", "100", "--epochs", "1", "--iterations", "1", "--latent-dim", "2", "--batch-size", "50",
               "--gmm", "em", "--classes", "3", "--precision", "bf16", "--out", str(tmp_path / "o"), "--quiet",
               "--no-store"])
    err = capsys.readouterr().err
    assert rc == 0
    assert [line for line in err.splitlines() if "warning" in line] == [
        "vaegmm: warning: " + vae_mod.precision_note("bf16", "cpu")]


def test_the_table_has_held_out_columns_and_a_missing_held_out_set_is_said_once(tmp_path, capsys, monkeypatch):
    rc = main(["run", "--n", "200", "--epochs", "2", "--iterations", "2", "--latent-dim", "3", "--batch-size",
               "50", "--gmm", "em", "--out", str(tmp_path / "out"), "--quiet", "--no-store"])
    assert rc == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head[:8] == ["iter", "accuracy", "NMI", "ARI", "held-out", "acc", "held-out", "NMI"]
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    back = read_run(tmp_path / "out")
    saved = back["history"]["iterations"]
    assert [float(row[4]) for row in table] == [round(saved[i]["heldout_accuracy"], 4) for i in range(3)]
    assert [float(row[5]) for row in table] == [round(saved[i]["heldout_nmi"], 4) for i in range(3)]
    assert [round(back["recog_accuracy"][i], 4) for i in range(3)] == [float(row[4]) for row in table]
    assert "held-out: 4800 images never trained on (the bundled images outside the training subset)" in out

    from vaegmm.model import data
    monkeypatch.delenv(data.IDX_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))  # no OpenML copy: no MNIST test split
    rc = main(["run", "--n", "5000", "--epochs", "1", "--iterations", "1", "--latent-dim", "2", "--batch-size",
               "1000", "--gmm", "em", "--out", str(tmp_path / "all"), "--quiet", "--no-store"])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err.count("no held-out set") == 1 and "no held-out set" not in captured.out
    assert "all 500 bundled images per digit are used for training" in captured.err
    rows = [line.split() for line in captured.out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[4:6] for row in rows] == [["-", "-"], ["-", "-"]]
    assert not (tmp_path / "all" / "module002_gmm" / "acc_recog.txt").exists()
