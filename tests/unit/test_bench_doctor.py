"""Doctor checks one by one (on synthetic states and tiny GGUF files), the verdict and the CLI's exit code."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest
from _models_fixtures import write_tiny_gguf

import qwenkit.cli.bench_cmds  # noqa: F401  (registers bench and doctor)
from qwenkit.bench import doctor_checks
from qwenkit.bench.doctor import (
    Check,
    CheckResult,
    DoctorState,
    Status,
    Verdict,
    run_check,
    run_doctor,
    verdict_of,
)
from qwenkit.bench.doctor_checks import (
    REBUILD_HINT,
    check_disk,
    check_llama_cpp,
    check_memory,
    check_model,
    check_precision,
    missing_cpu_features,
    parse_system_info,
)
from qwenkit.catalog.hardware import CpuInfo, GpuInfo, HardwareInfo
from qwenkit.cli import main

GiB = 1024**3


def hardware(ram_free: float = 16, gpus: tuple[GpuInfo, ...] = ()) -> HardwareInfo:
    cpu = CpuInfo("Test CPU", 2, 4)
    return HardwareInfo(cpu, int(32 * GiB), int(ram_free * GiB), "/tmp", 100 * GiB, gpus)


def state(**kw: object) -> DoctorState:
    base: dict[str, object] = {"ref": None, "explicit_ref": False, "context": 4096, "backend": "auto",
                               "generate": False, "hardware": hardware()}
    base.update(kw)
    return DoctorState(**base)  # type: ignore[arg-type]


def truncated(tmp_path: Path) -> Path:
    good = write_tiny_gguf(tmp_path / "good.gguf")
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size - 200])
    return bad


def test_system_info_parsing_and_missing_cpu_features() -> None:
    build = parse_system_info("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 0 | FMA = 1 | OPENMP = 1 |")
    assert build == {"SSE3": True, "AVX": True, "AVX2": True, "AVX512": False, "FMA": True, "OPENMP": True}
    flags = frozenset({"avx", "avx2", "fma", "avx512f", "avx512_vnni"})
    assert missing_cpu_features(build, flags) == ["AVX512", "AVX512_VNNI"]
    assert missing_cpu_features(build, frozenset({"avx", "avx2"})) == []


def test_a_build_with_the_amx_kernels_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    # ggml_backend_amx_mul_mat segfaults on the first decode of the Qwen2.5 GGUFs: such a build is broken.
    build = b"CPU : AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | OPENMP = 1 |"
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: build)
    flags = frozenset({"avx", "avx2", "avx512f", "avx512_vnni", "amx_int8"})
    result = check_llama_cpp(state(cpu_flags=flags))
    assert result.status is Status.FAIL and "AMX_INT8" in result.summary
    assert result.recommendation == REBUILD_HINT and "-mno-amx-int8" in REBUILD_HINT
    # Built without them on an AMX CPU: nothing is missing.
    no_amx = build.replace(b"AMX_INT8 = 1 | ", b"")
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: no_amx)
    assert check_llama_cpp(state(cpu_flags=flags)).status is not Status.FAIL
    assert missing_cpu_features(parse_system_info(no_amx.decode()), flags) == []


def test_a_build_without_avx512_on_an_avx512_cpu_is_degraded(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    # A fixed build description, so the verdict does not depend on what this machine's compiler chose.
    build = b"CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | OPENMP = 1 |"
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: build)
    info = parse_system_info(build.decode())
    result = check_llama_cpp(state(cpu_flags=frozenset({"avx", "avx2", "fma", "f16c", "avx512f"})))
    assert result.status is Status.WARN and "AVX512" in result.summary
    assert result.recommendation == REBUILD_HINT
    ok = check_llama_cpp(state(cpu_flags=frozenset(k.lower() for k, on in info.items() if on)))
    assert ok.status is Status.OK and llama_cpp.__version__ in ok.summary


def test_verdict_is_the_worst_status_with_its_reason() -> None:
    ok, warn, fail = (CheckResult(n, s, f"{n} said so") for n, s in (("a", Status.OK), ("b", Status.WARN),
                                                                     ("c", Status.FAIL)))
    skip = CheckResult("d", Status.SKIP, "skipped")
    assert verdict_of([ok, skip]) == (Verdict.HEALTHY, None)
    assert verdict_of([ok, warn]) == (Verdict.DEGRADED, "b: b said so")
    assert verdict_of([warn, fail, ok]) == (Verdict.UNHEALTHY, "c: c said so")


def test_a_crashing_check_is_a_failure_and_the_others_still_run() -> None:
    def boom(_: DoctorState) -> CheckResult:
        raise RuntimeError("kaput")

    fine = Check("fine", lambda s: CheckResult("fine", Status.OK, "x"))
    report = run_doctor(state(), [Check("boom", boom), fine])
    assert [r.status for r in report.checks] == [Status.FAIL, Status.OK]
    assert "RuntimeError: kaput" in report.checks[0].summary
    assert report.verdict is Verdict.UNHEALTHY and report.exit_code == 1


def test_a_truncated_gguf_fails_the_model_check(tmp_path: Path) -> None:
    s = state(ref=str(truncated(tmp_path)), explicit_ref=True)
    result = run_check(Check("model", check_model), s)
    assert result.status is Status.FAIL and "truncated or corrupt" in result.summary
    assert not s.model_ok and s.model_path is None


def test_a_missing_model_fails_only_when_named(tmp_path: Path) -> None:
    result = run_check(Check("model", check_model), state(ref=str(tmp_path / "none.gguf"), explicit_ref=True))
    assert result.status is Status.FAIL and "none.gguf" in result.summary


def test_a_good_gguf_passes_and_is_recorded(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "ok-q4_k_m.gguf")
    s = state(ref=str(path), explicit_ref=True)
    result = check_model(s)
    assert result.status is Status.OK and "intact" in result.summary
    assert s.model_ok and s.model_path == path and s.model_format == "gguf"


def test_context_that_does_not_fit_free_ram_is_degraded_with_a_context_that_does() -> None:
    s = state(variant_id="qwen2.5-7b-instruct", model_format="gguf", model_quant="q4_k_m", context=32768,
              hardware=hardware(ram_free=7))
    result = check_memory(s)
    assert result.status is Status.WARN and "does not fit" in result.summary
    assert result.recommendation is not None and "--context" in result.recommendation
    fits = check_memory(state(variant_id="qwen2.5-7b-instruct", model_format="gguf", model_quant="q4_k_m",
                              context=4096, hardware=hardware(ram_free=7)))
    assert fits.status is Status.OK
    hopeless = check_memory(state(variant_id="qwen2.5-72b-instruct", model_format="gguf",
                                  model_quant="q4_k_m", hardware=hardware(ram_free=4)))
    assert hopeless.status is Status.FAIL


def test_fp16_on_a_cpu_is_degraded_and_gpu_only_quants_fail() -> None:
    fp16 = check_precision(state(model_format="safetensors", model_quant="fp16"))
    assert fp16.status is Status.WARN and "q4_k_m" in (fp16.recommendation or "")
    assert check_precision(state(model_format="safetensors", model_quant="awq-int4")).status is Status.FAIL
    gpu = GpuInfo(0, "NVIDIA H100", 80 * GiB, 80 * GiB, (9, 0), "nvidia-smi")
    on_gpu = state(model_format="safetensors", hardware=hardware(gpus=(gpu,)))
    assert check_precision(on_gpu).status is Status.OK
    assert check_precision(state(model_format="gguf", model_quant="q4_k_m")).status is Status.OK


def test_a_model_larger_than_free_disk_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor_checks.shutil, "disk_usage", lambda _: usage(100 * GiB, 99 * GiB, 2 * GiB))
    result = check_disk(state(variant_id="qwen2.5-7b-instruct", model_quant="q4_k_m"))
    assert result.status is Status.FAIL and "needs" in result.summary
    small = check_disk(state(variant_id="qwen2.5-0.5b-instruct", model_quant="q4_k_m"))
    assert small.status is Status.OK


def test_cli_doctor_on_a_truncated_file_exits_1_with_one_clear_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", str(truncated(tmp_path)), "--no-generate"]) == 1
    out = capsys.readouterr().out
    status_line = next(line for line in out.splitlines() if line.startswith("status:"))
    assert "unhealthy" in status_line and "model:" in status_line and "truncated" in status_line


def test_cli_doctor_json_on_a_good_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    path = write_tiny_gguf(tmp_path / "tiny-q4_k_m.gguf")
    assert main(["doctor", str(path), "--no-generate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] in ("healthy", "degraded")
    names = [c["name"] for c in report["checks"]]
    assert names[:6] == ["python", "packages", "torch", "llama.cpp", "hardware", "model"]
    model = report["checks"][5]
    assert model["status"] == "ok"
    assert report["checks"][-1] == {"name": "generation", "status": "skip",
                                    "summary": "skipped (--no-generate)", "recommendation": None}
