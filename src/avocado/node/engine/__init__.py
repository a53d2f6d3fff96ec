"""The embedded inference engine: llama.cpp driven through its C API."""

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
