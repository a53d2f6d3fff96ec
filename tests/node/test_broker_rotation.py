"""Replacing a running node's broker credentials: announcements keep arriving, none lost.

Two RabbitMQ users of the test's own (made with ``rabbitmqctl``, deleted after): the node starts
announcing as the first, is told the second's URL, and the first is deleted, which closes every
connection it had. The node's next announcements must arrive all the same.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from avocado.discovery import DiscoveryWatcher
from tests.discovery.support import (
    RecordingRegistry,
    broker_user,
    eventually,
    rabbitmqctl,
    require_broker,
)
from tests.support import free_port, linked_home, start_node

KEY = "rotation-key-" + "k" * 20


def test_broker_credentials_are_replaced_without_losing_announcements(home: Path, tmp_path: Path) -> None:
    broker = require_broker()
    with broker_user() as (first, first_url), broker_user() as (second, second_url):
        node = start_node(
            linked_home(home, tmp_path / "home"), api_key=KEY, amqp_url=first_url, announce_interval=60
        )
        http = httpx.Client(base_url=node.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        service_id = http.get("/api/avocado/status").json()["service_id"]

        async def scenario() -> None:
            registry = RecordingRegistry()
            async with DiscoveryWatcher(broker, registry):
                # The watcher's probe makes the node announce now (through the first user).
                await registry.wait_for(lambda r: r.get(service_id) is not None, timeout=10)

                answer = await asyncio.to_thread(
                    http.post, "/api/avocado/credentials", json={"amqp_url": second_url}
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["amqp_url"]["broker"] == f"amqp://{second}:***@127.0.0.1:5672/"
                assert second_url.split(":")[2].split("@")[0] not in answer.text  # no password
                assert "note" in answer.json()  # the setting still holds the first URL

                await asyncio.to_thread(rabbitmqctl, "delete_user", first)  # closes its connections
                assert (await asyncio.to_thread(http.post, "/api/avocado/drain")).status_code == 200
                await registry.wait_for(lambda r: r.get(service_id).status == "draining", timeout=10)

                def announcing() -> dict[str, Any]:
                    report: dict[str, Any] = http.get("/api/avocado/status").json()["announce"]
                    return report

                # URLs that do not work change nothing: refused (400), unreachable (502).
                wrong = second_url.replace(f"{second}:", f"{second}:not-", 1)
                closed = f"amqp://{second}:whatever@127.0.0.1:{free_port()}/"
                for url, status, why in (
                    (wrong, 400, "refused the login"),
                    (closed, 502, "cannot reach the broker (Connection refused)"),
                ):
                    answer = await asyncio.to_thread(
                        http.post, "/api/avocado/credentials", json={"amqp_url": url}
                    )
                    assert answer.status_code == status and why in answer.json()["error"], answer.text
                    assert "nothing changed" in answer.json()["error"] and "not-" not in answer.text

                report = announcing()
                assert report["broker"] == f"amqp://{second}:***@127.0.0.1:5672/" and report["connected"]
                # The broker's confirm can reach the node after the watcher got the announcement.
                await eventually(lambda: announcing()["pending"] == 0, what="the confirm")
            # Every announcement the watcher got came in order, each once.
            got = registry.received[service_id]
            assert got == sorted(set(got))

        try:
            asyncio.run(scenario())
        finally:
            http.close()
            node.stop()
