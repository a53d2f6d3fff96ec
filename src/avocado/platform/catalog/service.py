"""The models a user may use, as the upstream (our gateway, a node, or a plain Ollama) lists them.

The platform reaches models only through their HTTP API, as any client does: ``GET /api/tags``
with the platform's service credential, and the user's id in ``X-Avocado-User`` so the upstream
can attribute usage. Nothing of the node or the gateway is imported.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from avocado.platform.catalog.schemas import ModelDetails, ModelPublic
from avocado.platform.errors import PlatformError
from avocado.redact import redact_url

__all__ = ["USER_HEADER", "Catalog", "UpstreamError"]

log = logging.getLogger(__name__)

USER_HEADER = "X-Avocado-User"


class UpstreamError(PlatformError):
    status = 502


def _model(entry: dict[str, Any]) -> ModelPublic | None:
    name = entry.get("name") or entry.get("model")
    if not isinstance(name, str) or not name:
        return None
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    assert isinstance(details, dict)
    return ModelPublic(
        name=name,
        size=entry.get("size") if isinstance(entry.get("size"), int) else None,
        modified_at=entry.get("modified_at"),
        digest=entry.get("digest") if isinstance(entry.get("digest"), str) else None,
        details=ModelDetails(
            family=details.get("family"),
            parameter_size=details.get("parameter_size"),
            quantization_level=details.get("quantization_level"),
            format=details.get("format"),
        ),
    )


class Catalog:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def models(self, user_id: str) -> list[ModelPublic]:
        """Every model upstream lists, sorted by name."""
        where = redact_url(self.base_url)
        try:
            response = await self._http.get("/api/tags", headers={USER_HEADER: user_id})
        except httpx.HTTPError as exc:
            log.warning("model server %s: %s", where, exc)
            raise UpstreamError(f"the model server at {where} cannot be reached") from None
        if response.status_code in (401, 403):
            raise UpstreamError(
                f"the model server at {where} refused the platform's credential (upstream_key)"
            )
        if not response.is_success:
            raise UpstreamError(f"the model server at {where} answered {response.status_code}")
        try:
            entries = response.json().get("models") or []
        except (ValueError, AttributeError):
            raise UpstreamError(
                f"the model server at {where} answered something other than a model list"
            ) from None
        models = [model for model in (_model(e) for e in entries if isinstance(e, dict)) if model is not None]
        return sorted(models, key=lambda model: model.name)

    async def aclose(self) -> None:
        await self._http.aclose()
