"""Everything a tunnel can raise, in one place.

``TunnelUnavailable`` is raised while a tunnel is being built (missing program, package, token or
target): retrying cannot help, so ``avocado serve`` should stop with the message. ``TunnelStartError``
is raised by ``open()``: the program exited, printed no URL, or took too long; retrying may help,
and :class:`~avocado.tunnel.supervisor.TunnelSupervisor` does. Messages never hold secrets.
"""

from __future__ import annotations

__all__ = ["TunnelError", "TunnelStartError", "TunnelTimeout", "TunnelUnavailable"]


class TunnelError(Exception):
    """Base of every tunnel error."""


class TunnelUnavailable(TunnelError):
    """The provider cannot run as configured here (unknown name, no binary, no token, no target)."""


class TunnelStartError(TunnelError):
    """The tunnel did not come up: its program exited or never said where it can be reached."""


class TunnelTimeout(TunnelStartError):
    """The tunnel did not come up within its ``open_timeout``."""
