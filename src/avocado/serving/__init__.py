"""What every Avocado HTTP server shares: bounds on how much and how slowly a client may send.

:mod:`~avocado.serving.protocol` bounds a request's head (uvicorn's protocol, subclassed);
:mod:`~avocado.serving.request_limits` bounds its body (ASGI middleware).
"""

from avocado.serving.protocol import MAX_HEAD, guarded_protocol, uvicorn_options
from avocado.serving.request_limits import MIN_RATE, Limits, RequestLimitsMiddleware, is_upload, limits_of

__all__ = [
    "MAX_HEAD",
    "MIN_RATE",
    "Limits",
    "RequestLimitsMiddleware",
    "guarded_protocol",
    "is_upload",
    "limits_of",
    "uvicorn_options",
]
