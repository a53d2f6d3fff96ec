"""Models as the platform lists them, from an Ollama-compatible ``/api/tags``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

__all__ = ["ModelDetails", "ModelPublic"]


class ModelDetails(BaseModel):
    family: str | None = None
    parameter_size: str | None = None
    quantization_level: str | None = None
    format: str | None = None


class ModelPublic(BaseModel):
    name: str
    size: int | None = None
    modified_at: datetime | None = None
    digest: str | None = None
    details: ModelDetails
