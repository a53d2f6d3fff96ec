"""The node's store as a registry under ``/v2/``: what ``ollama pull`` reads and ``ollama push`` writes.

Reads: manifests by ``namespace/model/tag`` (host ``registry.ollama.ai`` first, then any host) and
blobs by digest, with Range support for resumed downloads. Writes: the upload half of the Docker
registry protocol (``POST`` an upload, ``PATCH`` data, ``PUT ?digest=`` to finish) and ``PUT`` of a
manifest once every blob it names is present. Errors use the registry's shape:
``{"errors": [{"code": ..., "message": ...}]}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from avocado.names import DEFAULT_HOST, InvalidModelName, ModelName
from avocado.node.api import docs
from avocado.node.api.deps import Service
from avocado.node.registry import parse_manifest
from avocado.node.registry.errors import RegistryError
from avocado.node.store.errors import StoreError
from avocado.node.store.store import BlobWriter, MediaType, ModelStore

__all__ = ["MAX_UPLOADS", "UPLOAD_IDLE_SECONDS", "Uploads", "router"]

router = APIRouter(tags=["registry"])

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
UPLOAD_IDLE_SECONDS = 15 * 60  # an upload without news for this long is abandoned (upload_expiry)
MAX_UPLOADS = 32  # upload sessions open at once (ollama push sends a model's few blobs one by one)
_MAX_MANIFEST = 4 << 20
_BUFFER = 1 << 20


class UploadTooLarge(Exception):
    """An upload session received more than ``max_upload`` bytes in all."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"code": code, "message": message}]}, status_code=status, headers=API_VERSION
    )


def _name(namespace: str, model: str, tag: str = "latest") -> ModelName | None:
    """The store name for a repository path, or None if Ollama would not accept it (e.g. ``..``)."""
    try:
        return ModelName.parse(f"{DEFAULT_HOST}/{namespace}/{model}:{tag}")
    except InvalidModelName:
        return None


def _find_manifest(store: ModelStore, name: ModelName) -> Path | None:
    path = store.manifest_path(name)
    if path.is_file():
        return path
    for host in sorted(store.manifests_dir.iterdir()):
        candidate = host.joinpath(name.namespace, name.model, name.tag)
        if candidate.is_file():
            return candidate
    return None


@dataclass(slots=True)
class _Upload:
    writer: BlobWriter | None = None
    touched: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class Uploads:
    """Uploads in progress on one node; their data waits in ``.upload-*`` files in the blobs directory.

    A session that hears nothing for ``expiry`` seconds is dropped with its data, and so is an
    ``.upload-*`` file nothing writes to any more (left by a crash or a restart): :meth:`sweep`
    runs every so often while the node runs (:meth:`sweep_forever`).
    """

    def __init__(self, store: ModelStore, expiry: float = UPLOAD_IDLE_SECONDS) -> None:
        self.store = store
        self.expiry = expiry
        self.sessions: dict[str, _Upload] = {}

    def sweep(self) -> None:
        now = time.monotonic()
        for key, upload in list(self.sessions.items()):
            if now - upload.touched > self.expiry and not upload.lock.locked():
                self.sessions.pop(key, None)
                upload.abort()
        live = set(self.store.writing)  # uploads still being received or in a session
        for leftover in self.store.blobs_dir.glob(".upload-*"):
            try:
                if leftover not in live and time.time() - leftover.stat().st_mtime > self.expiry:
                    leftover.unlink()
            except OSError:
                pass

    async def sweep_forever(self) -> None:
        """Sweep every quarter of ``expiry`` (at most every minute) until cancelled."""
        while True:
            await asyncio.to_thread(self.sweep)
            await asyncio.sleep(min(self.expiry / 4, 60.0))


def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.registry_uploads
    return uploads


async def _receive(request: Request, writer: BlobWriter, limit: int) -> None:
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if writer.size + len(buffer) > limit:
            raise UploadTooLarge(f"the upload is larger than {limit} bytes (max_upload)")
        if len(buffer) >= _BUFFER:
            await asyncio.to_thread(writer.write, bytes(buffer))
            buffer.clear()
    if buffer:
        await asyncio.to_thread(writer.write, bytes(buffer))


