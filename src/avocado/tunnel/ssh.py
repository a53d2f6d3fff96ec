"""``ssh -R``: a reverse tunnel through any SSH server, self-hosted or a public service.

Where the public URL comes from, first match wins:

* given (``public_url``, ``--tunnel-url``): returned once the server confirms the forward;
* a service that prints it (localhost.run, serveo.net, pinggy.io, or ``session=True``): ssh opens a
  session and the URL is read from what the server prints (see :func:`find_public_url`);
* remote port 0 (the default elsewhere): the server picks a port, OpenSSH says
  ``Allocated port N for remote forward``, and the URL is ``http://<ssh host>:N``;
* a fixed remote port: ``http://<ssh host>:<port>`` once the server confirms the forward.

The forward listens on the server's loopback unless its sshd says ``GatewayPorts yes``.
Host keys are accepted on first use and pinned in ``<state_dir>/known_hosts``; ``~/.ssh`` is only read.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from avocado.tunnel.errors import TunnelUnavailable
from avocado.tunnel.process import ChildProcess, ProcessTunnel

__all__ = ["URL_SERVICES", "SshTarget", "SshTunnel", "find_public_url", "parse_target"]

# Public services that print an https URL on the session of ``ssh -R <port>:localhost:PORT host``,
# with the remote port their documentation asks for.
URL_SERVICES = {"localhost.run": 80, "serveo.net": 80, "a.pinggy.io": 0}

_TARGET = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^\s:@\[\]]+)(?::(?P<port>\d{1,5}))?")
_ALLOCATED = re.compile(r"^Allocated port (\d+) for remote forward")
_FORWARDED = re.compile(
    r"forwarding_success: all expected forwarding replies received|remote forward success for:"
)
_URL = re.compile(r"https?://[^\s\"'<>()\[\]{}|,]+")
_TUNNEL_WORDS = re.compile(r"tunnel|forward", re.IGNORECASE)
# Options the tunnel cannot work without; given first, so that they win over ``options`` and ~/.ssh/config.
_FORCED = ("BatchMode=yes", "ExitOnForwardFailure=yes", "StrictHostKeyChecking=accept-new", "LogLevel=DEBUG1")
# Defaults that ``options`` may override.
_DEFAULTS = ("ServerAliveInterval=15", "ServerAliveCountMax=3", "ConnectTimeout=15")


@dataclass(frozen=True, slots=True)
class SshTarget:
    """``user@host:port``, parsed; ``host`` keeps an IPv6 address's brackets."""

    user: str | None
    host: str
    port: int | None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{self.host}{port}"


def parse_target(target: str) -> SshTarget:
    """``[user@]host[:port]`` (``[::1]:2222`` for IPv6); raises :class:`TunnelUnavailable`."""
    match = _TARGET.fullmatch(target.strip())
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise TunnelUnavailable(
            "--tunnel ssh needs a target like user@host or user@host:port (IPv6: user@[::1]:22), "
            f"not {target!r}"
        )
    return SshTarget(match["user"], match["host"], port)


def find_public_url(line: str) -> str | None:
    """The public URL a tunnel service prints, if ``line`` has it.

    A line counts when it mentions a tunnel or forwarding (``... tunneled with tls termination,
    https://x.lhr.life``, ``Forwarding HTTP traffic from https://x.serveo.net``) or holds nothing but
    URLs; URLs in brackets or parentheses (links in a banner) never count. https wins over http.
    """
    urls = [
        m[0].rstrip(".:;") for m in _URL.finditer(line) if line[m.start() - 1 : m.start()] not in ("[", "(")
    ]
    if not urls:
        return None
    bare = not _URL.sub("", line).strip(" \t|*-")
    if not bare and not _TUNNEL_WORDS.search(_URL.sub("", line)):
        return None
    return next((url for url in urls if url.startswith("https://")), urls[0])


