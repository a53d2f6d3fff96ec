"""Model distribution over the registry protocol Ollama speaks (a subset of the Docker registry API v2).

``server`` serves a node's store under ``/v2/`` (read, plus the upload half a push needs); ``client``
pulls from and pushes to such a registry. This module holds what both sides share: reading a manifest
received over the wire and writing one into the store byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from avocado.node.registry.errors import RegistryError
from avocado.node.store.errors import StoreError
from avocado.node.store.store import Layer, ModelStore

__all__ = ["WireManifest", "parse_manifest"]


@dataclass(frozen=True, slots=True)
class WireManifest:
    """A manifest as received: its exact bytes and the blobs it names."""

    raw: bytes
    config: Layer
    layers: list[Layer]

    @property
    def blobs(self) -> list[Layer]:
        """Layers, then the config, each digest once (the order Ollama transfers them in)."""
        seen: set[str] = set()
        unique = []
        for layer in [*self.layers, self.config]:
            if layer.digest not in seen:
                seen.add(layer.digest)
                unique.append(layer)
        return unique


def parse_manifest(raw: bytes, store: ModelStore) -> WireManifest:
    """Check that ``raw`` is a manifest whose config and layers have well-formed digests and sizes."""
    try:
        data = json.loads(raw)
        config = Layer.from_json(data["config"])
        layers = [Layer.from_json(item) for item in data.get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(f"invalid manifest: {exc}") from None
    for layer in [config, *layers]:
        try:
            store.blob_path(layer.digest)
        except StoreError as exc:
            raise RegistryError(f"invalid manifest: {exc}") from None
        if layer.size < 0:
            raise RegistryError(f"invalid manifest: negative size for {layer.digest}")
    return WireManifest(raw, config, layers)