def _max_upload(request: Request) -> int:
    limit: int = request.app.state.settings.max_upload_bytes
    return limit


def _upload_location(namespace: str, model: str, key: str) -> str:
    return f"/v2/{namespace}/{model}/blobs/uploads/{key}"


@router.get("/v2/", responses=docs.REGISTRY["version"])
async def api_version() -> JSONResponse:
    return JSONResponse({}, headers=API_VERSION)


@router.get(
    "/v2/{namespace}/{model}/manifests/{tag}", response_class=Response, responses=docs.REGISTRY["manifest"]
)
@router.head(
    "/v2/{namespace}/{model}/manifests/{tag}", response_class=Response, responses=docs.REGISTRY["manifest"]
)
async def get_manifest(namespace: str, model: str, tag: str, svc: Service) -> Response:
    name = _name(namespace, model, tag)
    path = await asyncio.to_thread(_find_manifest, svc.store, name) if name else None
    try:
        raw = await asyncio.to_thread(path.read_bytes) if path else None
    except OSError:
        raw = None
    if raw is None:
        return _error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {namespace}/{model}:{tag}")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    headers = {**API_VERSION, "Docker-Content-Digest": digest}
    return Response(raw, media_type=MediaType.MANIFEST, headers=headers)


@router.get(
    "/v2/{namespace}/{model}/blobs/{digest}", response_class=Response, responses=docs.REGISTRY["blob"]
)
@router.head(
    "/v2/{namespace}/{model}/blobs/{digest}", response_class=Response, responses=docs.REGISTRY["blob"]
)
async def get_blob(namespace: str, model: str, digest: str, svc: Service) -> Response:
    try:
        path = svc.store.blob_path(digest)
        stat = await asyncio.to_thread(os.stat, path)
    except StoreError:
        return _error(400, "DIGEST_INVALID", f"invalid digest {digest!r}")
    except OSError:
        return _error(404, "BLOB_UNKNOWN", f"blob unknown: {digest}")
    headers = {**API_VERSION, "Docker-Content-Digest": digest}
    return FileResponse(path, stat_result=stat, media_type="application/octet-stream", headers=headers)


@router.post(
    "/v2/{namespace}/{model}/blobs/uploads/",
    status_code=202,
    response_class=Response,
    responses=docs.REGISTRY["start"],
)
async def start_upload(namespace: str, model: str, svc: Service, request: Request) -> Response:
    if _name(namespace, model) is None:
        return _error(400, "NAME_INVALID", f"invalid repository name {namespace}/{model}")
    uploads = _uploads(request)
    if len(uploads.sessions) >= MAX_UPLOADS:
        return _error(429, "TOOMANYREQUESTS", f"{MAX_UPLOADS} uploads are in progress already; try later")
    key = uuid.uuid4().hex
    uploads.sessions[key] = _Upload()
    location = _upload_location(namespace, model, key)
    headers = {**API_VERSION, "Location": location, "Docker-Upload-UUID": key, "Range": "0-0"}
    return Response(status_code=202, headers=headers)


@router.patch(
    "/v2/{namespace}/{model}/blobs/uploads/{key}",
    status_code=202,
    response_class=Response,
    responses=docs.REGISTRY["chunk"],
    openapi_extra=docs.BYTES,
)
async def upload_chunk(namespace: str, model: str, key: str, svc: Service, request: Request) -> Response:
    uploads = _uploads(request)
    upload = uploads.sessions.get(key)
    if upload is None:
        return _error(404, "BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {key}")
    async with upload.lock:
        try:
            if upload.writer is None:
                upload.writer = svc.store.blob_writer()  # the digest comes with the final PUT
            await _receive(request, upload.writer, _max_upload(request))
        except UploadTooLarge as exc:
            uploads.sessions.pop(key, None)
            upload.abort()
            return _error(413, "SIZE_INVALID", str(exc))
        except OSError as exc:
            uploads.sessions.pop(key, None)
            upload.abort()
            return _error(500, "UNKNOWN", f"could not store the upload: {exc.strerror}")
        except BaseException:
            uploads.sessions.pop(key, None)
            upload.abort()
            raise
        upload.touched = time.monotonic()
        end = upload.writer.size - 1
    headers = {
        **API_VERSION,
        "Location": _upload_location(namespace, model, key),
        "Docker-Upload-UUID": key,
        "Range": f"0-{max(end, 0)}",
    }
    return Response(status_code=202, headers=headers)


