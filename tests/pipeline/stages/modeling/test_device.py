from __future__ import annotations

import pytest
import torch

from algo_trader.domain.errors import ConfigError
from algo_trader.pipeline.stages.modeling.device import resolve_device


def test_cpu_by_default_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device() == torch.device("cpu")
    monkeypatch.setenv("TORCH_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_or_unavailable_devices_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="valid: cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
        monkeypatch.setenv("TORCH_DEVICE", "cuda")
        with pytest.raises(ConfigError, match="TORCH_DEVICE=cuda"):
            resolve_device()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_and_predict_end_to_end() -> None:
    from algo_trader.domain.simulation.config import SVIConfig
    from algo_trader.pipeline.stages.modeling.contracts import ModelBatch
    from algo_trader.pipeline.stages.modeling.predictive import predict
    from algo_trader.pipeline.stages.modeling.registry import build_pair
    from algo_trader.pipeline.stages.modeling.trainer import fit

    batch = ModelBatch.from_arrays(torch.randn(50, 3, 2), torch.randn(50, 3))
    model, guide = build_pair("factor_model_v1", "factor_guide_v1")
    state = fit(model, guide, batch, SVIConfig(num_steps=10), seed=0, device="cuda")
    assert state.metadata["device"] == "cuda"
    assert all(p.device.type == "cpu" for p in state.params.values())
    assert predict(model, guide, state, batch, 5, seed=0, device="cuda").device.type == "cpu"
