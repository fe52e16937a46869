"""Which torch device a fit runs on: ``TORCH_DEVICE`` (``cpu`` or ``cuda``)."""

from __future__ import annotations

import torch

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.env import load_settings


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device named by ``name``, or by the ``TORCH_DEVICE`` setting when ``None``.

    Parameters
    ----------
    name
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``None`` reads ``TORCH_DEVICE`` (default
        ``cpu``, see ``.env.example``).

    Raises
    ------
    ConfigError
        An unknown device, or ``cuda`` on a machine where torch sees no GPU.
    """
    if isinstance(name, torch.device):
        device = name
    else:
        raw = load_settings().torch_device if name is None else name.strip().lower()
        try:
            device = torch.device(raw)
        except RuntimeError:
            raise ConfigError(
                f"TORCH_DEVICE={raw!r} is not a torch device; valid: cpu, cuda, cuda:N"
            ) from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"TORCH_DEVICE={str(device)!r} is not supported; valid: cpu, cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "TORCH_DEVICE=cuda but torch sees no CUDA device on this machine; set "
                "TORCH_DEVICE=cpu"
            )
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"TORCH_DEVICE={str(device)!r}: only {torch.cuda.device_count()} CUDA "
                f"device(s) visible; valid: cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
        device = torch.device("cuda", index)
    return device
