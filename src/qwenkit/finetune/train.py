"""The training loop: peft LoRA on transformers' ``Trainer`` with our own labels.

Why not trl's SFTTrainer: its value is tokenizing chat data and masking prompts, and both are done
here by ``encode_chat`` so that training sees exactly what serving shows; what is left (a loop with
checkpoints, resume, eval, accumulation) is ``Trainer``'s, so trl would add a dependency and a second
tokenization path for nothing. The Trainer's loss is ours (finetune/loss.py): the same number, with
the output layer applied only where a label is.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.errors import QwenkitError, UsageError
from qwenkit.finetune.labels import IGNORE, TrainExample

Say = Callable[[str], None]
CHECKPOINTS = "checkpoints"


class TrainingInterrupted(QwenkitError):
    """Ctrl-C during training: a checkpoint was written; the message says how to resume."""

    exit_code = 130


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class TokenDataset:
    """The examples as the Trainer's dataset (a sequence of dicts)."""

    def __init__(self, examples: Sequence[TrainExample]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = self.examples[i]
        return {"input_ids": list(ex.ids), "labels": list(ex.labels)}


def make_collator(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Right padding: pad ids are masked out of attention and loss."""
    import torch

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [pad_id] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    return collate


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _callbacks(history: History, say: Say, stop: threading.Event) -> list[Any]:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        """One line per logged step: loss, tokens/s, ETA; eval loss when measured."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.start, self.start_tokens, self.start_step = (
                time.monotonic(),
                state.num_input_tokens_seen,
                state.global_step,
            )

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
        ) -> None:
            logs = logs or {}
            elapsed = time.monotonic() - self.start
            history.tokens = int(state.num_input_tokens_seen - self.start_tokens)
            history.seconds = elapsed
            if "eval_loss" in logs:
                history.eval_steps.append(state.global_step)
                history.eval_loss.append(logs["eval_loss"])
                say(f"step {state.global_step}/{state.max_steps}  eval loss {logs['eval_loss']:.4f}")
            if "loss" in logs:
                history.steps.append(state.global_step)
                history.loss.append(logs["loss"])
                done = state.global_step - self.start_step
                eta = elapsed / done * (state.max_steps - state.global_step) if done else 0.0
                say(
                    f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                    f"{history.tokens_per_second:.0f} tok/s  ETA {_fmt_seconds(eta)}"
                )

    class Interrupt(TrainerCallback):  # type: ignore[misc]
        """Ctrl-C (or ``stop``): save a checkpoint at the end of this step, then stop."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if stop.is_set():
                control.should_save = True
                control.should_training_stop = True

    return [Progress(), Interrupt()]


@contextmanager
def sigint_sets(stop: threading.Event) -> Iterator[None]:
    """While training, Ctrl-C asks for a clean stop (a second one aborts at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class LoopSettings:
    output: Path
    steps: int
    lr: float
    batch_size: int
    grad_accum: int
    seed: int
    eval_every: int
    save_every: int
    device: str
    bf16: bool
    gradient_checkpointing: bool
    resume: bool


def last_checkpoint(output: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = output / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _arguments(s: LoopSettings, has_eval: bool) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(s.output / CHECKPOINTS),
        max_steps=s.steps,
        learning_rate=s.lr,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        warmup_steps=max(1, s.steps // 10),
        lr_scheduler_type="cosine",
        weight_decay=0.0,
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=s.eval_every,
        save_strategy="steps",
        save_steps=s.save_every,
        save_total_limit=2,
        seed=s.seed,
        data_seed=s.seed,
        use_cpu=s.device == "cpu",
        bf16=s.bf16,
        gradient_checkpointing=s.gradient_checkpointing,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        save_only_model=False,
    )


def run_loop(
    model: Any,
    train: Sequence[TrainExample],
    held: Sequence[TrainExample],
    pad_id: int,
    s: LoopSettings,
    say: Say,
    stop: threading.Event | None = None,
) -> History:
    """Train ``model`` (already LoRA-wrapped); checkpoints under ``output/checkpoints``."""
    from transformers.trainer_callback import PrinterCallback

    from qwenkit.finetune.loss import labelled_loss_trainer

    stop = stop or threading.Event()
    resume_from = last_checkpoint(s.output) if s.resume else None
    if s.resume and resume_from is None:
        raise UsageError(f"nothing to resume: no checkpoint under {s.output / CHECKPOINTS}", param="resume")
    history = History()
    trainer = labelled_loss_trainer()(
        model=model,
        args=_arguments(s, bool(held)),
        train_dataset=TokenDataset(train),
        eval_dataset=TokenDataset(held) if held else None,
        data_collator=make_collator(pad_id),
        callbacks=_callbacks(history, say, stop),
    )
    trainer.remove_callback(PrinterCallback)  # our Progress line replaces its raw dicts
    if resume_from:
        say(f"resuming from {resume_from}")
    try:
        with sigint_sets(stop):
            trainer.train(resume_from_checkpoint=resume_from)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise QwenkitError(
                f"the disk filled while writing under {s.output}",
                hint="free some space, then run the same command with --resume",
            ) from exc
        raise
    if stop.is_set():
        raise TrainingInterrupted(
            f"interrupted at step {trainer.state.global_step}/{s.steps}; "
            f"a checkpoint is in {s.output / CHECKPOINTS}",
            hint="to continue, run the same command again with --resume",
        )
    return history
