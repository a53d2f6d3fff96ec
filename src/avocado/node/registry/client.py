"""Pull models from, and push them to, a registry that speaks Ollama's protocol. Blocking; run in a thread.

Progress goes to a callback as the dictionaries ``/api/pull`` and ``/api/push`` stream. A pull
downloads each missing blob to ``blobs/sha256-<hex>-partial`` (resuming from its size with a Range
request), checks its sha256, and only then renames it into place; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from avocado.names import DEFAULT_HOST, ModelName
from avocado.node.registry import WireManifest, parse_manifest
from avocado.node.registry.auth import RegistryAuth
from avocado.node.registry.errors import (
    RegistryError,
    RemoteModelNotFound,
    TransferCancelled,
    check_response,
    disk_errors,
    network_errors,
)
from avocado.node.registry.guard import GuardedTransport, PullPolicy, read_capped
from avocado.node.store.store import Layer, MediaType, ModelStore

__all__ = ["Progress", "Puller", "Pusher", "registry_url"]

Progress = Callable[[dict[str, Any]], None]

_CHUNK = 1 << 20
_REPORT_EVERY = 0.25  # seconds between progress updates of one blob
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_ATTEMPTS = 3  # tries per blob download, each resuming from what the last one left
MAX_MANIFEST = 4 << 20  # bytes: Ollama's manifests are a few KiB
_blob_locks: dict[Path, threading.Lock] = {}
_blob_locks_guard = threading.Lock()


def registry_url(name: ModelName, insecure: bool) -> str:
    if name.host == DEFAULT_HOST:
        return "https://registry.ollama.ai"
    return f"{'http' if insecure else 'https'}://{name.host}"


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _client(auth: RegistryAuth, policy: PullPolicy) -> httpx.Client:
    """A client whose every connection (redirects and token realms included) ``policy`` allows."""
    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=True,
        headers={"User-Agent": "avocado"},
        auth=auth,
        transport=GuardedTransport(policy),
    )


@contextmanager
def _blob_lock(path: Path) -> Iterator[None]:
    """One download of a blob at a time in this process; a second pull waits, then finds it present."""
    with _blob_locks_guard:
        lock = _blob_locks.setdefault(path, threading.Lock())
    with lock:
        yield


class _Reporter:
    """Progress of one blob, at most every ``_REPORT_EVERY`` seconds plus the final count."""

    def __init__(self, progress: Progress, status: str, layer: Layer) -> None:
        self._progress = progress
        self._base = {
            "status": f"{status} {_short(layer.digest)}",
            "digest": layer.digest,
            "total": layer.size,
        }
        self._total = layer.size
        self._last_time = 0.0
        self._last_value = -1

    def __call__(self, completed: int, force: bool = False) -> None:
        now = time.monotonic()
        final = completed >= self._total
        if completed == self._last_value or not (force or final or now - self._last_time >= _REPORT_EVERY):
            return
        self._last_time, self._last_value = now, completed
        self._progress({**self._base, "completed": completed})


class Puller:
    """``fetch_manifest`` first (before any progress is streamed, so a missing model is an HTTP error),
    then ``run``."""

    def __init__(
        self, store: ModelStore, name: ModelName, insecure: bool = False, policy: PullPolicy | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.url = registry_url(name, insecure)
        self.base = f"{self.url}/v2/{name.namespace}/{name.model}"
        self.policy = policy or PullPolicy()
        self.auth = RegistryAuth(self.policy)

    def fetch_manifest(self) -> WireManifest:
        what = "pull model manifest"
        url = f"{self.base}/manifests/{self.name.tag}"
        with (
            network_errors(what, self.url),
            _client(self.auth, self.policy) as http,
            http.stream("GET", url, headers={"Accept": MediaType.MANIFEST}) as response,
        ):
            if response.status_code == 404:
                raise RemoteModelNotFound(
                    f"{what}: file does not exist (no model '{self.name.display}' at {self.url})"
                )
            check_response(response, what)
            raw = read_capped(response.iter_bytes(), MAX_MANIFEST, what)
        announced = response.headers.get("docker-content-digest", "")
        if announced.startswith("sha256:") and announced != "sha256:" + hashlib.sha256(raw).hexdigest():
            raise RegistryError(f"{what}: the manifest does not match its digest {announced}")
        manifest = parse_manifest(raw, self.store)
        self.policy.check_size(sum(layer.size for layer in manifest.blobs), f"pulling {self.name.display}")
        return manifest

    def run(self, manifest: WireManifest, progress: Progress, cancel: threading.Event | None = None) -> None:
        """Fetch every missing blob, verify, then write the manifest; progress from "pulling <digest>" on."""
        stop = cancel or threading.Event()
        with self.store.hold(layer.digest for layer in manifest.blobs):  # a delete meanwhile keeps them
            with _client(self.auth, self.policy) as http:
                for layer in manifest.blobs:
                    self._fetch_blob(http, layer, _Reporter(progress, "pulling", layer), stop)
            progress({"status": "verifying sha256 digest"})
            for layer in manifest.blobs:  # each was hash-checked before its rename; still there?
                if not self.store.has_blob(layer.digest):
                    raise RegistryError(f"blob {layer.digest} disappeared from the store during the pull")
            progress({"status": "writing manifest"})
            with disk_errors(f"writing the manifest of {self.name.display}"):
                self.store.write_manifest_bytes(self.name, manifest.raw)
        progress({"status": "success"})

    def _fetch_blob(
        self, http: httpx.Client, layer: Layer, report: _Reporter, cancel: threading.Event
    ) -> None:
        final = self.store.blob_path(layer.digest)
        partial = final.with_name(final.name + "-partial")
        what = f"pulling {layer.digest}"
        with _blob_lock(final):
            if final.is_file():
                report(layer.size, force=True)
                return
            with disk_errors(what):
                hasher, done = self._resume(partial, layer.size)
                report(done, force=True)
                try:
                    with network_errors(what, self.url):
                        for attempt in range(1, _ATTEMPTS + 1):
                            if done >= layer.size:
                                break
                            try:
                                hasher, done = self._download(
                                    http, layer, partial, hasher, done, report, cancel
                                )
                            except httpx.TransportError:  # a dropped connection: resume where it stopped
                                if attempt == _ATTEMPTS or cancel.wait(attempt):
                                    raise
                                hasher, done = self._resume(partial, layer.size)
                finally:
                    if partial.is_file() and partial.stat().st_size == 0:
                        partial.unlink()  # nothing worth resuming
                actual = "sha256:" + hasher.hexdigest()
                if done != layer.size or actual != layer.digest:
                    partial.unlink(missing_ok=True)
                    raise RegistryError(
                        f"digest mismatch: the content downloaded for {layer.digest} ({done} bytes) has "
                        f"{actual}, not the {layer.size} bytes the manifest names; the download was discarded"
                    )
                if layer.size == 0:
                    partial.touch()
                os.replace(partial, final)

    @staticmethod
    def _resume(partial: Path, size: int) -> tuple[Any, int]:
        """Hash what an earlier, interrupted pull left behind, or start afresh."""
        hasher = hashlib.sha256()
        if not partial.is_file():
            return hasher, 0
        if partial.stat().st_size > size:
            partial.unlink()
            return hasher, 0
        done = 0
        with partial.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                done += len(chunk)
        return hasher, done

    def _download(
        self,
        http: httpx.Client,
        layer: Layer,
        partial: Path,
        hasher: Any,
        done: int,
        report: _Reporter,
        cancel: threading.Event,
    ) -> tuple[Any, int]:
        headers = {"Accept-Encoding": "identity"}
        if done:
            headers["Range"] = f"bytes={done}-"
        with http.stream("GET", f"{self.base}/blobs/{layer.digest}", headers=headers) as response:
            if response.status_code == 404:
                raise RegistryError(
                    f"pulling {layer.digest}: the registry does not have this blob, which the manifest of "
                    f"'{self.name.display}' names"
                )
            if response.status_code == 416 or (
                response.status_code == 206
                and not response.headers.get("content-range", "").startswith(f"bytes {done}-")
            ):
                partial.unlink(missing_ok=True)
                raise RegistryError(
                    f"pulling {layer.digest}: the registry cannot resume the download at byte {done}; "
                    "the partial download was discarded, try again"
                )
            check_response(response, f"pulling {layer.digest}")
            if done and response.status_code != 206:  # the range was ignored: start over
                hasher, done = hashlib.sha256(), 0
            with partial.open("ab" if done else "wb") as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    if cancel.is_set():
                        raise TransferCancelled(f"pull of '{self.name.display}' cancelled")
                    done += len(chunk)
                    if done > layer.size:
                        handle.close()
                        partial.unlink(missing_ok=True)
                        raise RegistryError(
                            f"pulling {layer.digest}: the registry sent more than {layer.size} bytes"
                        )
                    handle.write(chunk)
                    hasher.update(chunk)
                    report(done)
        return hasher, done


class Pusher:
    """Upload a local model's blobs (those the registry lacks), then its manifest."""

    def __init__(
        self, store: ModelStore, name: ModelName, insecure: bool = False, policy: PullPolicy | None = None
    ) -> None:
        self.store = store
        self.stored = store.get(name)  # ModelNotFound before anything is streamed
        self.name = self.stored.name
        self.url = registry_url(self.name, insecure)
        self.base = f"{self.url}/v2/{self.name.namespace}/{self.name.model}"
        self.policy = policy or PullPolicy()
        self.auth = RegistryAuth(self.policy)

    def run(self, progress: Progress, cancel: threading.Event | None = None) -> None:
        stop = cancel or threading.Event()
        progress({"status": "retrieving manifest"})
        try:
            raw = self.store.manifest_path(self.name).read_bytes()
            manifest = parse_manifest(raw, self.store)
            self._push(manifest, progress, stop)
        except OSError as exc:  # the model or a blob went away while pushing
            raise RegistryError(f"push of '{self.name.display}': cannot read the model: {exc}") from None
        progress({"status": "success"})

    def _push(self, manifest: WireManifest, progress: Progress, stop: threading.Event) -> None:
        raw = manifest.raw
        with _client(self.auth, self.policy) as http:
            for layer in manifest.blobs:
                report = _Reporter(progress, "pushing", layer)
                with network_errors(f"pushing {layer.digest}", self.url):
                    self._push_blob(http, layer, report, stop)
            progress({"status": "pushing manifest"})
            with network_errors("pushing manifest", self.url):
                response = http.put(
                    f"{self.base}/manifests/{self.name.tag}",
                    content=raw,
                    headers={"Content-Type": MediaType.MANIFEST},
                )
            check_response(response, "pushing manifest")

    def _push_blob(
        self, http: httpx.Client, layer: Layer, report: _Reporter, cancel: threading.Event
    ) -> None:
        url = f"{self.base}/blobs/{layer.digest}"
        if http.head(url).status_code == 200:
            report(layer.size, force=True)
            return
        path = self.store.blob_path(layer.digest)
        if not path.is_file():
            raise RegistryError(f"pushing {layer.digest}: the blob is missing from the local store")
        started = http.post(f"{self.base}/blobs/uploads/")
        check_response(started, f"pushing {layer.digest}")
        location = started.headers.get("location")
        if started.status_code != 202 or not location:
            raise RegistryError(f"pushing {layer.digest}: the registry did not start an upload")
        target = started.url.join(location).copy_merge_params({"digest": layer.digest})
        report(0, force=True)

        def content() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    if cancel.is_set():
                        raise TransferCancelled(f"push of '{self.name.display}' cancelled")
                    yield chunk
                    sent += len(chunk)
                    report(sent)

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(layer.size)}
        check_response(http.put(target, content=content(), headers=headers), f"pushing {layer.digest}")
