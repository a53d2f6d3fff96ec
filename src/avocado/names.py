"""Model names the way Ollama spells them: ``[host/][namespace/]model[:tag]``.

Shared by the node (its store, registry and API) and the gateway (routing and key allow-lists), so
that both read ``smollm2``, ``smollm2:latest`` and ``library/smollm2`` as the same model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG",
    "InvalidModelName",
    "ModelName",
    "model_allowed",
    "normalize_model",
]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,349}(:[0-9]{1,5})?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}$")


class InvalidModelName(ValueError):
    """A model name that Ollama would not accept."""


@dataclass(frozen=True, slots=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse and fill defaults; names compare case-insensitively, so they are kept lower-case."""
        raw = text.strip()
        if not raw:
            raise InvalidModelName("model name is empty")
        for scheme in ("https://", "http://"):
            if raw.startswith(scheme):
                raw = raw[len(scheme) :]
        path, tag = raw, DEFAULT_TAG
        last_slash = raw.rfind("/")
        colon = raw.rfind(":")
        if colon > last_slash:
            path, tag = raw[:colon], raw[colon + 1 :]
        parts = path.split("/")
        if len(parts) > 3 or not all(parts):
            raise InvalidModelName(f"invalid model name {text!r}")
        host = parts[0] if len(parts) == 3 else DEFAULT_HOST
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        model = parts[-1]
        if not (_HOST.match(host) and _PART.match(namespace) and _PART.match(model) and _TAG.match(tag)):
            raise InvalidModelName(f"invalid model name {text!r}")
        return cls(host.lower(), namespace.lower(), model.lower(), tag.lower())

    @property
    def display(self) -> str:
        """The short form Ollama shows: ``model:tag`` for the library, longer otherwise."""
        if self.host == DEFAULT_HOST and self.namespace == DEFAULT_NAMESPACE:
            return f"{self.model}:{self.tag}"
        if self.host == DEFAULT_HOST:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        """Every part spelled out, as Ollama names a model in its error messages."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def path_parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def __str__(self) -> str:
        return self.display


@lru_cache(maxsize=4096)
def normalize_model(name: str) -> str:
    """The name a node lists a model under (``smollm2`` -> ``smollm2:latest``); ``ValueError`` if invalid."""
    return ModelName.parse(name).display


def _comparable(name: str) -> str:
    try:
        return normalize_model(name)
    except ValueError:
        return name.strip().lower()


def model_allowed(model: str, allowed: Iterable[str]) -> bool:
    """Whether ``model`` is one of ``allowed``, as Ollama resolves names: ``smollm2`` is ``smollm2:latest``,
    ``library/x`` is ``x``, case aside."""
    wanted = _comparable(model)
    return any(_comparable(name) == wanted for name in allowed)
