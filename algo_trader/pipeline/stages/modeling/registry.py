"""Model and guide registries (workflows.md, "Adding a new model/guide (Pyro)").

``@register_model("name")`` / ``@register_guide("name")`` put a class in the registry when
its module is imported; :func:`default_model_registry` / :func:`default_guide_registry`
import every model/guide module of the project first, so the names in
``config/simulation.yml`` resolve. A new model module is added to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from algo_trader.infrastructure.registry import Registry
from algo_trader.pipeline.stages.modeling.contracts import PyroGuide, PyroModel
from algo_trader.pipeline.stages.modeling.prebuild import PREBUILD_HOOKS, PrebuildHook

MODELS: Registry[type[PyroModel]] = Registry("model")
GUIDES: Registry[type[PyroGuide]] = Registry("guide")

_PACKAGE = "algo_trader.pipeline.stages.modeling"
_MODULES = (
    "test_model",
    "test_guide",
    "factor_model_v1",
    "factor_guide_v1",
    "factor_prior_init",
    "horseshoe_regression",
    "horseshoe_guide",
    "regime_switching",
    "regime_guide",
)

ModelT = TypeVar("ModelT", bound=type[PyroModel])
GuideT = TypeVar("GuideT", bound=type[PyroGuide])


def register_model(name: str) -> Callable[[ModelT], ModelT]:
    """Class decorator: register a :class:`PyroModel` subclass as ``name``."""

    def decorate(cls: ModelT) -> ModelT:
        cls.name = name
        MODELS.register(name)(cls)
        return cls

    return decorate


def register_guide(name: str) -> Callable[[GuideT], GuideT]:
    """Class decorator: register a :class:`PyroGuide` subclass as ``name``."""

    def decorate(cls: GuideT) -> GuideT:
        cls.name = name
        GUIDES.register(name)(cls)
        return cls

    return decorate


def build_pair(
    model_name: str,
    guide_name: str,
    params: Mapping[str, Any] | None = None,
    guide_params: Mapping[str, Any] | None = None,
) -> tuple[PyroModel, PyroGuide]:
    """The registered model built from ``params`` and its guide from ``guide_params``.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the registered ones).
    """
    model = default_model_registry().get(model_name)(params)
    guide = default_guide_registry().get(guide_name)(guide_params, model)
    return model, guide


def _import_all() -> None:
    for module in _MODULES:
        importlib.import_module(f"{_PACKAGE}.{module}")


def default_model_registry() -> Registry[type[PyroModel]]:
    """Every model of the project, by name (imports the model modules)."""
    _import_all()
    return MODELS


def default_guide_registry() -> Registry[type[PyroGuide]]:
    """Every guide of the project, by name (imports the guide modules)."""
    _import_all()
    return GUIDES


def default_prebuild_registry() -> Registry[PrebuildHook]:
    """Every prebuild hook of the project, by name (imports the modules that define them)."""
    _import_all()
    return PREBUILD_HOOKS
