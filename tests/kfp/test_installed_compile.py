"""`dummy-training compile --image IMG --output-dir DIR` from an installed copy of the package, outside the checkout:
the component and pipeline definitions ship in the package, so a platform team gets YAML naming its own registry
without cloning the repository.

The installed copy is what a wheel of this distribution holds (``setup.py build``: the same build_py, package
data from MANIFEST.in, as ``bdist_wheel`` uses for a pure-Python wheel), put into the site-packages of a fresh venv
whose only other path is the one holding kfp and the engine's dependencies (added as a plain path, so the
editable install's ``.pth`` hooks there are not run): the checkout is not importable from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import yaml

from dummy_training.kfp import compile as compile_mod
from dummy_training.kfp.components import DEFAULT_IMAGE

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/platform/dummy-training:7.1"


def _installed_copy(tmp: Path) -> Path:
    """A venv with this distribution installed as its wheel would install it; returns its python."""
    build = tmp / "build"
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp), "build", "--build-base",
                    str(build)], cwd=REPO, check=True, capture_output=True)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    shutil.copytree(build / "lib", site, dirs_exist_ok=True)
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_compile_for_a_registry_from_an_installed_copy_outside_the_checkout(tmp_path: Path) -> None:
    python = _installed_copy(tmp_path)
    elsewhere = tmp_path / "platform-team"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DUMMY_TRAINING_IMAGE")}
    where = subprocess.run([str(python), "-c", "import dummy_training; print(dummy_training.__file__)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(tmp_path / "venv")), where  # the installed copy, not the checkout

    done = subprocess.run([str(python), "-m", "dummy_training", "compile", "--image", IMAGE, "--output-dir", "yaml"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(elsewhere / "yaml")) for p in (elsewhere / "yaml").rglob("*.yaml"))
    tracked = sorted(str(t.path) for t in compile_mod.targets()
                     if compile_mod.PACKAGE_PIPELINES_DIR not in t.path.parents)
    assert written == tracked
    for rel in written:
        text = (elsewhere / "yaml" / rel).read_text()
        images = {e["container"]["image"] for doc in yaml.safe_load_all(text) if "deploymentSpec" in doc
                  for e in doc["deploymentSpec"]["executors"].values() if "container" in e}
        assert images == {IMAGE}, rel
        # the tracked YAML but for the image: the installed definitions are the checkout's
        fresh = text.replace(IMAGE, DEFAULT_IMAGE)
        assert compile_mod.normalized(fresh) == compile_mod.normalized((REPO / rel).read_text()), rel

    # the tracked files are the checkout's business: outside it, one line saying what to do instead
    refused = subprocess.run([str(python), "-m", "dummy_training", "compile", "--check"], cwd=elsewhere, env=env,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "pass --output-dir DIR" in line and "--root" in line
