"""Modeling stage: Pyro models and guides, the SVI trainer, batched fitting, prediction.

Public extension points (see ``docs`` / workflows "Adding a new model/guide"):
``register_model``, ``register_guide``, ``register_prebuild``.
"""

from algo_trader.pipeline.stages.modeling.batched import FitSpec, fit_batched
from algo_trader.pipeline.stages.modeling.contracts import (
    ModelBatch,
    ModelShapeError,
    PyroGuide,
    PyroModel,
)
from algo_trader.pipeline.stages.modeling.device import resolve_device
from algo_trader.pipeline.stages.modeling.prebuild import (
    PREBUILD_HOOKS,
    PrebuildContext,
    PrebuildHook,
    PrebuildResult,
    register_prebuild,
)
from algo_trader.pipeline.stages.modeling.predictive import (
    posterior_samples,
    predict,
    predict_batched,
)
from algo_trader.pipeline.stages.modeling.registry import (
    build_pair,
    default_guide_registry,
    default_model_registry,
    register_guide,
    register_model,
)
from algo_trader.pipeline.stages.modeling.trainer import FitState, fit

__all__ = [
    "PREBUILD_HOOKS",
    "FitSpec",
    "FitState",
    "ModelBatch",
    "ModelShapeError",
    "PrebuildContext",
    "PrebuildHook",
    "PrebuildResult",
    "PyroGuide",
    "PyroModel",
    "build_pair",
    "default_guide_registry",
    "default_model_registry",
    "fit",
    "fit_batched",
    "posterior_samples",
    "predict",
    "predict_batched",
    "register_guide",
    "register_model",
    "register_prebuild",
    "resolve_device",
]
