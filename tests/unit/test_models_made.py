"""Files made with qwenkit convert/quantize: listed, found by ID:TYPE references, marked by select."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _models_fixtures import isolate

from qwenkit.catalog import load_catalog
from qwenkit.catalog.select import DEVICE_FORMATS, SelectRequest, _with_local, select
from qwenkit.cli.select_cmd import local_pairs
from qwenkit.models import find_local, list_local, resolve
from qwenkit.models.made import find_made, made_files, record_made, variant_of

CODER = "qwen2.5-coder-0.5b-instruct"
GB = 10**9


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    return tmp_path


def _file(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_a_made_file_is_listed_and_resolved_by_id_and_type(home: Path) -> None:
    q6 = _file(home / "coder-Q6_K.gguf")
    q8 = _file(home / "coder-Q8_0.gguf")
    record_made(q6, variant=CODER, quant="Q6_K", made_from=home / "coder-F16.gguf")
    record_made(q8, variant=CODER, quant="q8_0", made_from=home / "coder-F16.gguf")
    entries = {e.ref: e for e in list_local(load_catalog())}
    assert entries[f"{CODER}:q6_k"].source == "made-locally" and entries[f"{CODER}:q6_k"].path == q6.resolve()
    assert resolve(f"{CODER}:q6_k").path == q6.resolve()  # a quant the catalog does not list
    found = find_local(resolve(f"{CODER}:q8_0"))  # a catalog quant not downloaded: the made file
    assert found is not None and (found.path, found.source) == (q8.resolve(), "made-locally")
    assert local_pairs(load_catalog()) >= {(CODER, "q6_k"), (CODER, "q8_0")}


def test_records_follow_the_files(home: Path) -> None:
    path = _file(home / "m-Q4_0.gguf")
    record_made(path, variant=None, quant="Q4_0", made_from="src.gguf")
    record_made(path, variant=CODER, quant="Q4_0", made_from="src.gguf")  # re-made: one record, the latest
    assert [(m.variant, m.quant) for m in made_files()] == [(CODER, "q4_0")]
    assert variant_of(path) == CODER and find_made(CODER, "Q4_0") == path.resolve()
    path.unlink()
    assert made_files() == [] and find_made(CODER, "q4_0") is None
    unknown = _file(home / "other.gguf")
    record_made(unknown, variant=None, quant=None, made_from="x")
    assert [e.ref for e in list_local(load_catalog())] == [str(unknown.resolve())]


def test_select_marks_local_files_and_offers_made_quants() -> None:
    coder = load_catalog().get(CODER)
    local = frozenset({(CODER, "q6_k"), (CODER, "q8_0")})
    req = SelectRequest("code", "cpu", 64 * GB, 40 * GB, 8192, local=local)
    assert _with_local(coder, [], req) == []  # nothing added where the device offers no llama.cpp ladder
    options = _with_local(coder, DEVICE_FORMATS["cpu"](coder, None, False), req)
    marks = {o.quant.name: (o.official, o.local) for o in options}
    assert (marks["q8_0"], marks["q6_k"], marks["q4_k_m"]) == ((True, True), (False, True), (True, False))
    best = select([coder], req).recommendations[0]
    assert best.option.local and "already on this machine" in best.why
    plain = select([coder], dataclasses.replace(req, local=frozenset())).recommendations[0]
    assert not plain.option.local
