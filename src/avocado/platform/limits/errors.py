"""What the limits refuse: too many requests (``429`` with ``Retry-After``) and a hidden model
(``404``, the same answer as a model that does not exist)."""

from __future__ import annotations

from typing import Literal

from avocado.platform.errors import NotFound, TooManyRequests

__all__ = ["LimitExceeded", "ModelHidden", "Reason"]

Reason = Literal["requests_per_minute", "concurrent_requests", "tokens_per_day"]

_WHY: dict[Reason, str] = {
    "requests_per_minute": "too many requests this minute",
    "concurrent_requests": "too many requests at once",
    "tokens_per_day": "the tokens of the day are used up",
}


class LimitExceeded(TooManyRequests):
    def __init__(self, reason: Reason, limit: int, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(f"{_WHY[reason]} ({reason}: {limit}); try again in {seconds} s", seconds)
        self.reason = reason
        self.limit = limit


class ModelHidden(NotFound):
    def __init__(self, model: str) -> None:
        super().__init__(f"model '{model}' not found")
        self.model = model
