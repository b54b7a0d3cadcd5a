"""What this machine has: CPU, RAM, free disk, CUDA GPUs, and a memory-bandwidth figure.

GPUs come from ``nvidia-smi`` when it answers; torch is asked only when nvidia-smi is absent or
fails, and only if torch is installed (``find_spec``), because importing torch costs seconds and
hundreds of MB. Bandwidth is not measured by default: a figure per device class (a table by GPU
name, ~40 GB/s for a desktop DDR CPU) that the caller can override or measure.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

GB = 10**9

DEFAULT_CPU_BANDWIDTH = 40 * GB  # dual-channel DDR4/DDR5 desktop, what llama.cpp decode sees
DEFAULT_GPU_BANDWIDTH = 300 * GB  # an unknown CUDA GPU: assume a modest one

# Peak memory bandwidth by GPU name (GB/s, vendor specs). Most specific first: the first
# substring found in the lower-cased name wins.
GPU_BANDWIDTH_GBPS: tuple[tuple[str, float], ...] = (
    ("gb200", 8000), ("b200", 8000), ("gh200", 4000), ("h200", 4800),
    ("h100 nvl", 3900), ("h100 pcie", 2000), ("h100", 3350), ("h800", 3350), ("h20", 4000),
    ("a100-sxm4-80gb", 2039), ("a100 80gb pcie", 1935), ("a100", 1555), ("a800", 2039),
    ("rtx a4000", 448), ("rtx a5000", 768), ("l40s", 864), ("l40", 864), ("l4", 300), ("a40", 696),
    ("a30", 933), ("a10g", 600), ("a10", 600),
    ("rtx pro 6000", 1792), ("rtx 6000 ada", 960), ("rtx a6000", 768), ("a6000", 768),
    ("rtx 5090", 1792), ("rtx 5080", 960), ("rtx 5070 ti", 896), ("rtx 5070", 672),
    ("rtx 4090", 1008), ("rtx 4080", 717), ("rtx 4070 ti", 504), ("rtx 4070", 504), ("rtx 4060 ti", 288),
    ("rtx 4060", 272), ("rtx 3090 ti", 1008), ("rtx 3090", 936), ("rtx 3080 ti", 912), ("rtx 3080", 760),
    ("rtx 3070", 448), ("rtx 3060", 360), ("titan rtx", 672), ("rtx 2080 ti", 616), ("v100", 900),
    ("t4", 320), ("p100", 732),
)

# Unified-memory CPUs whose bandwidth is far above a DDR desktop's.
CPU_BANDWIDTH_GBPS: tuple[tuple[str, float], ...] = (
    ("apple m4 max", 546), ("apple m4 pro", 273), ("apple m4", 120),
    ("apple m3 max", 400), ("apple m3 pro", 150), ("apple m3", 100),
    ("apple m2 ultra", 800), ("apple m2 max", 400), ("apple m2 pro", 200), ("apple m2", 100),
    ("apple m1 ultra", 800), ("apple m1 max", 400), ("apple m1 pro", 200), ("apple m1", 68),
)


def _lookup(table: Sequence[tuple[str, float]], name: str, default: float) -> float:
    lowered = name.lower()
    for key, gbps in table:
        if key in lowered:
            return gbps * GB
    return default


def gpu_bandwidth(name: str) -> float:
    """Peak bytes/s of a GPU by its name; ``DEFAULT_GPU_BANDWIDTH`` when the name is unknown."""
    return _lookup(GPU_BANDWIDTH_GBPS, name, DEFAULT_GPU_BANDWIDTH)


def cpu_bandwidth(model: str) -> float:
    return _lookup(CPU_BANDWIDTH_GBPS, model, DEFAULT_CPU_BANDWIDTH)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total: int
    memory_free: int | None
    compute_capability: tuple[int, int] | None
    source: str  # "nvidia-smi" or "torch"

    @property
    def bandwidth(self) -> float:
        return gpu_bandwidth(self.name)

    @property
    def usable_memory(self) -> int:
        return self.memory_free if self.memory_free is not None else self.memory_total


@dataclass(frozen=True)
class CpuInfo:
    model: str
    physical_cores: int | None
    logical_cores: int | None

    @property
    def bandwidth(self) -> float:
        return cpu_bandwidth(self.model)


@dataclass(frozen=True)
class HardwareInfo:
    cpu: CpuInfo
    ram_total: int
    ram_available: int
    disk_path: str
    disk_free: int | None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)

    @property
    def has_cuda(self) -> bool:
        return bool(self.gpus)

    def best_gpu(self) -> GpuInfo | None:
        return max(self.gpus, key=lambda g: g.usable_memory, default=None)


Runner = Callable[[Sequence[str]], str | None]


def run_command(argv: Sequence[str], timeout: float = 10.0) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


_SMI_FIELDS = "index,name,memory.total,memory.free"


def parse_nvidia_smi(text: str, with_cc: bool) -> list[GpuInfo]:
    """Parse ``--query-gpu=index,name,memory.total,memory.free[,compute_cap]`` rows
    (``--format=csv,noheader,nounits``; memory in MiB)."""
    gpus = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < (5 if with_cc else 4):
            continue
        try:
            index, total = int(cells[0]), int(float(cells[2])) * 1024**2
        except ValueError:
            continue
        free = int(float(cells[3])) * 1024**2 if _is_number(cells[3]) else None
        cc = _parse_cc(cells[4]) if with_cc else None
        gpus.append(GpuInfo(index, cells[1], total, free, cc, "nvidia-smi"))
    return gpus


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_cc(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    if major.isdigit() and minor.isdigit():
        return int(major), int(minor)
    return None


def gpus_from_nvidia_smi(run: Runner = run_command) -> list[GpuInfo] | None:
    """GPUs nvidia-smi reports, or None when it did not answer (older drivers lack compute_cap)."""
    base = ["nvidia-smi", "--format=csv,noheader,nounits"]
    out = run([*base, f"--query-gpu={_SMI_FIELDS},compute_cap"])
    if out is not None:
        return parse_nvidia_smi(out, with_cc=True)
    out = run([*base, f"--query-gpu={_SMI_FIELDS}"])
    return parse_nvidia_smi(out, with_cc=False) if out is not None else None


def gpus_from_torch() -> list[GpuInfo]:
    """CUDA devices as torch sees them; imports torch, so only called when it is installed."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        cc = (int(props.major), int(props.minor))
        gpus.append(GpuInfo(i, str(props.name), int(props.total_memory), None, cc, "torch"))
    return gpus


