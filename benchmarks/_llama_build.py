"""llama.cpp's own programs (llama-server, llama-bench), built from the pinned llama-cpp-python sdist.

The build is the reference the benchmarks compare against: the same llama.cpp commit and the same
compiler flags as the llama-cpp-python wheel qwenkit runs on (-march=native, OpenMP, CPU repack). It
lives in a cache outside the repository and is never committed; the first use downloads the sdist
with pip (the pinned version, from the package index) and builds for a few minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

CACHE = Path(os.environ.get("QWENKIT_BENCH_CACHE", Path.home() / ".cache" / "qwenkit-bench"))
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# The options llama-cpp-python's CMakeLists sets for its own build of the same sources.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=ON",
    "-DGGML_OPENMP=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    # As `make install` builds llama-cpp-python: without the AMX kernels, which crash on these GGUFs.
    f"-DCMAKE_C_FLAGS={NO_AMX}",
    f"-DCMAKE_CXX_FLAGS={NO_AMX}",
)


def pinned_version() -> str:
    return metadata.version("llama_cpp_python")


def sources(version: str) -> Path:
    """vendor/llama.cpp of the llama-cpp-python sdist, downloaded and unpacked once."""
    root = CACHE / f"llama-cpp-python-{version}"
    tree = root / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if tree.is_dir():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"llama-cpp-python=={version}", "-d", str(root)],
        check=True,
    )  # fmt: skip
    archive = next(root.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return tree


def build(target: str) -> Path:
    """The path of llama.cpp's ``target`` binary (llama-server, llama-bench), building it if needed."""
    version = pinned_version()
    tree = sources(version)
    build_dir = CACHE / f"build-{version}"
    binary = build_dir / "bin" / target
    if binary.is_file():
        return binary
    subprocess.run(["cmake", "-S", str(tree), "-B", str(build_dir), "-G", "Ninja", *CMAKE_FLAGS], check=True)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", target, "-j", jobs], check=True)
    return binary


if __name__ == "__main__":
    for name in sys.argv[1:] or ["llama-server"]:
        print(build(name))
