"""Encrypted broker connections: ``amqps://`` through a TLS proxy in front of the local RabbitMQ.

The certificates are made here (``trustme``); the client is told which CA to trust the way aiormq
reads it, ``?cafile=`` in the URL. A certificate the client cannot verify, or one for another host,
is refused before any AMQP byte is sent: the proxy forwards nothing.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
import trustme

from avocado.discovery import Announcer, BrokerError, DiscoveryWatcher, Outbox, ProbeListener
from tests.discovery.support import (
    BROKER_PORT,
    FAST,
    FakeNode,
    RecordingRegistry,
    eventually,
    new_service_id,
    require_broker,
    run,
)
from tests.discovery.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_proxy(ca: trustme.CA, *hosts: str) -> TcpProxy:
    """A TLS terminator in front of the broker, with a certificate from ``ca`` for ``hosts``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    return TcpProxy("127.0.0.1", BROKER_PORT, ssl=context)


def trusting(ca: trustme.CA, directory: Path) -> str:
    """``?cafile=...``: the query that makes the client trust ``ca``."""
    path = directory / "broker-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return f"?cafile={path}"


def test_announcer_watcher_and_probes_work_over_verified_tls(ca: trustme.CA, tmp_path: Path) -> None:
    require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        async with tls_proxy(ca, "127.0.0.1") as proxy:
            url = proxy.url("amqps") + trusting(ca, tmp_path)
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                announcer = Announcer(url, outbox, FakeNode(), service_id=service_id, interval=60, **FAST)
                probes = ProbeListener(url, announcer.changed, min_interval=0)
                await probes.start()
                await eventually(lambda: probes.listening, what="the probe listener's queue")
                async with DiscoveryWatcher(url, registry) as watcher, announcer:
                    # The watcher's probe went out over TLS, the node's listener got it over TLS and
                    # the answer came back over TLS.
                    await eventually(lambda: probes.probes >= 1, what="the watcher's probe")
                    await registry.wait_sequence(service_id, 2)
                    assert watcher.connected and announcer.stats().connected
                    assert announcer.stats().broker.startswith("amqps://guest:***@127.0.0.1:")
                await probes.close()
            assert proxy.accepted >= 3  # announcer, watcher and probe listener, each through the proxy
        assert [a.status for a in registry.accepted[service_id]][-1] == "offline"

    run(scenario)


@pytest.mark.parametrize(
    ("hosts", "trusted", "why", "hint"),
    [
        (("127.0.0.1",), False, "unable to get local issuer certificate", "trust its CA with ?cafile="),
        (("broker.example",), True, "IP address mismatch", "connect by a name it holds"),
    ],
    ids=["untrusted-ca", "wrong-host"],
)
def test_a_certificate_that_cannot_be_verified_is_refused_before_anything_is_sent(
    ca: trustme.CA, tmp_path: Path, hosts: tuple[str, ...], trusted: bool, why: str, hint: str
) -> None:
    require_broker()

    async def scenario() -> None:
        async with tls_proxy(ca, *hosts) as proxy:
            url = proxy.url("amqps") + (trusting(ca, tmp_path) if trusted else "")
            with pytest.raises(BrokerError) as refused:
                await DiscoveryWatcher(url).start()
            message = str(refused.value)
            assert "the broker's TLS certificate was refused" in message and why in message
            assert hint in message and "guest:guest" not in message

            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                announcer = Announcer(url, outbox, FakeNode(), service_id=new_service_id(), **FAST)
                await announcer.start()
                await eventually(lambda: announcer.stats().last_error is not None, what="a refused attempt")
                stats = announcer.stats()
                assert stats.last_error is not None and why in stats.last_error and not stats.connected
                with pytest.raises(BrokerError, match=why):
                    await announcer.use_broker(url)  # a switch to it is refused as clearly
                await announcer.close(offline=False)
                assert [a.sequence for a in await asyncio.to_thread(outbox.pending)] == [1]  # kept
            assert proxy.accepted == 0  # no connection got past the handshake: nothing sent in clear

    run(scenario)


def test_turning_verification_off_works_and_is_warned_about(
    ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_broker()
    service_id = new_service_id()

    async def scenario() -> None:
        registry = RecordingRegistry()
        async with tls_proxy(ca, "broker.example") as proxy:
            url = proxy.url("amqps") + "?no_verify_ssl=1"  # neither the CA nor the name would pass
            with Outbox(tmp_path / "outbox.sqlite3") as outbox:
                async with (
                    DiscoveryWatcher(url, registry),
                    Announcer(url, outbox, FakeNode(), service_id=service_id, **FAST),
                ):
                    await registry.wait_sequence(service_id, 1)

    with caplog.at_level(logging.WARNING, logger="avocado.discovery"):
        run(scenario)
    warnings = [r.getMessage() for r in caplog.records if "is not verified" in r.getMessage()]
    assert len(warnings) == 2 and all("guest:***@" in w for w in warnings)  # the watcher's, the node's
