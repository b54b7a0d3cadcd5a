"""Output paths are refused before the work when the file could not be written after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.errors import UsageError
from qwenkit.output_paths import check_output_file


@pytest.mark.parametrize("target", [None, "-", "report.json", "~/report.json"])
def test_a_writable_place_passes(target: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    check_output_file(target, "json")


def test_a_missing_folder_a_folder_and_a_wrong_type_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--json .*/absent/r.json: its folder does not exist"):
        check_output_file(tmp_path / "absent" / "r.json", "json")
    with pytest.raises(UsageError, match="is a folder: give a file name") as raised:
        check_output_file(tmp_path, "save-base")
    assert raised.value.param == "save-base"
    with pytest.raises(UsageError, match=r"--plot must name a \.png file, got .*speed\.svg"):
        check_output_file(tmp_path / "speed.svg", "plot", suffix=".png")
    check_output_file(tmp_path / "SPEED.PNG", "plot", suffix=".png")  # the case of the suffix is free
