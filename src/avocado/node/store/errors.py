"""Errors raised by the model store; the API maps them to HTTP statuses."""

from __future__ import annotations

__all__ = ["BlobNotFound", "InvalidModelFile", "ModelNotFound", "StoreError"]


class StoreError(Exception):
    """Something about the store or a model in it is wrong."""


class ModelNotFound(StoreError):
    """No manifest by that name."""


class BlobNotFound(StoreError):
    """A manifest names a blob the store does not have."""


class InvalidModelFile(StoreError):
    """A file that should be GGUF weights is missing or is not GGUF."""
