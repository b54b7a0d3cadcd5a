"""Qwen2-VL and Qwen2.5-VL configs from catalog entries: full size they have the catalog's parameter
count and the released configs' facts; shrunk, transformers builds them and they read an image
prompt made by qwenkit's own pipeline (resize rule, token count, template expansion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from PIL import Image
from transformers import Qwen2VLImageProcessorPil

from qwenkit.catalog import load_catalog
from qwenkit.catalog.hf_vl_config import hf_vl_config_dict, mrope_section
from qwenkit.chat import encode_chat
from qwenkit.chat.hf_tokenizer import HFTokenizer
from qwenkit.errors import UsageError
from qwenkit.media import PixelBudget, VisionGrid, prepare_picture

CATALOG = load_catalog()
VL = [v for v in CATALOG.all() if v.arch.vision is not None and v.arch.vision.kind != "qwen3-vl-vision"
      and v.specialisation.value == "vl"]
TINY_TEXT = {"layers": 2, "hidden_size": 128, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 32,
             "intermediate_size": 256}
TINY_VISION = {"depth": 3, "hidden_size": 64, "intermediate_size": 128}


def build(config: dict[str, Any], device: str = "cpu") -> Any:
    cfg = transformers.AutoConfig.for_model(**config)
    cls = getattr(transformers, config["architectures"][0])
    with torch.device(device):
        return cls._from_config(cfg)


@pytest.mark.parametrize("v", VL, ids=lambda v: v.id)
def test_full_size_matches_the_catalog_count(v: Any) -> None:
    model = build(hf_vl_config_dict(v), "meta")
    assert sum(p.numel() for p in model.parameters()) == v.arch.parameter_count()


def test_facts_of_the_released_qwen2_5_vl_config() -> None:
    config = hf_vl_config_dict(CATALOG.get("qwen2.5-vl-3b-instruct"))
    vision, text = config["vision_config"], config["text_config"]
    assert config["model_type"] == "qwen2_5_vl" and config["image_token_id"] == 151655
    assert vision["fullatt_block_indexes"] == [7, 15, 23, 31] and vision["window_size"] == 112
    assert vision["num_heads"] == 16 and vision["out_hidden_size"] == text["hidden_size"] == 2048
    assert text["rope_scaling"] == {"type": "mrope", "mrope_section": [16, 24, 24]}


@pytest.mark.parametrize(("head_dim", "sections"), [(128, [16, 24, 24]), (64, [8, 12, 12]), (32, [4, 6, 6])])
def test_mrope_sections_scale_with_the_head(head_dim: int, sections: list[int]) -> None:
    assert mrope_section(head_dim) == sections and sum(sections) == head_dim // 2


def test_shrunk_vision_keeps_full_attention_in_its_last_block() -> None:
    variant = CATALOG.get("qwen2.5-vl-3b-instruct")
    config = hf_vl_config_dict(variant, TINY_VISION, vision_heads=4, **TINY_TEXT)
    assert config["vision_config"]["fullatt_block_indexes"] == [2]


@pytest.mark.parametrize(("model_id", "kwargs", "message"), [
    ("qwen2.5-0.5b-instruct", {}, "not a Qwen2-VL"),
    ("qwen2.5-vl-3b-instruct", {"vision": {"width": 3}}, "unknown vision override"),
    ("qwen2.5-vl-3b-instruct", {"vision": {"hidden_size": 60}}, "not a multiple of 16 heads"),
    ("qwen2.5-vl-3b-instruct", {"head_dim": 24}, "divisible by 16"),
])
def test_configs_that_cannot_be_built_say_why(model_id: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        hf_vl_config_dict(CATALOG.get(model_id), **kwargs)


@pytest.mark.parametrize("model_id", ["qwen2.5-vl-3b-instruct", "qwen2-vl-2b-instruct"])
def test_a_tiny_vl_model_reads_an_image_prompt_made_here(model_id: str, qwen3_tokenizer_dir: Path) -> None:
    variant = CATALOG.get(model_id)
    vision = dict(TINY_VISION, intermediate_size=256) if "qwen2-vl" in model_id else TINY_VISION
    torch.manual_seed(0)
    model = build(hf_vl_config_dict(variant, vision, vision_heads=4, **TINY_TEXT)).eval()
    tower = variant.arch.vision
    assert tower is not None
    grid = VisionGrid(tower.patch_size, tower.spatial_merge_size, tower.temporal_patch_size)
    budget = PixelBudget(56 * 56, 28 * 28 * 64)
    prepared = prepare_picture(Image.effect_noise((300, 200), 40).convert("RGB"), grid, budget)
    processor = Qwen2VLImageProcessorPil(min_pixels=budget.min_pixels, max_pixels=budget.max_pixels)
    pixels = processor(images=[prepared.image], return_tensors="pt")
    assert tuple(pixels["image_grid_thw"][0].tolist()) == prepared.fit.grid_thw  # not resized again
    tok = HFTokenizer.from_dir(qwen3_tokenizer_dir)
    messages = [{"role": "user", "content": [{"type": "image", "image": "x.png"},
                                             {"type": "text", "text": "What is this?"}]}]
    prompt = encode_chat(messages, tok, template="qwen2.5-vl", image_tokens=[prepared.tokens])
    ids = torch.tensor([prompt.ids])

    def answer() -> list[int]:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                 do_sample=False, pixel_values=pixels["pixel_values"],
                                 image_grid_thw=pixels["image_grid_thw"])
        return list(out[0, ids.shape[1]:].tolist())

    first = answer()  # the model checks that the image features fill exactly the pads we wrote
    assert len(first) == 8 and answer() == first
