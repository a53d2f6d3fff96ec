"""Checks the conversation routes share: which models a user may chat with (the upstream's list,
briefly cached, narrowed by the user's limits: a model they may not see is unknown to them)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from avocado.platform.catalog.service import Catalog
from avocado.platform.conversations.errors import UnknownModel
from avocado.platform.limits.schemas import LimitValues
from avocado.platform.limits.service import Account, Limits, model_visible

__all__ = ["KnownModels"]

TTL = 15.0  # seconds a user's model list is trusted: a send must not wait on the catalog each time


class KnownModels:
    def __init__(self, catalog: Catalog, limits: Limits | None = None, ttl: float = TTL) -> None:
        self.catalog = catalog
        self.limits = limits
        self.ttl = ttl
        self._seen: dict[str, tuple[float, frozenset[str]]] = {}

    async def names(self, user_id: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._seen.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        names = frozenset(model.name for model in await self.catalog.models(user_id))
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[user_id] = (now + self.ttl, names)
        return names

    async def check(self, user: Account, models: Iterable[str], effective: LimitValues | None = None) -> None:
        """:class:`UnknownModel` for the first of ``models`` this user may not use (``effective``: the
        user's limits, when this request has read them already)."""
        names = await self.names(user.id)
        if effective is None and self.limits is not None:
            effective = await self.limits.effective(user)
        patterns = effective.models if effective is not None else None
        for model in models:
            if model not in names and f"{model}:latest" not in names:
                self._seen.pop(user.id, None)  # maybe installed a moment ago: ask again next time
                raise UnknownModel(model)
            if not model_visible(model, patterns):
                raise UnknownModel(model)
