from __future__ import annotations

import torch

from algo_trader.pipeline.stages.modeling.contracts import ModelBatch
from algo_trader.pipeline.stages.modeling.registry import build_pair
from algo_trader.pipeline.stages.modeling.trainer import init_params, param_scope


def test_param_shapes_single_and_batched_with_fit_index_leading() -> None:
    _, guide = build_pair("factor_model_v1", "factor_guide_v1", {"num_factors": 2}, {})
    single = ModelBatch(X=torch.zeros(7, 3, 4), y=torch.zeros(7, 3))
    batched = ModelBatch(X=single.X, y=single.y, fit_mask=torch.ones(5, 7, dtype=torch.bool))
    with param_scope():
        one = {n: tuple(p.shape) for n, p in init_params(guide, single, None).items()}
    with param_scope():
        many = {n: tuple(p.shape) for n, p in init_params(guide, batched, None).items()}
    assert one["beta_loc"] == (4,) and one["W_loc"] == (3, 2) and one["tau_loc"] == ()
    assert (
        many["beta_loc"] == (5, 1, 4) and many["W_loc"] == (5, 3, 2) and many["tau_loc"] == (5, 1)
    )
    assert one.keys() == many.keys()


def test_loadings_start_small_nonzero_and_identical_across_fits() -> None:
    _, guide = build_pair("factor_model_v1", "factor_guide_v1", {"num_factors": 2}, {})
    batched = ModelBatch(X=torch.zeros(7, 3, 4), fit_mask=torch.ones(2, 7, dtype=torch.bool))
    with param_scope():
        W = init_params(guide, batched, None)["W_loc"]
    assert torch.equal(W[0], W[1]) and 0 < W.abs().max() < 0.5
