"""Service discovery over RabbitMQ: nodes announce where they are; watchers keep a registry of them.

A node records each announcement in a durable :class:`Outbox` and an :class:`Announcer` publishes it
(topic exchange ``service-discovery``, routing key ``inference.url.changed``) once the broker is
reachable, in order, until confirmed. A :class:`DiscoveryWatcher` consumes them into a
:class:`Registry` of live nodes.
"""

from __future__ import annotations

from avocado.discovery.broker import BrokerError, describe_broker_error
from avocado.discovery.identity import SERVICE_ID_FILE, load_service_id
from avocado.discovery.messages import (
    EXCHANGE,
    ROUTING_KEY,
    SCHEMA,
    Announcement,
    InvalidAnnouncement,
    ModelInfo,
    Status,
    dump_announcement,
    parse_announcement,
)
from avocado.discovery.outbox import OUTBOX_FILE, Outbox
from avocado.discovery.probe import PROBE_ROUTING_KEY, ProbeListener, send_probe
from avocado.discovery.publisher import Announcer, AnnouncerStats, AnnounceState, StateProvider
from avocado.discovery.registry import Registry
from avocado.discovery.watcher import DiscoveryWatcher
from avocado.redact import redact_text, redact_url

__all__ = [
    "EXCHANGE",
    "OUTBOX_FILE",
    "PROBE_ROUTING_KEY",
    "ROUTING_KEY",
    "SCHEMA",
    "SERVICE_ID_FILE",
    "AnnounceState",
    "Announcement",
    "Announcer",
    "AnnouncerStats",
    "BrokerError",
    "DiscoveryWatcher",
    "InvalidAnnouncement",
    "ModelInfo",
    "Outbox",
    "ProbeListener",
    "Registry",
    "StateProvider",
    "Status",
    "describe_broker_error",
    "dump_announcement",
    "load_service_id",
    "parse_announcement",
    "redact_text",
    "redact_url",
    "send_probe",
]
