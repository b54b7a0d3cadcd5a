"""Hardware detection: nvidia-smi parsing, the torch fallback rules, CPU/RAM/disk, bandwidth table."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from qwenkit.catalog.hardware import (
    DEFAULT_CPU_BANDWIDTH,
    DEFAULT_GPU_BANDWIDTH,
    GpuInfo,
    cpu_bandwidth,
    cpu_model,
    detect_gpus,
    detect_hardware,
    gpu_bandwidth,
    gpus_from_nvidia_smi,
    measure_memory_bandwidth,
    parse_nvidia_smi,
)

SMI_WITH_CC = "0, NVIDIA H200, 143771, 143190, 9.0\n1, NVIDIA GeForce RTX 4090, 24564, [N/A], 8.9\n"
SMI_NO_CC = "0, Tesla T4, 15360, 15000\n"


def test_parse_nvidia_smi_rows():
    gpus = parse_nvidia_smi(SMI_WITH_CC, with_cc=True)
    assert [g.name for g in gpus] == ["NVIDIA H200", "NVIDIA GeForce RTX 4090"]
    assert gpus[0].memory_total == 143771 * 1024**2
    assert gpus[0].memory_free == 143190 * 1024**2
    assert gpus[0].compute_capability == (9, 0)
    assert gpus[1].memory_free is None and gpus[1].usable_memory == 24564 * 1024**2
    assert gpus[1].compute_capability == (8, 9)
    assert all(g.source == "nvidia-smi" for g in gpus)


def test_parse_nvidia_smi_skips_junk_lines():
    text = "No devices were found\n\nx, y, z, w, v\n" + SMI_WITH_CC.splitlines()[0]
    assert [g.index for g in parse_nvidia_smi(text, with_cc=True)] == [0]


def test_old_driver_without_compute_cap_field_is_retried_without_it():
    calls: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> str | None:
        calls.append(argv)
        return None if any("compute_cap" in a for a in argv) else SMI_NO_CC

    gpus = gpus_from_nvidia_smi(run)
    assert gpus is not None and len(calls) == 2
    assert gpus[0].name == "Tesla T4" and gpus[0].compute_capability is None


def _torch_must_not_be_called() -> list[GpuInfo]:
    raise AssertionError("torch was consulted")


def test_torch_is_not_consulted_when_nvidia_smi_answers():
    gpus = detect_gpus(run=lambda argv: SMI_WITH_CC, has_module=lambda name: True,
                       torch_gpus=_torch_must_not_be_called)
    assert len(gpus) == 2


def test_nvidia_smi_answering_no_gpus_is_an_answer():
    gpus = detect_gpus(run=lambda argv: "", has_module=lambda n: True, torch_gpus=_torch_must_not_be_called)
    assert gpus == ()


def test_without_nvidia_smi_and_without_torch_there_are_no_gpus():
    asked: list[str] = []

    def has_module(name: str) -> bool:
        asked.append(name)
        return False

    gpus = detect_gpus(run=lambda argv: None, has_module=has_module, torch_gpus=_torch_must_not_be_called)
    assert gpus == ()
    assert asked == ["torch"]


def test_without_nvidia_smi_torch_is_asked_when_installed():
    fake = GpuInfo(0, "NVIDIA A100-SXM4-80GB", 80 * 1024**3, None, (8, 0), "torch")
    gpus = detect_gpus(run=lambda argv: None, has_module=lambda name: True, torch_gpus=lambda: [fake])
    assert gpus == (fake,)


def test_detecting_gpus_through_nvidia_smi_does_not_import_torch():
    code = textwrap.dedent(
        f"""
        import sys
        from qwenkit.catalog.hardware import detect_gpus
        gpus = detect_gpus(run=lambda argv: {SMI_WITH_CC!r})
        print(len(gpus), "torch" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["2", "False"]


@pytest.mark.parametrize(
    "name, gbps",
    [
        ("NVIDIA H200", 4800), ("NVIDIA H100 80GB HBM3", 3350), ("NVIDIA H100 PCIe", 2000),
        ("NVIDIA A100-SXM4-80GB", 2039), ("NVIDIA A100-PCIE-40GB", 1555), ("NVIDIA GeForce RTX 4090", 1008),
        ("NVIDIA A10G", 600), ("NVIDIA L4", 300), ("NVIDIA L40S", 864), ("Tesla T4", 320),
        ("NVIDIA GH200 480GB", 4000), ("NVIDIA RTX A4000", 448),
    ],
)
def test_gpu_bandwidth_table(name, gbps):
    assert gpu_bandwidth(name) == gbps * 1e9


def test_unknown_devices_get_the_class_default():
    assert gpu_bandwidth("Some Future GPU") == DEFAULT_GPU_BANDWIDTH
    assert cpu_bandwidth("AMD EPYC 7763 64-Core Processor") == DEFAULT_CPU_BANDWIDTH == 40e9
    assert cpu_bandwidth("Apple M2 Max") == 400e9


def test_cpu_model_from_proc_cpuinfo(tmp_path: Path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n")
    assert cpu_model(run=lambda argv: None, cpuinfo=info) == "Intel(R) Xeon(R) Gold 6338"
    assert cpu_model(run=lambda argv: None, cpuinfo=tmp_path / "missing")  # falls back, never empty


def test_detect_hardware_reports_this_machine(tmp_path: Path):
    hw = detect_hardware(tmp_path / "not" / "yet" / "there", gpus=False)
    assert hw.ram_total >= hw.ram_available > 0
    assert hw.disk_free is not None and hw.disk_free > 0
    assert hw.cpu.logical_cores is not None and hw.cpu.logical_cores >= 1
    assert hw.cpu.physical_cores is None or hw.cpu.physical_cores <= hw.cpu.logical_cores
    assert hw.gpus == () and not hw.has_cuda and hw.best_gpu() is None


def test_measured_bandwidth_is_a_plausible_figure():
    measured = measure_memory_bandwidth(size_bytes=32 * 1024**2, repeats=2)
    assert 1e8 < measured < 1e13
