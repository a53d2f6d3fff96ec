"""The gateway's admission: API key first, then the key's limits; metrics when the request ends."""

from __future__ import annotations

from starlette.requests import Request

from avocado.gateway.hooks import Admission, Outcome, Refused, Ticket
from avocado.gateway.keys import ticket_limits
from avocado.gateway.limits import Lease, Limiter
from avocado.gateway.metrics import ANONYMOUS, GatewayMetrics

__all__ = ["GatewayAdmission"]


class GatewayAdmission:
    """Chains ``keys`` (who may call, which models) with ``limiter`` (rpm, tpm, parallel per key)."""

    def __init__(self, keys: Admission, limiter: Limiter, metrics: GatewayMetrics) -> None:
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics

    async def admit(self, request: Request, model: str | None) -> Ticket:
        ticket = await self.keys.admit(request, model)
        limits = ticket_limits(ticket)
        if ticket.key_id is not None and limits is not None and not limits.unlimited:
            try:
                lease = await self.limiter.acquire(ticket.key_id, limits)
            except Refused as refused:  # counted in the metrics; not in the key's usage (nothing served)
                self.metrics.observe(
                    _refused(request, model, refused.status), ticket.key_name or ticket.key_id
                )
                raise
            ticket.releases.append(lease)
            ticket.headers = lease.headers
        return ticket

    async def finish(self, ticket: Ticket, outcome: Outcome) -> None:
        for lease in ticket.releases:
            if isinstance(lease, Lease):
                await lease.release(outcome.tokens_in + outcome.tokens_out)
        await self.keys.finish(ticket, outcome)
        if outcome.model is not None:  # listings (/api/tags, /v1/models) are not model requests
            self.metrics.observe(outcome, ticket.key_name or ticket.key_id or ANONYMOUS)


def _refused(request: Request, model: str | None, status: int) -> Outcome:
    return Outcome(
        request_id=getattr(request.state, "request_id", ""),
        model=model,
        node=None,
        status=status,
        streamed=False,
        latency_s=0.0,
        error="rate_limited",
    )
