"""llama.cpp's own programs (llama-server, llama-bench), built from the pinned llama-cpp-python sdist.

The build is the reference the benchmarks compare against: the same llama.cpp commit and the same
compiler flags as the llama-cpp-python wheel qwenkit runs on (-march=native, OpenMP, CPU repack). It
lives in a cache outside the repository and is never committed; the sources are the pinned sdist that
``qwenkit.convert.sources`` downloads with pip and checks against its recorded sha256; the first build
takes a few minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qwenkit.convert.sources import llama_cpp_tree, pinned_version

CACHE = Path(os.environ.get("QWENKIT_BENCH_CACHE", Path.home() / ".cache" / "qwenkit-bench"))
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
)


def _configured_sources(build_dir: Path) -> Path | None:
    """The source tree an existing build folder was configured with (cmake refuses another one)."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.is_file():
        return None
    for line in cache.read_text().splitlines():
        if line.startswith("CMAKE_HOME_DIRECTORY:INTERNAL="):
            tree = Path(line.split("=", 1)[1])
            return tree if tree.is_dir() else None
    return None


def build(target: str) -> Path:
    """The path of llama.cpp's ``target`` binary (llama-server, llama-bench), building it if needed."""
    version = pinned_version()
    build_dir = CACHE / f"build-{version}"
    binary = build_dir / "bin" / target
    if binary.is_file():
        return binary
    if _configured_sources(build_dir) is None:
        tree = llama_cpp_tree(version=version)  # the verified sdist, shared with qwenkit convert
        configure = ["cmake", "-S", str(tree), "-B", str(build_dir), "-G", "Ninja", *CMAKE_FLAGS]
        subprocess.run(configure, check=True)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", target, "-j", jobs], check=True)
    return binary


if __name__ == "__main__":
    for name in sys.argv[1:] or ["llama-server"]:
        print(build(name))
