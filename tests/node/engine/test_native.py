"""The CUDA libraries of NVIDIA's wheels are loaded from the Python environment before llama.cpp."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from avocado.node.engine import native


def shared_library(path: Path, symbol: str) -> Path:
    """A real shared library exporting ``symbol`` (a stand-in for libcudart or libcublas)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.parent / f"{symbol}.c"
    source.write_text(f"int {symbol}(void) {{ return 42; }}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(path), str(source)], check=True)
    return path


def test_the_wheels_libraries_are_loaded_globally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    libs = site / "nvidia" / "cu13" / "lib"
    runtime = shared_library(libs / "libcudart.so.13", "avocado_test_cudart")
    blas = shared_library(libs / "libcublas.so.13", "avocado_test_cublas")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    assert native._site_folders()[0] == site  # site-packages folders on the path are searched
    monkeypatch.setattr(native, "_site_folders", lambda: [site])  # only this one (a CUDA machine has more)
    monkeypatch.setattr(native, "_cuda_build", lambda: False)
    assert native.preload_cuda_libraries() == []  # a CPU build of llama.cpp: nothing, wheels or not
    monkeypatch.setattr(native, "_cuda_build", lambda: True)
    assert native.preload_cuda_libraries() == [runtime, blas]  # no libcublasLt here: skipped
    # Global: a library loaded later (llama.cpp's) finds the symbols without knowing the path.
    assert ctypes.CDLL(None).avocado_test_cublas() == 42


def test_nothing_is_loaded_without_the_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_site_folders", lambda: [])
    assert native.preload_cuda_libraries() == []


def test_a_library_that_does_not_load_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site-packages"
    broken = site / "nvidia" / "cu13" / "lib" / "libcudart.so.13"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an ELF file")
    monkeypatch.setattr(native, "_site_folders", lambda: [site])
    monkeypatch.setattr(native, "_cuda_build", lambda: True)
    assert native.preload_cuda_libraries() == []
    assert "could not load" in caplog.text


def test_a_cuda_build_is_told_from_a_cpu_build_without_loading_it() -> None:
    import llama_cpp

    assert native._cuda_build() == bool(llama_cpp.llama_supports_gpu_offload())
