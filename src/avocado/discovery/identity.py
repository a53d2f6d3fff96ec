"""A node's ``service_id``: a UUID made once and kept in a file in its home, so it survives restarts."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

__all__ = ["SERVICE_ID_FILE", "load_service_id"]

log = logging.getLogger(__name__)

SERVICE_ID_FILE = "service-id"


def load_service_id(state_dir: Path) -> str:
    """The id kept in ``state_dir/service-id``; a new uuid4 is written there the first time.

    The file appears with its full content or not at all (written aside, then hard-linked into
    place), so a crash or a second process never leaves or reads half an id.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SERVICE_ID_FILE
    existing = _read(path)
    if existing:
        return existing
    if existing == "":
        log.warning("%s is empty; giving this node a new service id", path)
        path.unlink()
    candidate = path.with_name(f".{SERVICE_ID_FILE}.{uuid.uuid4().hex}")
    candidate.write_text(str(uuid.uuid4()) + "\n")
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass  # someone else got there first: theirs wins
    finally:
        candidate.unlink()
    value = _read(path)
    if not value:
        raise RuntimeError(f"could not create a service id in {path}")
    return value


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
