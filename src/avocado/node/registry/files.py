"""Pulling a model that is a single GGUF file, by its http(s) URL.

The URL is downloaded to a partial file named after it (so an interrupted pull resumes with a Range
request), under the node's :class:`~avocado.node.registry.guard.PullPolicy` (where it may connect,
redirects included, and how much it may download); its header is checked to be GGUF, and it becomes
a blob under its sha256. The model is named after the file (``SmolLM2-135M.Q4_1.gguf`` ->
``smollm2-135m.q4_1:latest``); with no template of its own, the chat template inside the GGUF is used.

A path on the node's own disk is never read for a request: a client sends the file as a blob
(``POST /api/blobs/sha256:...``) and creates the model from it, as ``avocado pull PATH`` does.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from avocado.names import ModelName
from avocado.node.registry.client import Progress
from avocado.node.registry.errors import (
    RegistryError,
    TransferCancelled,
    check_response,
    disk_errors,
    network_errors,
)
from avocado.node.registry.guard import GuardedTransport, PullPolicy, TooLarge
from avocado.node.store.building import build_model
from avocado.node.store.errors import InvalidModelFile
from avocado.node.store.gguf_info import read_gguf_info
from avocado.node.store.store import ModelStore
from avocado.redact import redact_url

__all__ = ["FilePuller", "is_url_source", "model_name_for"]

_CHUNK = 1 << 20
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def is_url_source(text: str) -> bool:
    """An http(s) URL rather than a model name."""
    return text.startswith(("http://", "https://"))


def model_name_for(source: str) -> ModelName:
    """A model name from the file's name: lower-case, only the characters names allow."""
    stem = Path(unquote(urlsplit(source).path) if "://" in source else source).name
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    cleaned = re.sub(r"[^a-z0-9_.\-]+", "-", stem.lower()).strip("-.") or "model"
    return ModelName.parse(cleaned[:80])


class FilePuller:
    def __init__(self, store: ModelStore, source: str, policy: PullPolicy | None = None) -> None:
        try:  # before anything starts: a URL httpx cannot read is the request's fault
            httpx.URL(source)
        except httpx.InvalidURL as exc:
            raise RegistryError(f"{redact_url(source)} is not a URL that can be reached: {exc}") from None
        self.store = store
        self.source = source
        self.name = model_name_for(source)
        self.policy = policy or PullPolicy()

    def run(self, progress: Progress, cancel: threading.Event) -> None:
        label = Path(urlsplit(self.source).path).name or self.source
        path = self.store.blobs_dir / f"url-{hashlib.sha256(self.source.encode()).hexdigest()[:24]}-partial"
        self._download(path, label, progress, cancel)
        progress({"status": "verifying GGUF header"})
        try:
            read_gguf_info(path)
        except InvalidModelFile:
            path.unlink(missing_ok=True)  # not a model: do not resume it next time
            raise
        progress({"status": "verifying sha256 digest"})
        with disk_errors(f"storing {label}"):
            weights = self.store.add_blob_file(path)
            path.unlink()
        progress({"status": "writing manifest"})
        build_model(self.store, self.name.display, weights=weights, parent=redact_url(self.source))
        progress({"status": "success"})

    def _download(self, partial: Path, label: str, progress: Progress, cancel: threading.Event) -> None:
        what = f"pulling {redact_url(self.source)}"
        done = partial.stat().st_size if partial.is_file() else 0
        headers = {"Range": f"bytes={done}-"} if done else {}
        client = httpx.Client(
            timeout=_TIMEOUT,
            follow_redirects=True,
            headers={"User-Agent": "avocado"},
            transport=GuardedTransport(self.policy),
        )
        with (
            network_errors(what, redact_url(self.source)),
            client,
            client.stream("GET", self.source, headers=headers) as r,
        ):
            if r.status_code == 416:  # nothing left to fetch: the partial file is whole
                return
            check_response(r, what)
            if done and r.status_code != 206:
                done = 0  # the server ignored the Range: start over
            total = done + int(r.headers.get("content-length", 0)) or None
            self._check_size(total or done, partial, what)
            with disk_errors(what), partial.open("ab" if done else "wb") as handle:
                for chunk in r.iter_bytes(_CHUNK):
                    if cancel.is_set():
                        raise TransferCancelled(f"{what}: cancelled")
                    handle.write(chunk)
                    done += len(chunk)
                    self._check_size(done, partial, what, handle)
                    progress({"status": f"pulling {label}", "total": total or done, "completed": done})
        if total is not None and done != total:
            raise RegistryError(
                f"{what}: the download ended early ({done} of {total} bytes); pull again to resume"
            )

    def _check_size(self, size: int, partial: Path, what: str, handle: BinaryIO | None = None) -> None:
        """Past ``max_pull_size``: the partial download goes (it would only be refused again)."""
        try:
            self.policy.check_size(size, what)
        except TooLarge:
            if handle is not None:
                handle.close()
            partial.unlink(missing_ok=True)
            raise
