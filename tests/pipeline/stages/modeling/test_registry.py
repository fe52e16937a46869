from __future__ import annotations

import pytest

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.factor_guide_v1 import FactorGuideV1
from algo_trader.pipeline.stages.modeling.factor_model_v1 import FactorModelV1
from algo_trader.pipeline.stages.modeling.registry import (
    build_pair,
    default_guide_registry,
    default_model_registry,
)


def test_registries_hold_the_project_models_and_guides() -> None:
    assert {"test_model", "factor_model_v1"} <= set(default_model_registry().names())
    assert {"test_guide", "factor_guide_v1"} <= set(default_guide_registry().names())
    assert default_model_registry().get("factor_model_v1") is FactorModelV1


def test_build_pair_passes_params_and_the_model_to_the_guide() -> None:
    model, guide = build_pair(
        "factor_model_v1", "factor_guide_v1", {"num_factors": 3}, {"init_scale": 0.1}
    )
    assert isinstance(guide, FactorGuideV1) and guide.model is model
    assert isinstance(model, FactorModelV1)
    assert model.num_factors == 3 and guide.params == {"init_scale": 0.1}
    assert model.name == "factor_model_v1" and guide.name == "factor_guide_v1"


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; valid: .*factor_model_v1"):
        build_pair("nope", "factor_guide_v1")
