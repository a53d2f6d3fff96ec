"""Loads the CUDA libraries a CUDA build of llama.cpp needs before ``llama_cpp`` loads llama.cpp.

scripts/install.sh builds llama.cpp against cuBLAS from NVIDIA's wheel (nvidia-cublas), which
installs the libraries inside the Python environment, where the dynamic loader does not look.
Loading them first, by path and with their symbols global, lets ``libggml-cuda.so`` find them (as
PyTorch does for the same wheels). Nothing happens where no such wheel is installed: the CPU build,
or a toolkit that ships cuBLAS on the loader's path.
"""

from __future__ import annotations

import ctypes
import site
import sys
from pathlib import Path

__all__ = ["preload_cuda_libraries"]

# The CUDA 13 wheels share nvidia/cu13/lib; CUDA 12's keep one folder per library.
_FOLDERS = ("nvidia/cu13/lib", "nvidia/cuda_runtime/lib", "nvidia/cublas/lib")
_LIBRARIES = ("libcudart.so.*", "libcublasLt.so.*", "libcublas.so.*")  # in the order they need each other


def _site_folders() -> list[Path]:
    folders = [Path(p) for p in sys.path if p.endswith("site-packages")]
    return folders + [Path(p) for p in site.getsitepackages() if Path(p) not in folders]


def preload_cuda_libraries() -> list[Path]:
    """Load the CUDA runtime and cuBLAS from NVIDIA's wheels, if installed; the files loaded."""
    loaded: list[Path] = []
    for pattern in _LIBRARIES:
        for base in _site_folders():
            found = sorted(f for folder in _FOLDERS for f in (base / folder).glob(pattern))
            if found:
                ctypes.CDLL(str(found[0]), mode=ctypes.RTLD_GLOBAL)
                loaded.append(found[0])
                break
    return loaded


preload_cuda_libraries()
