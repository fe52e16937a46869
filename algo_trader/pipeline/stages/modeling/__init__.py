"""Modeling stage: public extension points (prebuild hooks so far)."""

from algo_trader.pipeline.stages.modeling.prebuild import (
    PREBUILD_HOOKS,
    PrebuildContext,
    PrebuildHook,
    PrebuildResult,
    register_prebuild,
)

__all__ = [
    "PREBUILD_HOOKS",
    "PrebuildContext",
    "PrebuildHook",
    "PrebuildResult",
    "register_prebuild",
]
