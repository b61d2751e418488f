"""Issue 10: the package installs like a package. Build the wheel from a clean copy of the sources, install it into
a fresh virtual environment outside the checkout, check that it ships every subpackage, and run Serket's tutorial
code there (tiny setting) and the `vaegmm` command.

The fresh environment sees the packages of the interpreter running the tests, whether that is the system Python
(CI) or a virtual environment (a newcomer's): a ``.pth`` file adds the running interpreter's site-packages
directories (``site.getsitepackages()``). ``system_site_packages=True`` would not do: it sees the *base*
interpreter's packages, so inside a virtual environment none of vaegmm's dependencies. Nothing is downloaded: pip
runs with ``--no-index``, and the wheel's pinned dependencies must already be satisfied (``pip check``).
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# what `pip install .` must ship (setuptools' package discovery and package data, pyproject.toml)
SHIPPED = ["vaegmm/__init__.py", "vaegmm/cli.py", "vaegmm/serket.py", "vaegmm/__main__.py",
           *(f"vaegmm/{sub}/__init__.py" for sub in ("core", "model", "store", "views", "runs", "sweeps")),
           "vaegmm/sweeps/measured_feedback.json", "vaegmm/sweeps/feedback_map.json"]

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


def running_site_dirs() -> list[str]:
    """The site-packages directories of the interpreter running the tests: a virtual environment's own (and its
    base's when it was made with ``--system-site-packages``), the system Python's, and the user's where enabled."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def make_env_seeing_these_packages(env_dir: Path) -> Path:
    """A fresh virtual environment whose own site-packages comes first and whose ``.pth`` file then adds this
    interpreter's site-packages (``site.addsitedir``, so their own ``.pth`` files work as they do here); its python."""
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in running_site_dirs()]
    (Path(purelib) / "vaegmm-test-outer-site.pth").write_text("\n".join(lines) + "\n")
    return python


# build outputs, caches and local folders at the top of a checkout, which `pip install .` from a fresh clone lacks
_NOT_SOURCES_AT_TOP = {".git", "build", "dist", "artifacts", "runs", ".venv", "venv", ".whl", ".gl", ".pytest_cache"}


def clean_sources(dest: Path) -> Path:
    """What the wheel is built from: the checkout as a fresh clone has it, without build outputs (a stale
    ``build/lib`` would ship modules that no longer exist), caches or git."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = _NOT_SOURCES_AT_TOP if Path(folder) == ROOT else set()
        return {n for n in names if n in top or n == "__pycache__" or n.endswith((".egg-info", ".pyc"))}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_the_tutorial(tmp_path):
    wheels = tmp_path / "wheels"
    src = clean_sources(tmp_path / "src")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(wheels), "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("vaegmm-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert not [f for f in SHIPPED if f not in names], sorted(n for n in names if n.startswith("vaegmm/"))
    env_dir = tmp_path / "env"
    python = make_env_seeing_these_packages(env_dir)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    clean["VAEGMM_CACHE_DIR"] = os.environ.get("VAEGMM_CACHE_DIR", str(tmp_path / "cache"))
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert install.returncode == 0, install.stderr
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, cwd=tmp_path,
                           env=clean)
    assert "vaegmm" not in check.stdout, check.stdout  # its pinned dependencies are all satisfied
    work = tmp_path / "notebook"  # anywhere but the checkout
    work.mkdir()
    shipped = subprocess.run([str(python), "-c", "import os, vaegmm; print(os.path.dirname(vaegmm.__file__))"],
                             capture_output=True, text=True, cwd=work, env=clean)
    installed = Path(shipped.stdout.strip()).parent
    assert shipped.returncode == 0 and installed.is_relative_to(env_dir), (shipped.stdout, shipped.stderr)
    assert not [f for f in SHIPPED if not (installed / f).is_file()], sorted(installed.glob("vaegmm/*"))
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
