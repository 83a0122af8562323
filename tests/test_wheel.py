"""`python -m gan_lab` works from a built wheel: the config tree ships inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_module_runs_from_a_built_wheel(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("gan_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gan_lab/conf/config.yaml" in names and "gan_lab/conf/model/dcgan.yaml" in names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gan_lab").rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= set(names), f"missing from the wheel: {sorted(sources - set(names))}"
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "WANDB_MODE": "offline"}
    where = subprocess.run([sys.executable, "-c", "import gan_lab; print(gan_lab.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip() == str(site / "gan_lab" / "__init__.py")
    run = subprocess.run([sys.executable, "-m", "gan_lab", "debug=tiny", "model=mlp", "dataset=ring",
                          "logger=none"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "gan_lab: run folder" in run.stdout
    assert any((tmp_path / "outputs").rglob("metrics.json"))
