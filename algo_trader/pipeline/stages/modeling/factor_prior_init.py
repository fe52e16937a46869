"""Prebuild hook ``factor_prior_init``: data-driven scale of ``factor_model_v1``.

``factor_model_v1`` states every prior in units of ``likelihood.sigma_scale``, the typical
size of a target. This hook sets it to the robust scale of the training targets it is
given (the rows every outer fold trains on, so nothing of a test fold leaks in): the MAD
of ``y`` around each asset's median, pooled over assets, times 1.4826 (the MAD of a
normal is 0.6745 sd).

Hook params (``model.prebuild.params``): ``min_scale`` (1e-12): floor of the scale.
"""

from __future__ import annotations

import numpy as np

from algo_trader.domain.errors import DataError
from algo_trader.pipeline.stages.modeling.prebuild import (
    PrebuildContext,
    PrebuildResult,
    register_prebuild,
)

MAD_TO_SD = 1.4826


@register_prebuild("factor_prior_init")
def factor_prior_init(context: PrebuildContext) -> PrebuildResult:
    """``likelihood.sigma_scale`` from the MAD of the training targets.

    Raises
    ------
    DataError
        No target is observed in the training rows.
    """
    y = np.asarray(context.y, dtype=np.float64)
    observed = ~np.asarray(context.y_missing_mask, dtype=bool) & np.isfinite(y)
    if not observed.any():
        raise DataError(
            f"factor_prior_init: none of the {y.size} training targets is observed; "
            "the prebuild needs at least one",
            column="y",
        )
    values = np.where(observed, y, np.nan)
    centred = values - np.nanmedian(values, axis=0, keepdims=True)
    pooled = float(np.nanmedian(np.abs(centred))) * MAD_TO_SD
    per_asset = np.nanmedian(np.abs(centred), axis=0) * MAD_TO_SD
    scale = max(pooled, float(context.params.get("min_scale", 1e-12)))
    return PrebuildResult(
        model_params={"likelihood": {"sigma_scale": scale}},
        metadata={
            "sigma_scale": scale,
            "n_observed": int(observed.sum()),
            "per_asset_scale": {
                asset: (None if np.isnan(v) else float(v))
                for asset, v in zip(context.assets, per_asset, strict=True)
            },
        },
    )
