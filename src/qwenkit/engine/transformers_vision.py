"""Images on the transformers backend: Qwen2-VL / Qwen2.5-VL prefill with M-RoPE positions.

The pictures arrive resized by ``qwenkit.media``, so transformers' image processor only normalizes
them and cuts them into patches (``do_resize=False``: a fitted size may itself lie just outside the
rule's 200:1 aspect limit, e.g. 28 x 5628 from 29 x 5615, which a second resize would refuse).
Positions are computed here, per sequence, with the model's own ``get_rope_index`` and passed in,
so nothing is left on the model object between sequences (transformers otherwise caches one
``rope_deltas`` per model, which batching breaks): a sequence's text after its images runs at
``kv_len + rope_delta`` on all three M-RoPE axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwenkit.media import VisionGrid

if TYPE_CHECKING:
    import torch

    from qwenkit.media import PreparedImage



@dataclass(frozen=True)
class VisionInputs:
    """What a vision-language model's forward takes besides the ids, for one prefill."""

    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    position_ids: torch.Tensor  # (3, 1, prompt length)
    rope_delta: int  # decode positions are kv_len + rope_delta


class VisionPrefill:
    """Built once per loaded VL model; ``None`` from ``for_model`` when the model reads no images."""

    def __init__(self, model: Any, grid: VisionGrid, image_token_id: int) -> None:
        from transformers import Qwen2VLImageProcessorPil

        self.model = model
        self.grid = grid
        self.image_token_id = image_token_id
        self.processor = Qwen2VLImageProcessorPil(
            patch_size=grid.patch_size, merge_size=grid.merge_size,
            temporal_patch_size=grid.temporal_patch_size,
        )  # fmt: skip

    @classmethod
    def for_model(cls, model: Any) -> VisionPrefill | None:
        config = model.config
        vision = getattr(config, "vision_config", None)
        token = getattr(config, "image_token_id", None)
        if vision is None or token is None or not hasattr(model, "model"):
            return None
        grid = VisionGrid(vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size)
        return cls(model, grid, int(token))

    def inputs(self, ids: torch.Tensor, images: tuple[PreparedImage, ...]) -> VisionInputs:
        import torch

        pictures = [image.image for image in images]
        pixels = self.processor(images=pictures, do_resize=False, return_tensors="pt")
        device = self.model.device
        grid_thw = pixels["image_grid_thw"].to(device)
        token_types = (ids == self.image_token_id).to(torch.int32)
        positions, deltas = self.model.model.get_rope_index(
            ids, token_types, image_grid_thw=grid_thw, attention_mask=torch.ones_like(ids)
        )
        dtype = next(self.model.parameters()).dtype
        return VisionInputs(pixels["pixel_values"].to(device, dtype), grid_thw, positions, int(deltas[0, 0]))
