"""Where errors leave the CLI (``run_app``): a path the system refused is one line and exit code 2."""

from __future__ import annotations

import errno
import os

import pytest

from qwenkit.cli import catalog_cmds, main


def _raise(exc: OSError) -> object:
    def load() -> object:
        raise exc

    return load


def test_a_refused_path_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    refused = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/nowhere/report.json")
    monkeypatch.setattr(catalog_cmds, "load_catalog", _raise(refused))
    assert main(["catalog"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == "error: /nowhere/report.json: No such file or directory"
    assert "Traceback" not in err


def test_an_os_error_about_no_path_is_a_fault_not_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(catalog_cmds, "load_catalog", _raise(full))
    with pytest.raises(OSError, match="No space left"):
        main(["catalog"])
