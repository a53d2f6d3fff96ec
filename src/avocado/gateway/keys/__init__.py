"""Virtual API keys, as LiteLLM has them: per-key models, limits, expiry, revocation and usage.

``models`` is the table, ``schemas`` the admin API's JSON, ``service`` the logic (with the hot-path
cache and batched usage counts), ``router`` the admin API and ``admission`` the request-path hook.
"""

from __future__ import annotations

from avocado.gateway.keys.admission import (
    KeyAdmission,
    KeyTicket,
    bearer_key,
    master_guard,
    metrics_guard,
    ticket_limits,
)
from avocado.gateway.keys.router import KEYS_PATH, keys_router
from avocado.gateway.keys.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic, parse_expires_in
from avocado.gateway.keys.service import KeyLimits, KeyRecord, KeyService, hash_key, new_key

__all__ = [
    "KEYS_PATH",
    "KeyAdmission",
    "KeyCreate",
    "KeyCreated",
    "KeyLimits",
    "KeyList",
    "KeyPublic",
    "KeyRecord",
    "KeyService",
    "KeyTicket",
    "bearer_key",
    "hash_key",
    "keys_router",
    "master_guard",
    "metrics_guard",
    "new_key",
    "parse_expires_in",
    "ticket_limits",
]
