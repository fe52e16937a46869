from __future__ import annotations

import pyro
import torch

from algo_trader.pipeline.stages.modeling.contracts import ModelBatch
from algo_trader.pipeline.stages.modeling.registry import build_pair


def test_the_example_pair_traces_single_and_batched_with_the_obs_site() -> None:
    model, guide = build_pair("test_model", "test_guide", {"prior_scale": torch.tensor([1.0, 2.0])})
    X, y = torch.randn(6, 3, 2), torch.randn(6, 3)
    for batch, shape in [
        (ModelBatch(X=X, y=y), (6, 3)),
        (ModelBatch(X=X, y=y, fit_mask=torch.ones(2, 6, dtype=torch.bool)), (2, 6, 3)),
    ]:
        if batch.num_fits is None:
            model, guide = build_pair("test_model", "test_guide")
        else:
            model, guide = build_pair(
                "test_model", "test_guide", {"prior_scale": torch.tensor([1.0, 2.0])}
            )
        with pyro.get_param_store().scope():
            guide_trace = pyro.poutine.trace(guide).get_trace(batch)
            trace = pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace(
                batch
            )
        trace.compute_log_prob()
        assert trace.nodes["obs"]["log_prob"].shape == shape
    assert model.complexity(num_assets=3, num_features=2) == 4.0
