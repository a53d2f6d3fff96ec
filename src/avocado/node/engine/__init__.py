"""The embedded inference engine: llama.cpp driven through its C API."""

from avocado.node.engine.errors import ContextOverflow, EngineError, ModelLoadError, QueueFull
from avocado.node.engine.jobs import Done, Text
from avocado.node.engine.manager import Loaded, ModelManager
from avocado.node.engine.sampling import SamplingParams

__all__ = [
    "ContextOverflow",
    "Done",
    "EngineError",
    "Loaded",
    "ModelLoadError",
    "ModelManager",
    "QueueFull",
    "SamplingParams",
    "Text",
]
