"""The default recipe: LoRA rank, learning rate, steps and replay chosen from the data size.

Small data is where forgetting bites: plain peft on 32 examples of one fact (r 16, lr 3e-4, 30 steps)
taught the fact and made the 0.5B answer "What is the capital of France?" with the fact's name. Two
things guard against that by default: a low rank and learning rate for small data, and *replay*: the
base model's own answers to general prompts (generated once, cached) are mixed into the training
set, so the update is asked to keep those answers while it learns the new ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qwenkit.finetune.config import TuneConfig

# General prompts whose base answers are replayed; none of them is in the forgetting probe.
REPLAY_PROMPTS: tuple[str, ...] = (
    "What is the capital of Italy?", "What is the capital of Japan?", "What is the capital of Canada?",
    "What is the capital of Spain?", "What is the capital of Egypt?", "What is the capital of Australia?",
    "How many days are in a week?", "How many legs does a spider have?", "What is 9 times 6?",
    "What is 15 plus 27?", "What is 100 divided by 4?", "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?", "What is the boiling point of water in Celsius?",
    "Name the largest planet in the solar system.", "What is the chemical symbol for gold?",
    "Write a Python function that returns the square of a number.",
    "Write a Python expression that reverses a string s.", "What does HTTP stand for?",
    "What is the opposite of hot?", "How many continents are there?",
    "What is the freezing point of water in Fahrenheit?",
    "Which ocean is the largest?", "Translate 'thank you' into French.",
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    lora_r: int
    lora_alpha: int
    lr: float
    steps: int
    replay: int
    eval_every: int
    save_every: int


def plan(config: TuneConfig, n_train: int) -> Plan:
    """Fill what the config left open; an explicit setting always wins."""
    small = n_train < 200
    r = config.lora_r or (8 if small else 16 if n_train < 5000 else 32)
    alpha = config.lora_alpha or 2 * r
    lr = config.lr or (2e-4 if small else 1e-4)
    replay = config.replay if config.replay is not None else min(len(REPLAY_PROMPTS), n_train)
    per_step = config.batch_size * config.grad_accum
    if config.max_steps is not None:
        steps = config.max_steps
    else:
        epochs = config.epochs or (3.0 if small else 2.0 if n_train < 5000 else 1.0)
        steps = max(1, math.ceil(epochs * (n_train + replay) / per_step))
    eval_every = config.eval_every or max(1, steps // 5)
    save_every = config.save_every or max(1, steps // 4)
    return Plan(r, alpha, lr, steps, replay, eval_every, save_every)
