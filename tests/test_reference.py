"""docs/configuration.md is generated from the typed settings and must match them."""

from __future__ import annotations

from pathlib import Path

from gan_lab.reference import render as reference

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_configuration_reference_is_in_sync_with_the_settings():
    assert PAGE.read_text() == reference(), (
        "docs/configuration.md is out of date: python -m gan_lab.reference > docs/configuration.md")


def test_the_reference_names_every_section_and_group():
    text = reference()
    for heading in ("## `train.*`", "## `eval.*`", "## `trainer.*`", "## `tricks.*`", "## `model=`", "## `loss=`",
                    "## `regularizer=`", "## `dataset=`", "## `optimizer=`", "`eval.drs.calibration_steps`",
                    "`tricks.unroll_steps`", "`model.system.phase_iterations`", "`loss.divergence`"):
        assert heading in text, heading