@router.put(
    "/v2/{namespace}/{model}/blobs/uploads/{key}",
    status_code=201,
    response_class=Response,
    responses=docs.REGISTRY["finish"],
    openapi_extra=docs.BYTES,
)
async def finish_upload(
    namespace: str, model: str, key: str, svc: Service, request: Request, digest: str = ""
) -> Response:
    uploads = _uploads(request)
    upload = uploads.sessions.get(key)
    if upload is None:
        return _error(404, "BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {key}")
    try:
        svc.store.blob_path(digest)  # validates the digest
    except StoreError:
        return _error(400, "DIGEST_INVALID", f"invalid or missing digest {digest!r}")
    async with upload.lock:
        uploads.sessions.pop(key, None)
        try:
            if upload.writer is None:
                upload.writer = svc.store.blob_writer(digest)
            await _receive(request, upload.writer, _max_upload(request))
            await asyncio.to_thread(upload.writer.commit, digest)
        except UploadTooLarge as exc:
            upload.abort()
            return _error(413, "SIZE_INVALID", str(exc))
        except StoreError:  # commit already removed the data
            return _error(400, "DIGEST_INVALID", f"the uploaded content does not match digest {digest}")
        except OSError as exc:
            upload.abort()
            return _error(500, "UNKNOWN", f"could not store the upload: {exc.strerror}")
        except BaseException:
            upload.abort()
            raise
    headers = {
        **API_VERSION,
        "Location": f"/v2/{namespace}/{model}/blobs/{digest}",
        "Docker-Content-Digest": digest,
    }
    return Response(status_code=201, headers=headers)


@router.delete(
    "/v2/{namespace}/{model}/blobs/uploads/{key}",
    status_code=204,
    response_class=Response,
    responses=docs.REGISTRY["cancel"],
)
async def cancel_upload(namespace: str, model: str, key: str, request: Request) -> Response:
    upload = _uploads(request).sessions.pop(key, None)
    if upload is None:
        return _error(404, "BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {key}")
    async with upload.lock:
        upload.abort()
    return Response(status_code=204, headers=API_VERSION)


@router.put(
    "/v2/{namespace}/{model}/manifests/{tag}",
    status_code=201,
    response_class=Response,
    responses=docs.REGISTRY["put_manifest"],
    openapi_extra=docs.MANIFEST_BODY,
)
async def put_manifest(namespace: str, model: str, tag: str, svc: Service, request: Request) -> Response:
    name = _name(namespace, model, tag)
    if name is None:
        return _error(400, "NAME_INVALID", f"invalid name {namespace}/{model}:{tag}")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_MANIFEST:
            return _error(400, "MANIFEST_INVALID", "manifest too large")
    try:
        manifest = parse_manifest(bytes(raw), svc.store)
    except RegistryError as exc:
        return _error(400, "MANIFEST_INVALID", str(exc))
    missing = [layer.digest for layer in manifest.blobs if not svc.store.has_blob(layer.digest)]
    if missing:
        return _error(400, "BLOB_UNKNOWN", f"blob unknown to registry: {', '.join(missing)}")
    try:
        await asyncio.to_thread(svc.store.write_manifest_bytes, name, manifest.raw)
    except OSError as exc:
        return _error(500, "UNKNOWN", f"could not store the manifest: {exc.strerror}")
    digest = "sha256:" + hashlib.sha256(manifest.raw).hexdigest()
    location = f"/v2/{namespace}/{model}/manifests/{tag}"
    return Response(
        status_code=201, headers={**API_VERSION, "Location": location, "Docker-Content-Digest": digest}
    )