def _printed_url() -> Callable[[str], str | None]:
    """The URL the server prints, once ssh has also seen the forward established (in either order)."""
    found: list[str] = []
    forwarded: list[bool] = []

    def ready(line: str) -> str | None:
        if _FORWARDED.search(line):
            forwarded.append(True)
        elif not found and not line.startswith("debug") and (url := find_public_url(line)):
            found.append(url)
        return found[0] if found and forwarded else None

    return ready


def _option(option: str) -> str:
    option = option.strip()
    if not option or option.startswith("-") or not re.match(r"^[A-Za-z]+\s*[= ]", option):
        raise TunnelUnavailable(f"ssh options look like Name=value (as after ssh -o), not {option!r}")
    return option


def _quoted(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text


class SshTunnel(ProcessTunnel):
    """``ssh -N -R`` (or with a session, for services that print the URL) to one SSH server."""

    name = "ssh"

    def __init__(
        self,
        local_url: str,
        target: str,
        *,
        state_dir: Path,
        identity_file: Path | None = None,
        options: Sequence[str] = (),
        remote_port: int | None = None,
        public_url: str | None = None,
        session: bool | None = None,
        binary: str = "ssh",
        log_path: Path | None = None,
        open_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(local_url, log_path=log_path, open_timeout=open_timeout, stop_timeout=stop_timeout)
        path = shutil.which(binary)
        if path is None:
            raise TunnelUnavailable(f"--tunnel ssh needs the OpenSSH client; no {binary!r} found on PATH")
        self.binary = path
        self.target = parse_target(target)
        self.state_dir = state_dir
        self.identity_file = identity_file
        self.options = tuple(_option(option) for option in options)
        service = URL_SERVICES.get(self.target.host.lower())
        self.remote_port = remote_port if remote_port is not None else (service or 0)
        if not 0 <= self.remote_port < 65536:
            raise TunnelUnavailable(f"the ssh remote port must be 0-65535, not {self.remote_port}")
        self.given_url = public_url.rstrip("/") if public_url else None
        self.session = session if session is not None else service is not None and self.given_url is None
        self.what = self._what()

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def argv(self) -> list[str]:
        """The ssh command line (without the orphan guard)."""
        argv = [self.binary, "-T"] if self.session else [self.binary, "-N", "-T"]
        if self.target.port is not None:
            argv += ["-p", str(self.target.port)]
        if self.identity_file is not None:
            argv += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        forced = (*_FORCED, f"UserKnownHostsFile={_quoted(self.known_hosts)}")
        for option in (*forced, *self.options, *_DEFAULTS):
            argv += ["-o", option]
        user = f"{self.target.user}@" if self.target.user else ""
        return [*argv, "-R", self._forward(), f"{user}{self.target.host.strip('[]')}"]

    def _forward(self) -> str:
        parts = urlsplit(self.local_url)
        host = parts.hostname or "127.0.0.1"
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{self.remote_port}:{f'[{host}]' if ':' in host else host}:{port}"

    def _what(self) -> str:
        if self.given_url is not None or (self.remote_port != 0 and not self.session):
            return "the remote forward as established"
        if self.session:
            return "a public URL"
        return "the allocated remote port"

    def _child_process(self) -> ChildProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return ChildProcess(
            f"ssh ({self.target})",
            self.argv(),
            log_path=self.log_path,
            keep=lambda line: not line.startswith("debug"),
            stdin=self.session,  # a service may end the session when its input ends
        )

    def _ready(self) -> Callable[[str], str | None]:
        if self.given_url is not None:
            given = self.given_url
            return lambda line: given if _FORWARDED.search(line) else None
        if self.session:
            return _printed_url()
        host = self.target.host
        if self.remote_port != 0:
            fixed = f"http://{host}:{self.remote_port}"
            return lambda line: fixed if _FORWARDED.search(line) else None

        def allocated(line: str) -> str | None:
            match = _ALLOCATED.search(line)
            return f"http://{host}:{match[1]}" if match else None

        return allocated
