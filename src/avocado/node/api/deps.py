"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from avocado.node.service import NodeService

__all__ = ["Service"]


async def get_service(request: Request) -> NodeService:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off per request.
    service: NodeService = request.app.state.service
    return service


Service = Annotated[NodeService, Depends(get_service)]
