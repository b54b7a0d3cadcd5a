"""`qwenkit run --image` through the installed entry point: a vision model reads the file; a text
model, a missing file and a file that is not an image are each one clear line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import run_qwenkit
from PIL import Image

from qwenkit.media import fit_image


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "chart.png"
    Image.effect_noise((300, 200), 40).convert("RGB").save(path)
    return path


def test_a_vision_model_reads_the_image(tiny_qwen2_5_vl_dir: Path, chart: Path) -> None:
    common = ("run", str(tiny_qwen2_5_vl_dir), "What is this?", "--backend", "transformers", "--max-tokens",
              "4", "--json")
    with_image = run_qwenkit(*common, "--image", str(chart), timeout=300)
    assert with_image.returncode == 0, with_image.stderr
    text_only = run_qwenkit(*common, timeout=300)
    assert text_only.returncode == 0, text_only.stderr
    grown = json.loads(with_image.stdout)["usage"]["prompt_tokens"] - json.loads(text_only.stdout)["usage"][
        "prompt_tokens"]
    assert grown == fit_image(200, 300).tokens + 2  # the pads and <|vision_start|>, <|vision_end|>


@pytest.mark.parametrize(("model", "image", "message"), [
    ("vl", "missing", "no image file at"),
    ("vl", "text", "not an image qwenkit reads"),
    ("text", "chart", "this model reads text only"),
])
def test_image_mistakes_are_one_line(tiny_qwen2_5_vl_dir: Path, tiny_qwen2_dir: Path, chart: Path,
                                     tmp_path: Path, model: str, image: str, message: str) -> None:
    text = tmp_path / "notes.png"
    text.write_text("these are notes, not pixels")
    paths = {"missing": tmp_path / "nope.png", "text": text, "chart": chart}
    directory = tiny_qwen2_5_vl_dir if model == "vl" else tiny_qwen2_dir
    proc = run_qwenkit("run", str(directory), "What is this?", "--backend", "transformers", "--image",
                       str(paths[image]), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
