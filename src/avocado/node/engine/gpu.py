"""The GPUs llama.cpp can offload to, and their free memory, asked of llama.cpp itself.

llama-cpp-python 0.3.36 has no bindings for ggml's backend device API, so the few functions needed
are declared here, on the ``libggml`` that its ``libllama`` loaded. The devices are listed as
llama.cpp's model loader lists them (dedicated GPUs; integrated ones only when there is none), so a
device's place in the list is the index ``main_gpu`` and ``tensor_split`` use. A build without a
GPU backend (the portable CPU build), or a machine without a GPU, lists none.
"""

from __future__ import annotations

import ctypes
import functools
import threading

import llama_cpp

from avocado.node.engine.offload import GpuDevice

__all__ = ["gpu_devices", "gpu_offload_supported"]

_CPU, _GPU, _IGPU = 0, 1, 2  # enum ggml_backend_dev_type
_lock = threading.Lock()


@functools.cache
def _ggml() -> ctypes.CDLL:
    """The libggml next to the libllama that llama_cpp loaded (dlopen returns the loaded one)."""
    lib = ctypes.CDLL(str(llama_cpp.llama_cpp._base_path / "libggml.so"))
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.ggml_backend_dev_memory.restype = None
    return lib


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build has a GPU backend that found a device."""
    return bool(llama_cpp.llama_supports_gpu_offload())


def gpu_devices() -> list[GpuDevice]:
    """The GPUs llama.cpp would offload to, in its order, with their free memory now."""
    if not gpu_offload_supported():
        return []
    with _lock:  # device handles are global to the process; one reader at a time
        lib = _ggml()
        handles = [lib.ggml_backend_dev_get(i) for i in range(lib.ggml_backend_dev_count())]
        kinds = [lib.ggml_backend_dev_type(h) for h in handles]
        wanted = _GPU if _GPU in kinds else _IGPU
        gpus = [handle for handle, kind in zip(handles, kinds, strict=True) if kind == wanted]
        return [_describe(lib, index, handle) for index, handle in enumerate(gpus)]


def _describe(lib: ctypes.CDLL, index: int, handle: int) -> GpuDevice:
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    lib.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
    name = (lib.ggml_backend_dev_name(handle) or b"").decode(errors="replace")
    description = (lib.ggml_backend_dev_description(handle) or b"").decode(errors="replace")
    return GpuDevice(index, name, description, int(free.value), int(total.value))