def detect_gpus(
    run: Runner = run_command,
    has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None,
    torch_gpus: Callable[[], list[GpuInfo]] = gpus_from_torch,
) -> tuple[GpuInfo, ...]:
    """nvidia-smi first; torch only if nvidia-smi did not answer and torch is installed."""
    found = gpus_from_nvidia_smi(run)
    if found is not None:
        return tuple(found)
    if not has_module("torch"):
        return ()
    return tuple(torch_gpus())


def cpu_model(run: Runner = run_command, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name: /proc/cpuinfo on Linux, sysctl on macOS, else platform."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            return value.strip()
    if platform.system() == "Darwin":
        out = run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out and out.strip():
            return out.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def detect_hardware(disk_path: str | os.PathLike[str] | None = None, *, gpus: bool = True) -> HardwareInfo:
    """A snapshot of this machine. ``disk_path``: where models would be stored (default: home)."""
    path = Path(disk_path) if disk_path is not None else Path.home()
    try:
        disk_free: int | None = shutil.disk_usage(_existing_parent(path)).free
    except OSError:
        disk_free = None
    memory = psutil.virtual_memory()
    cpu = CpuInfo(cpu_model(), psutil.cpu_count(logical=False), psutil.cpu_count(logical=True))
    return HardwareInfo(
        cpu=cpu,
        ram_total=int(memory.total),
        ram_available=int(memory.available),
        disk_path=str(path),
        disk_free=disk_free,
        gpus=detect_gpus() if gpus else (),
    )


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def measure_memory_bandwidth(size_bytes: int = 256 * 1024**2, repeats: int = 5) -> float:
    """Bytes/s of a large in-RAM copy (read + write), best of ``repeats``: a CPU's real figure.

    Single-threaded numpy copy: it understates what many cores reach together, so it is a
    conservative stand-in for what llama.cpp's decode gets.
    """
    import numpy as np

    src = np.ones(size_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / max(best, 1e-9)
