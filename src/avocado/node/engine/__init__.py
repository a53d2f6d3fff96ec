"""The embedded inference engine: llama.cpp driven through its C API."""

# First: a CUDA build's libraries must be loaded before llama_cpp loads llama.cpp.
from avocado.node.engine import native  # noqa: F401  (isort: keep it first)
from avocado.node.engine.errors import EngineError, ModelLoadError, ModelTooLarge, QueueFull
from avocado.node.engine.jobs import Done, Text
from avocado.node.engine.manager import GpuAsk, Loaded, ManagerConfig, ModelManager
from avocado.node.engine.sampling import SamplingParams

__all__ = [
    "Done",
    "EngineError",
    "GpuAsk",
    "Loaded",
    "ManagerConfig",
    "ModelLoadError",
    "ModelManager",
    "ModelTooLarge",
    "QueueFull",
    "SamplingParams",
    "Text",
]
