"""docs/official_vs_ltbench.md is what `python -m ltbench.plan.official` generates from the plan today."""

from __future__ import annotations

from ltbench.plan import official


def test_official_vs_ltbench_is_current():
    assert official.OUTPUT.read_text(encoding="utf-8") == official.render(), (
        "docs/official_vs_ltbench.md is stale: run `python -m ltbench.plan.official`")


def test_every_recipe_states_every_field_with_a_source():
    for recipe in official.RECIPES:
        assert set(recipe.official) == set(official.FIELDS), recipe.name
        assert recipe.source and all(recipe.official.values()), recipe.name
