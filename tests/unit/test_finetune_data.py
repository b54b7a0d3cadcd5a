"""Data formats, per-line validation with line numbers, the held-out split, and config file vs flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit.errors import UsageError
from qwenkit.finetune.config import DataFormat, Overlong, TuneConfig
from qwenkit.finetune.data import load_jsonl, split_holdout


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def test_three_formats_are_detected_and_read_alike(tmp_path: Path) -> None:
    sharegpt = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    alpaca = {"instruction": "Hi", "input": "", "output": "Hello"}
    for row, fmt in (
        (GOOD, DataFormat.MESSAGES),
        (sharegpt, DataFormat.SHAREGPT),
        (alpaca, DataFormat.ALPACA),
    ):
        data = load_jsonl(_write(tmp_path / f"{fmt.value}.jsonl", [row, row]))
        assert data.format is fmt
        assert [m["role"] for m in data.conversations[0].messages] == ["user", "assistant"]
        assert data.conversations[0].messages[1]["content"] == "Hello"
        assert [c.line for c in data.conversations] == [1, 2]


def test_sharegpt_function_calls_become_tool_calls(tmp_path: Path) -> None:
    call = json.dumps({"name": "f", "arguments": {"x": 1}})
    row = {"conversations": [
        {"from": "human", "value": "go"}, {"from": "function_call", "value": call},
        {"from": "observation", "value": "1"}, {"from": "gpt", "value": "done"},
    ]}  # fmt: skip
    msgs = load_jsonl(_write(tmp_path / "d.jsonl", [row])).conversations[0].messages
    assert msgs[1]["tool_calls"][0]["function"]["name"] == "f" and msgs[2]["role"] == "tool"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "line 2: (line): not JSON"),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "line 2: messages: no assistant turn"),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},
            "line 2: messages[0].content",
        ),
        ({"messages": [{"role": "boss", "content": "x"}]}, "line 2: messages[0].role"),
        ({"something": 1}, "line 2: messages: missing"),  # the format is line 1's
    ],
)
def test_a_bad_line_is_named_with_its_field(tmp_path: Path, bad: object, expected: str) -> None:
    path = _write(tmp_path / "d.jsonl", [GOOD, bad, GOOD])
    with pytest.raises(UsageError) as info:
        load_jsonl(path)
    assert expected in str(info.value) and "1 invalid line" in str(info.value)
    skipped = load_jsonl(path, skip_invalid=True)
    assert [c.line for c in skipped.conversations] == [1, 3] and [b.line for b in skipped.bad] == [2]


def test_declared_format_wins_and_reports_the_missing_field(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="line 1: output: missing"):
        load_jsonl(_write(tmp_path / "d.jsonl", [{"instruction": "x"}]), DataFormat.ALPACA)


def test_holdout_split_is_random_but_seeded() -> None:
    from qwenkit.finetune.data import Conversation

    items = [Conversation(i, ()) for i in range(1, 21)]
    train, held = split_holdout(items, 0.1, seed=3)
    assert len(held) == 2 and len(train) == 18 and not {c.line for c in held} & {c.line for c in train}
    assert split_holdout(items, 0.1, seed=3) == (train, held)
    assert split_holdout(items[:1], 0.1, seed=3) == (items[:1], [])


def test_config_file_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "tune.toml"
    toml.write_text(
        'base = "m"\ndata = "d.jsonl"\noutput = "out"\nlora-r = 8\nlr = 1e-4\noverlong = "skip"\n'
    )
    yaml = tmp_path / "tune.yaml"
    yaml.write_text(
        "tune:\n  base: m\n  data: d.jsonl\n  output: out\n  lora_r: 8\n  lr: 0.0001\n  overlong: skip\n"
    )
    a, b = TuneConfig.build({}, toml), TuneConfig.build({}, yaml)
    assert a == b and a.lora_r == 8 and a.overlong is Overlong.SKIP and a.data == Path("d.jsonl")
    c = TuneConfig.build({"lora_r": 32, "lr": None}, toml)  # a flag overrides; an unset flag does not
    assert c.lora_r == 32 and c.lr == 1e-4
    with pytest.raises(UsageError, match="unknown tune setting 'lora_rank'"):
        TuneConfig.build({"lora_rank": 3}, toml)
    with pytest.raises(UsageError, match="overlong 'drop' is not one of"):
        TuneConfig.build({"overlong": "drop"}, toml)
    with pytest.raises(UsageError, match="lora_r must be a whole number"):
        TuneConfig.build({"lora_r": 0}, toml)
    with pytest.raises(UsageError, match="'data' is required"):
        TuneConfig.build({"base": "m", "output": "o"})
    broken = tmp_path / "bad.toml"
    broken.write_text("base = \n")
    with pytest.raises(UsageError, match="is not valid"):
        TuneConfig.build({}, broken)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("base: modèle\n".encode("latin-1"))
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        TuneConfig.build({}, latin1)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lr: abc", "lr must be a number, got 'abc'"),
        ("lr: .nan", "lr must be a number"),
        ("epochs: .inf", "epochs must be a number"),
        ("lr: true", "lr must be a number"),
        ("batch_size: 2.5", "batch_size must be a whole number"),
        ("seed: '3'", "seed must be a whole number"),
        ("threads: 0", "threads must be a whole number of at least 1"),
        ("qlora: 'yes'", "qlora must be true or false"),
        ("target: [q_proj]", "target must be text"),
    ],
)
def test_a_config_files_value_of_the_wrong_kind_is_named(tmp_path: Path, line: str, expected: str) -> None:
    config = tmp_path / "tune.yaml"
    config.write_text(f"base: m\ndata: d.jsonl\noutput: out\n{line}\n")
    with pytest.raises(UsageError, match=expected):
        TuneConfig.build({}, config)


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path: Path) -> None:
    """PyYAML reads ``2e-4`` as a string (YAML 1.1 wants ``2.0e-4``); it is what the user meant."""
    config = tmp_path / "tune.yaml"
    config.write_text("base: m\ndata: d.jsonl\noutput: out\nlr: 2e-4\nepochs: 2\n")
    built = TuneConfig.build({}, config)
    assert built.lr == 2e-4 and built.epochs == 2.0


def test_a_base_that_is_not_qwen_is_refused_before_loading(tmp_path: Path, qwen3_tokenizer_dir: Path) -> None:
    import shutil
    import struct

    from qwenkit.finetune.base import locate_base

    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    header = b"{}"
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    shutil.copy(qwen3_tokenizer_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(UsageError, match="is a 'llama' model; qwenkit tune trains Qwen models"):
        locate_base(str(tmp_path))
