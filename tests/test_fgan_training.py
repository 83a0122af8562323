"""The seed-001 picture: which single Gaussian a JS_π GAN fits to a bimodal law (fixed seed)."""

from __future__ import annotations

import pytest

from gan_lab.train import train
from tests.conftest import compose_cfg


@pytest.mark.parametrize(("pi", "covers"), [(0.1, True), (0.99, False)])
def test_js_pi_moves_the_fit_from_covering_to_seeking(tmp_path, pi, covers):
    """Quadrature argmins: π=0.1 → N(0, 2.06²) (both modes), π=0.99 → N(±2, 0.5²) (one mode)."""
    cfg = compose_cfg("experiment=js_pi", f"loss.pi={pi}", "logger=none", "train.sample_every=0",
                      "trainer.enable_progress_bar=false", "seed=0")
    fit = train(cfg, tmp_path)["metrics"]
    loc, scale = fit["fit/loc"], fit["fit/scale"]
    if covers:
        assert abs(loc) < 0.3 and scale == pytest.approx(2.06, abs=0.2)
    else:
        assert abs(loc) == pytest.approx(2.0, abs=0.15) and scale == pytest.approx(0.5, abs=0.1)
    assert (tmp_path / "density_fit.png").is_file()
