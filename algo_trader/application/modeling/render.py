"""``--render FILE``: draw a model's graph with ``pyro.render_model``.

graphviz is optional (``uv sync --extra graphviz``, plus the Graphviz ``dot`` program);
without it the command says so instead of failing on an import. The picture is produced
in memory and written atomically, in the format the file's suffix names.
"""

from __future__ import annotations

from pathlib import Path

import pyro

from algo_trader.domain.errors import ConfigError
from algo_trader.infrastructure.data.atomic import atomic_path
from algo_trader.pipeline.stages.modeling.contracts import ModelBatch, PyroModel

INSTALL_HINT = (
    "install the optional graphviz extra with `uv sync --extra graphviz` and the Graphviz "
    "binary (`dot`, e.g. `apt install graphviz` or `brew install graphviz`)"
)


def render_graph(model: PyroModel, batch: ModelBatch, path: Path) -> Path:
    """Write the plate diagram of ``model`` on ``batch`` to ``path`` (format from suffix).

    Raises
    ------
    ConfigError
        graphviz (the Python package or the ``dot`` binary) is missing, or the suffix is
        not a format graphviz writes.
    """
    try:
        import graphviz
    except ImportError:
        raise ConfigError(
            f"--render {path}: the graphviz package is missing; {INSTALL_HINT}"
        ) from None
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in graphviz.FORMATS:
        raise ConfigError(
            f"--render {path}: suffix {path.suffix!r} is not a graphviz format; use e.g. "
            ".svg, .png or .pdf"
        )
    graph = pyro.render_model(model, model_args=(batch,), render_distributions=True)
    try:
        image = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise ConfigError(
            f"--render {path}: the Graphviz `dot` program is missing; {INSTALL_HINT}"
        ) from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(image)
    return path
