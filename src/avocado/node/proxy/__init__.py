"""The node in front of an Ollama daemon (``avocado serve --engine ollama``)."""

from avocado.node.proxy.app import create_proxy_app
from avocado.node.proxy.supervisor import OllamaNotFound, OllamaStartError, OllamaSupervisor

__all__ = ["OllamaNotFound", "OllamaStartError", "OllamaSupervisor", "create_proxy_app"]
