"""Issue 10: the package installs like a package. Build the wheel, install it into a fresh virtual environment
outside the checkout, and run Serket's tutorial code there (tiny setting) and the `vaegmm` command.

The environment sees this interpreter's site-packages (``--system-site-packages``) so that torch and friends are
not downloaded again, and pip runs with ``--no-index``: the wheel's dependencies must already be satisfied, and
nothing is fetched.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TUTORIAL = """
import os, sys
import vaegmm, vaegmm.serket as srk
from vaegmm import load_mnist
assert not vaegmm.__file__.startswith({root!r}), vaegmm.__file__
images, labels = load_mnist(200, seed=0)
obs = srk.Observation(images)
vae1 = srk.VAE(4, itr=2, batch_size=100)
gmm1 = srk.GMM(10, category=labels)
vae1.connect(obs)
gmm1.connect(vae1)
for i in range(2):
    vae1.update()
    gmm1.update()
print("installed at", os.path.dirname(vaegmm.__file__), "version", vaegmm.__version__)
print("accuracy", gmm1.accuracy)
print("files", sorted(os.listdir("module002_gmm")))
"""


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_the_tutorial(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("vaegmm-*.whl"))
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    clean["VAEGMM_CACHE_DIR"] = os.environ.get("VAEGMM_CACHE_DIR", str(tmp_path / "cache"))
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, cwd=tmp_path,
                           env=clean)
    assert "vaegmm" not in check.stdout, check.stdout  # its pinned dependencies are all satisfied
    work = tmp_path / "notebook"  # anywhere but the checkout
    work.mkdir()
    run = subprocess.run([str(python), "-c", TUTORIAL.format(root=str(ROOT))], capture_output=True, text=True,
                         cwd=work, env=clean, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"installed at {env_dir}" in run.stdout
    assert "version 0.1.0" in run.stdout
    accuracy = float(run.stdout.split("accuracy")[1].split()[0])
    assert 0.1 <= accuracy <= 1.0
    assert "class_learn.txt" in run.stdout and (work / "module001_vae" / "z_learn.txt").exists()
    cli = subprocess.run([str(env_dir / "bin" / "vaegmm"), "run", "--help"], capture_output=True, text=True,
                         cwd=work, env=clean)
    assert cli.returncode == 0 and "--preset" in cli.stdout
