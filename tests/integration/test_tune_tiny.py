"""Training on a tiny random Qwen2: Ctrl-C writes a checkpoint, and resuming reaches the same final
loss as an uninterrupted run with the same seed; the run writes an adapter, a report and a loss curve."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from qwenkit.finetune import train as train_module
from qwenkit.finetune.config import TuneConfig
from qwenkit.finetune.run import tune_config
from qwenkit.finetune.train import TrainingInterrupted

pytestmark = pytest.mark.slow


def _data(path: Path, n: int = 12) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": str(2 * i)},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(model: Path, data: Path, out: Path, **kw: Any) -> TuneConfig:
    values: dict[str, Any] = dict(
        base=str(model), data=data, output=out, max_steps=6, save_every=2, eval_every=3, batch_size=2,
        lora_r=4, lr=1e-2, replay=0, probe=False, seed=7, eval_fraction=0.2, threads=1,
    )  # fmt: skip
    values.update(kw)
    return TuneConfig.build(values)


def _interrupt_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGINT, raised by the process itself at the end of ``step``."""
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == step:
                signal.raise_signal(signal.SIGINT)

    original = train_module._callbacks
    monkeypatch.setattr(train_module, "_callbacks", lambda *a: [CtrlC(), *original(*a)])


def test_interrupted_run_resumes_to_the_same_final_loss(
    tiny_qwen2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp_path / "train.jsonl")
    lines: list[str] = []
    straight = tune_config(_config(tiny_qwen2_dir, data, tmp_path / "a"), say=lines.append)
    assert straight.history.steps[-1] == 6 and len(straight.history.eval_loss) == 2
    assert any("tok/s" in line and "ETA" in line for line in lines)

    _interrupt_at(3, monkeypatch)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3/6") as info:
        tune_config(_config(tiny_qwen2_dir, data, tmp_path / "b"), say=lines.append)
    assert "--resume" in str(info.value) and (tmp_path / "b" / "checkpoints" / "checkpoint-3").is_dir()
    monkeypatch.undo()

    resumed = tune_config(_config(tiny_qwen2_dir, data, tmp_path / "b", resume=True), say=lines.append)
    assert resumed.history.steps == [4, 5, 6]
    assert resumed.history.loss[-1] == pytest.approx(straight.history.loss[-1], rel=1e-4)
    assert straight.history.loss[-1] < straight.history.loss[0]  # it learned something

    out = tmp_path / "a"
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "loss.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["lora_r"] == 4 and report["data"]["eval_examples"] == 2
    assert report["speed"]["tokens_per_second"] > 0


def test_resume_without_a_checkpoint_is_a_usage_error(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    from qwenkit.errors import UsageError

    data = _data(tmp_path / "train.jsonl")
    with pytest.raises(UsageError, match="nothing to resume"):
        tune_config(_config(tiny_qwen2_dir, data, tmp_path / "c", resume=True), say=lambda _: None)


def test_qlora_on_cpu_is_refused_before_loading(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    from qwenkit.errors import UsageError

    data = _data(tmp_path / "train.jsonl")
    with pytest.raises(UsageError, match="needs a CUDA GPU"):
        tune_config(
            _config(tiny_qwen2_dir, data, tmp_path / "d", qlora=True, device="cpu"), say=lambda _: None
        )


@pytest.mark.gpu
def test_qlora_trains_on_a_gpu(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    """nf4 base through bitsandbytes, bf16 compute: the loss falls and a loadable adapter is written
    (speed and memory at 1.5B size: benchmarks/bench_tune_gpu.py)."""
    data = _data(tmp_path / "train.jsonl")
    result = tune_config(
        _config(tiny_qwen2_dir, data, tmp_path / "q", qlora=True, device="cuda", threads=None),
        say=lambda _: None,
    )
    assert (result.adapter / "adapter_config.json").is_file()
    assert result.history.loss[-1] < result.history.loss[0]


def test_a_full_disk_is_one_clear_error(
    tiny_qwen2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import transformers

    from qwenkit.errors import QwenkitError

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.Trainer, "train", full)
    data = _data(tmp_path / "train.jsonl")
    with pytest.raises(QwenkitError, match="the disk filled") as info:
        tune_config(_config(tiny_qwen2_dir, data, tmp_path / "e"), say=lambda _: None)
    assert "--resume" in str(info.value)


def test_probe_and_replay_run_on_a_tiny_model(
    tiny_qwen2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe compares the adapter off and on; replay answers are generated once, then cached."""
    data = _data(tmp_path / "train.jsonl")
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path / "home"))
    config = _config(tiny_qwen2_dir, data, tmp_path / "f", probe=True, replay=4, max_steps=2)
    result = tune_config(config, say=lambda _: None)
    assert result.probe is not None and len(result.probe.answers) >= 10
    assert result.probe.ppl_base > 0 and result.probe.ppl_tuned > 0
    assert list((tmp_path / "home" / "tune-replay").glob("*.json"))
    assert "Forgetting probe" in (tmp_path / "f" / "report.md").read_text()
