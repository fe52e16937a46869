"""All-or-nothing output folders on the real file system."""

from __future__ import annotations

from pathlib import Path

import pytest

from algo_trader.infrastructure.data.staging import recover, staged_folder


def _folder(path: Path, files: dict[str, str]) -> None:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_success_replaces_the_whole_folder(tmp_path: Path) -> None:
    final = tmp_path / "lake" / "2024-10"
    _folder(final, {"a.csv": "old", "stale.csv": "old"})
    with staged_folder(final) as staging:
        assert staging.parent == final.parent and staging.name.startswith(".staging-2024-10-")
        (staging / "a.csv").write_text("new")
    assert _contents(final) == {"a.csv": "new"}
    assert [p.name for p in final.parent.iterdir()] == ["2024-10"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interruption_keeps_the_previous_folder(
    tmp_path: Path, error: type[BaseException]
) -> None:
    final = tmp_path / "lake" / "2024-10"
    _folder(final, {"a.csv": "old"})
    with pytest.raises(error), staged_folder(final) as staging:
        (staging / "a.csv").write_text("half")
        raise error
    assert _contents(final) == {"a.csv": "old"}
    assert [p.name for p in final.parent.iterdir()] == ["2024-10"]


def test_recover_undoes_a_half_finished_swap(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    # Died between the two renames: the old folder is aside, the new one not yet in place.
    _folder(lake / ".replaced-2024-10", {"a.csv": "old"})
    _folder(lake / ".staging-2024-10-x1", {"a.csv": "new"})
    # Died after the swap, before deleting the old folder.
    _folder(lake / ".replaced-2024-11", {"a.csv": "older"})
    _folder(lake / "2024-11", {"a.csv": "current"})
    recover(lake)
    assert sorted(p.name for p in lake.iterdir()) == ["2024-10", "2024-11"]
    assert _contents(lake / "2024-10") == {"a.csv": "old"}
    assert _contents(lake / "2024-11") == {"a.csv": "current"}


def test_first_run_creates_the_root(tmp_path: Path) -> None:
    final = tmp_path / "missing" / "lake" / "2024-10"
    with staged_folder(final) as staging:
        (staging / "x").write_text("1")
    assert _contents(final) == {"x": "1"}
