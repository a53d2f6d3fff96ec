"""The conversations domain's errors, each a :class:`~avocado.platform.errors.PlatformError`."""

from __future__ import annotations

from avocado.platform.errors import Conflict, NotFound, PlatformError

__all__ = ["AnswerFinished", "NoSuchConversation", "NoSuchFolder", "NoSuchMessage", "UnknownModel"]


class NoSuchConversation(NotFound):
    def __init__(self) -> None:
        super().__init__("no such conversation")


class NoSuchMessage(NotFound):
    def __init__(self) -> None:
        super().__init__("no such message in this conversation")


class NoSuchFolder(NotFound):
    def __init__(self) -> None:
        super().__init__("no such folder")


class UnknownModel(PlatformError):
    status = 422

    def __init__(self, name: str) -> None:
        super().__init__(f"model: {name!r} is not a model you can use (GET /api/v1/models lists them)")


class AnswerFinished(Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"the answer is not being written (it is {status})")
