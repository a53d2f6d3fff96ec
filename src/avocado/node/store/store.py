"""The model store: content-addressed blobs plus manifests, laid out as Ollama lays them out.

``models/blobs/sha256-<hex>`` holds every file once; ``models/manifests/<host>/<ns>/<model>/<tag>``
holds an OCI-style manifest naming a config blob and layers by digest. A model is its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avocado.names import ModelName
from avocado.node.store.errors import BlobNotFound, ModelNotFound, StoreError
from avocado.node.store.gguf_info import GGUFInfo, read_gguf_info

__all__ = ["BlobWriter", "Layer", "MediaType", "Model", "ModelStore", "StoredModel"]

_CHUNK = 1 << 20


class MediaType:
    MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    CONFIG = "application/vnd.docker.container.image.v1+json"
    MODEL = "application/vnd.ollama.image.model"
    ADAPTER = "application/vnd.ollama.image.adapter"
    TEMPLATE = "application/vnd.ollama.image.template"
    SYSTEM = "application/vnd.ollama.image.system"
    PARAMS = "application/vnd.ollama.image.params"
    MESSAGES = "application/vnd.ollama.image.messages"
    LICENSE = "application/vnd.ollama.image.license"


@dataclass(frozen=True, slots=True)
class Layer:
    media_type: str
    digest: str  # "sha256:<hex>"
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        return cls(str(data["mediaType"]), str(data["digest"]), int(data["size"]))


@dataclass(slots=True)
class StoredModel:
    """A manifest in the store, cheap to list."""

    name: ModelName
    digest: str  # hex sha256 of the manifest bytes, as /api/tags shows it
    size: int
    modified_at: datetime
    config: dict[str, Any]
    layers: list[Layer]


@dataclass(slots=True)
class Model:
    """A model resolved for use: its weights, template, defaults and metadata."""

    stored: StoredModel
    model_path: Path
    info: GGUFInfo
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapters: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.stored.name.display


class BlobWriter:
    """Receives a blob in pieces into a temporary file; ``commit`` checks the digest and keeps it.

    The digest may be given up front or, when the sender names it only at the end (a registry
    upload sent in chunks), to ``commit``.
    """

    def __init__(self, store: ModelStore, digest: str | None = None) -> None:
        if digest is not None:
            store.blob_path(digest)  # refuse a malformed digest before receiving anything
        self.digest = digest
        self._store = store
        self._hasher = hashlib.sha256()
        self.size = 0
        fd, self._tmp = tempfile.mkstemp(dir=store.blobs_dir, prefix=".upload-")
        self._file = os.fdopen(fd, "wb")
        store.writing.add(self.path)

    @property
    def path(self) -> Path:
        """Where the data waits until :meth:`commit`."""
        return Path(self._tmp)

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, digest: str | None = None) -> Layer:
        digest = digest or self.digest
        if digest is None:
            self.abort()
            raise StoreError("no digest was given for the uploaded content")
        path = self._store.blob_path(digest)
        self._file.close()
        if "sha256:" + self._hasher.hexdigest() != digest:
            self.abort()
            raise StoreError("digest mismatch: the uploaded content does not match its digest")
        os.replace(self._tmp, path)
        self._store.writing.discard(self.path)
        return Layer("", digest, self.size)

    def abort(self) -> None:
        self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._store.writing.discard(self.path)


class ModelStore:
    """Blobs and manifests under one directory; safe to use from several threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.manifests_dir = root / "manifests"
        self.info_dir = root / "info"
        for directory in (self.blobs_dir, self.manifests_dir, self.info_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._held: Counter[str] = Counter()  # blobs an unfinished pull or create is about to name
        self.writing: set[Path] = set()  # the temporary files of BlobWriters not finished yet

    @contextmanager
    def hold(self, digests: Iterable[str]) -> Iterator[None]:
        """Keep these blobs while a model that will name them is being written, even if a delete
        in the meantime removes the last manifest that named them."""
        held = list(digests)
        with self._lock:
            self._held.update(held)
        try:
            yield
        finally:
            with self._lock:
                self._held.subtract(held)
                self._held = +self._held  # drop zero counts

    # -- blobs -------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
            raise StoreError(f"invalid digest {digest!r}")
        return self.blobs_dir / f"sha256-{hexdigest}"

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def add_blob_bytes(self, data: bytes) -> Layer:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            self._write_atomic(path, data)
        return Layer("", digest, len(data))

    def add_blob_file(self, source: Path, progress: Callable[[int, int], None] | None = None) -> Layer:
        """Hash ``source`` and place it in the store, hard-linked when possible, copied otherwise."""
        total = source.stat().st_size
        hasher = hashlib.sha256()
        done = 0
        with source.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        digest = "sha256:" + hasher.hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            tmp = path.with_name(path.name + f".partial-{os.getpid()}-{threading.get_ident()}")
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        return Layer("", digest, total)

    def blob_writer(self, digest: str | None = None) -> BlobWriter:
        """A writer for a blob uploaded in pieces; it refuses content that does not match its digest."""
        return BlobWriter(self, digest)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, path)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def read_blob_text(self, digest: str) -> str:
        return self.blob_path(digest).read_text(encoding="utf-8")

    def gguf_info(self, digest: str) -> GGUFInfo:
        """Metadata of a GGUF blob, cached next to the store since reading a header takes a while."""
        cache = self.info_dir / f"{digest.replace(':', '-')}.json"
        if cache.is_file():
            try:
                cached = GGUFInfo.from_json(json.loads(cache.read_text()))
            except (ValueError, KeyError, TypeError):
                cached = None  # stale or damaged cache: read the file again
            if cached is not None and cached.tensor_groups is not None:
                return cached
        path = self.blob_path(digest)
        if not path.is_file():
            raise BlobNotFound(f"blob {digest} is missing from the store")
        info = read_gguf_info(path)
        self._write_atomic(cache, json.dumps(info.to_json()).encode())
        return info

    # -- manifests ---------------------------------------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests_dir.joinpath(*name.path_parts)

    def write_manifest_bytes(self, name: ModelName, raw: bytes) -> None:
        """Store a manifest exactly as given (a pulled or pushed one keeps its digest)."""
        path = self.manifest_path(name)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomic(path, raw)

    def write_manifest(self, name: ModelName, config: dict[str, Any], layers: list[Layer]) -> StoredModel:
        config_layer = self.add_blob_bytes(json.dumps(config, separators=(",", ":")).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MediaType.MANIFEST,
            "config": Layer(MediaType.CONFIG, config_layer.digest, config_layer.size).to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        path = self.manifest_path(name)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomic(path, json.dumps(manifest, separators=(",", ":")).encode())
        return self.get(name)

    def _load(self, name: ModelName, path: Path) -> StoredModel:
        raw = path.read_bytes()
        try:
            manifest = json.loads(raw)
            config_ref = Layer.from_json(manifest["config"])
            layers = [Layer.from_json(item) for item in manifest.get("layers", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"manifest for {name} is damaged: {exc}") from None
        try:
            config = json.loads(self.read_blob_text(config_ref.digest))
        except (OSError, ValueError):
            config = {}
        size = config_ref.size + sum(layer.size for layer in layers)
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return StoredModel(name, hashlib.sha256(raw).hexdigest(), size, modified, config, layers)

    def get(self, name: ModelName | str) -> StoredModel:
        parsed = ModelName.parse(name) if isinstance(name, str) else name
        path = self.manifest_path(parsed)
        if not path.is_file():
            raise ModelNotFound(f"model '{parsed.display}' not found")
        return self._load(parsed, path)

    def exists(self, name: ModelName | str) -> bool:
        parsed = ModelName.parse(name) if isinstance(name, str) else name
        return self.manifest_path(parsed).is_file()

    def list(self) -> list[StoredModel]:
        models = []
        for path in sorted(self.manifests_dir.glob("*/*/*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            host, namespace, model, tag = path.relative_to(self.manifests_dir).parts
            try:
                models.append(self._load(ModelName(host, namespace, model, tag), path))
            except (StoreError, OSError):
                continue  # a damaged manifest hides that model, not the whole list
        models.sort(key=lambda m: m.modified_at, reverse=True)
        return models

    def resolve(self, name: ModelName | str) -> Model:
        """Everything needed to run a model, read from its layers."""
        stored = self.get(name)
        model_layer = next((layer for layer in stored.layers if layer.media_type == MediaType.MODEL), None)
        if model_layer is None:
            raise StoreError(f"model '{stored.name.display}' has no weights layer")
        model_path = self.blob_path(model_layer.digest)
        if not model_path.is_file():
            raise BlobNotFound(f"model '{stored.name.display}' is missing blob {model_layer.digest}")
        model = Model(stored=stored, model_path=model_path, info=self.gguf_info(model_layer.digest))
        for layer in stored.layers:
            kind = layer.media_type
            if kind == MediaType.TEMPLATE:
                model.template = self.read_blob_text(layer.digest)
            elif kind == MediaType.SYSTEM:
                model.system = self.read_blob_text(layer.digest)
            elif kind == MediaType.PARAMS:
                model.parameters = json.loads(self.read_blob_text(layer.digest))
            elif kind == MediaType.MESSAGES:
                model.messages = json.loads(self.read_blob_text(layer.digest))
            elif kind == MediaType.LICENSE:
                model.licenses.append(self.read_blob_text(layer.digest))
            elif kind == MediaType.ADAPTER:
                model.adapters.append(self.blob_path(layer.digest))
        return model

    def copy(self, source: ModelName | str, destination: ModelName | str) -> StoredModel:
        src = ModelName.parse(source) if isinstance(source, str) else source
        dst = ModelName.parse(destination) if isinstance(destination, str) else destination
        with self._lock:
            data = self.manifest_path(self.get(src).name).read_bytes()
            target = self.manifest_path(dst)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomic(target, data)
        return self.get(dst)

    def delete(self, name: ModelName | str) -> None:
        """Remove a manifest, then those of its blobs that no other manifest names.

        Only the deleted model's own blobs are candidates, as in Ollama: a blob uploaded for a
        create that has not happened yet, or written by a pull still in progress, is not named by
        any manifest either, and must stay.
        """
        parsed = ModelName.parse(name) if isinstance(name, str) else name
        with self._lock:
            path = self.manifest_path(parsed)
            if not path.is_file():
                raise ModelNotFound(f"model '{parsed.display}' not found")
            own = self._named_by(path)
            path.unlink()
            for parent in path.parents:
                if parent == self.manifests_dir:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break
            self._remove_unused(own)

    def _remove_unused(self, candidates: set[str]) -> None:
        named: set[str] = set()
        for path in self.manifests_dir.glob("*/*/*/*"):
            if path.is_file() and not path.name.startswith("."):
                named |= self._named_by(path)
        for digest in candidates - named - set(self._held):
            try:
                self.blob_path(digest).unlink(missing_ok=True)
            except StoreError:
                continue  # not a digest we could have stored

    @staticmethod
    def _named_by(path: Path) -> set[str]:
        """The digests a manifest names (none when it is damaged)."""
        try:
            manifest = json.loads(path.read_bytes())
            return {manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))}
        except (OSError, ValueError, KeyError, TypeError):
            return set()
