"""Loads the CUDA libraries a CUDA build of llama.cpp needs before ``llama_cpp`` loads llama.cpp.

scripts/install.sh builds llama.cpp against cuBLAS from NVIDIA's wheel (nvidia-cublas), which
installs the libraries inside the Python environment, where the dynamic loader does not look.
Loading them first, by path and with their symbols global, lets ``libggml-cuda.so`` find them (as
PyTorch does for the same wheels). Nothing happens for a CPU build of llama.cpp (no
``libggml-cuda.so`` beside it), even where PyTorch's CUDA wheels are installed, nor where no such
wheel is installed (a toolkit that ships cuBLAS on the loader's path).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import site
import sys
from pathlib import Path

__all__ = ["preload_cuda_libraries"]

logger = logging.getLogger(__name__)

# The CUDA 13 wheels share nvidia/cu13/lib; CUDA 12's keep one folder per library.
_FOLDERS = ("nvidia/cu13/lib", "nvidia/cuda_runtime/lib", "nvidia/cublas/lib")
_LIBRARIES = ("libcudart.so.*", "libcublasLt.so.*", "libcublas.so.*")  # in the order they need each other


def _site_folders() -> list[Path]:
    folders = [Path(p) for p in sys.path if p.endswith("site-packages")]
    return folders + [Path(p) for p in site.getsitepackages() if Path(p) not in folders]


def _cuda_build() -> bool:
    """Whether the installed llama_cpp is a CUDA build (found without importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return False
    return any((Path(spec.origin).parent / "lib").glob("libggml-cuda.so*"))


def preload_cuda_libraries() -> list[Path]:
    """Load the CUDA runtime and cuBLAS from NVIDIA's wheels for a CUDA build; the files loaded. A
    library that does not load is logged and left to the loader (llama.cpp then says what it lacks)."""
    loaded: list[Path] = []
    if not _cuda_build():
        return loaded
    for pattern in _LIBRARIES:
        for base in _site_folders():
            found = sorted(f for folder in _FOLDERS for f in (base / folder).glob(pattern))
            if found:
                try:
                    ctypes.CDLL(str(found[0]), mode=ctypes.RTLD_GLOBAL)
                except OSError as exc:
                    logger.warning("could not load %s: %s", found[0], exc)
                    break
                loaded.append(found[0])
                break
    return loaded


preload_cuda_libraries()
