"""The training loss over labelled positions only equals transformers' own loss, and so do its gradients.

On the tiny Qwen2 with LoRA on every linear layer (and, in one case, on the output layer too): a batch of
two right-padded rows whose labels cover only parts of each row, with and without the Trainer's
``num_items_in_batch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from peft import LoraConfig, get_peft_model

from qwenkit.finetune.labels import IGNORE
from qwenkit.finetune.loss import labelled_loss
from qwenkit.finetune.train import make_collator

PAD = 151643


def _lora_model(path: Path, targets: str | list[str]) -> Any:
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM", init_lora_weights=False
    )
    return get_peft_model(model, config)


def _batch() -> dict[str, Any]:
    ids = [
        [9707, 11, 1879, 0, 358, 1079, 264, 1614, 13, 3555, 374, 220, 17],
        [785, 3974, 13876, 38835, 34208, 916],
    ]
    labels = [[IGNORE] * 8 + row[8:] for row in ids[:1]] + [[IGNORE, IGNORE, IGNORE, 38835, IGNORE, 916]]
    return make_collator(PAD)(
        [{"input_ids": i, "labels": label} for i, label in zip(ids, labels, strict=True)]
    )


def _loss_and_grads(model: Any, loss: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return loss.item(), grads


@pytest.mark.parametrize(
    "targets", ["all-linear", ["q_proj", "down_proj", "lm_head"]], ids=["all-linear", "with-lm-head"]
)
@pytest.mark.parametrize("items", [None, 7], ids=["mean", "num-items"])
def test_labelled_loss_equals_the_models_loss(tiny_qwen2_dir: Path, targets: Any, items: int | None) -> None:
    model = _lora_model(tiny_qwen2_dir, targets)
    batch = _batch()
    kwargs = {} if items is None else {"num_items_in_batch": torch.tensor(items)}
    expected, expected_grads = _loss_and_grads(model, model(**batch, **kwargs).loss)
    ours = labelled_loss(model, batch, None if items is None else torch.tensor(items))
    assert ours is not None
    got, grads = _loss_and_grads(model, ours)
    assert got == pytest.approx(expected, rel=1e-5)
    assert grads.keys() == expected_grads.keys() and grads
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_other_inputs_fall_back_to_the_models_own_loss(tiny_qwen2_dir: Path) -> None:
    model = _lora_model(tiny_qwen2_dir, "all-linear")
    batch = {**_batch(), "position_ids": torch.arange(13).unsqueeze(0).expand(2, -1)}
    assert labelled_loss(model, batch) is None
