"""Building models in the store: from weights, from another model, or from ``/api/create`` fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avocado.names import InvalidModelName, ModelName
from avocado.node.store.errors import BlobNotFound, ModelNotFound, StoreError
from avocado.node.store.store import Layer, MediaType, ModelStore, StoredModel

__all__ = ["CreateSpec", "build_model", "create_model", "looks_like_path"]

Progress = Callable[[str], None]


def _text_layer(store: ModelStore, media_type: str, text: str) -> Layer:
    blob = store.add_blob_bytes(text.encode("utf-8"))
    return Layer(media_type, blob.digest, blob.size)


def _json_layer(store: ModelStore, media_type: str, value: Any) -> Layer:
    blob = store.add_blob_bytes(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    return Layer(media_type, blob.digest, blob.size)


def build_model(
    store: ModelStore,
    name: str,
    *,
    weights: Layer,
    template: str | None = None,
    system: str | None = None,
    parameters: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    licenses: list[str] | None = None,
    adapters: list[Layer] | None = None,
    parent: str = "",
) -> StoredModel:
    """Write a manifest for ``name`` whose weights are the GGUF blob ``weights``."""
    parsed = ModelName.parse(name)
    info = store.gguf_info(weights.digest)
    layers = [Layer(MediaType.MODEL, weights.digest, weights.size)]
    layers += [Layer(MediaType.ADAPTER, a.digest, a.size) for a in adapters or []]
    if template:
        layers.append(_text_layer(store, MediaType.TEMPLATE, template))
    if system:
        layers.append(_text_layer(store, MediaType.SYSTEM, system))
    if parameters:
        layers.append(_json_layer(store, MediaType.PARAMS, parameters))
    if messages:
        layers.append(_json_layer(store, MediaType.MESSAGES, messages))
    layers += [_text_layer(store, MediaType.LICENSE, text) for text in licenses or []]
    config = {
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": [info.architecture],
        "model_type": info.parameter_size,
        "file_type": info.file_type,
        "parent_model": parent,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    return store.write_manifest(parsed, config, layers)


@dataclass(slots=True)
class CreateSpec:
    """What ``/api/create`` (or a parsed Modelfile) asks for."""

    from_: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file name -> digest of an uploaded blob
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    licenses: list[str] = field(default_factory=list)


def looks_like_path(text: str) -> bool:
    """A path to a file (``/x``, ``./x``, ``~/x``, ``file:x``, ``x.gguf``) rather than a model or a URL."""
    if "://" in text and not text.startswith("file:"):
        return False
    return text.startswith(("/", "./", "../", "~", "file:", "\\")) or text.lower().endswith(".gguf")


def _is_model(store: ModelStore, text: str) -> bool:
    try:
        return store.exists(text)
    except InvalidModelName:
        return False


def _weights_from_files(store: ModelStore, files: dict[str, str]) -> Layer:
    ggufs = [digest for fname, digest in files.items() if fname.lower().endswith(".gguf")] or list(
        files.values()
    )
    if len(ggufs) != 1:
        raise StoreError("give exactly one GGUF file in 'files'")
    digest = ggufs[0]
    path = store.blob_path(digest)
    if not path.is_file():
        raise StoreError(f"blob {digest} was not uploaded; POST it to /api/blobs/{digest} first")
    return Layer("", digest, path.stat().st_size)


def create_model(store: ModelStore, name: str, spec: CreateSpec, progress: Progress) -> StoredModel:
    """Create ``name`` from ``spec``, reporting steps through ``progress``, as Ollama's create does.

    Weights come from an uploaded blob (``files``) or another model (``from``); a path in ``from`` is
    refused before anything starts: the node never reads its own disk for a request (clients upload
    the file as a blob first, as ``ollama create`` and ``avocado create`` do).
    """
    parsed = ModelName.parse(name)
    if not spec.files and spec.from_ and looks_like_path(spec.from_) and not _is_model(store, spec.from_):
        raise StoreError(
            f"FROM {spec.from_[:200]!r} is a path: a node never reads files on its own disk for a request. "
            "Send the file as a blob (POST /api/blobs/sha256:<digest>) and name it in 'files', as "
            "`avocado create` and `ollama create` do with a Modelfile's FROM ./file.gguf"
        )
    progress("gathering model components")
    base_params: dict[str, Any] = {}
    template = system = None
    messages: list[dict[str, Any]] = []
    licenses: list[str] = []
    adapter_layers: list[Layer] = []
    parent = ""
    if spec.files:
        weights = _weights_from_files(store, spec.files)
    elif spec.from_:
        try:
            base = store.resolve(spec.from_)
        except ModelNotFound:
            raise ModelNotFound(f"base model '{spec.from_}' not found") from None
        model_layer = next(la for la in base.stored.layers if la.media_type == MediaType.MODEL)
        weights = model_layer
        template, system = base.template, base.system
        base_params, messages, licenses = dict(base.parameters), list(base.messages), list(base.licenses)
        adapter_layers = [la for la in base.stored.layers if la.media_type == MediaType.ADAPTER]
        parent = base.name
    else:
        raise StoreError("neither 'from' nor 'files' was given")
    with store.hold([weights.digest, *(layer.digest for layer in adapter_layers)]):
        for layer in [weights, *adapter_layers]:  # a delete may have taken them before the hold
            if not store.has_blob(layer.digest):
                raise BlobNotFound(f"blob {layer.digest} was removed while the model was being created")
        progress(f"using existing layer {weights.digest}")
        store.gguf_info(weights.digest)  # fails clearly if the weights are not GGUF
        params = {**base_params, **spec.parameters}
        if spec.template is not None:
            progress("creating template layer")
        if spec.system is not None:
            progress("creating system layer")
        if spec.parameters:
            progress("creating parameters layer")
        progress("writing manifest")
        stored = build_model(
            store,
            parsed.display,
            weights=weights,
            template=spec.template if spec.template is not None else template,
            system=spec.system if spec.system is not None else system,
            parameters=params,
            messages=spec.messages if spec.messages is not None else messages,
            licenses=licenses + spec.licenses,
            adapters=adapter_layers,
            parent=parent,
        )
    progress("success")
    return stored
