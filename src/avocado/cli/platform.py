"""``avocado platform`` (accounts, models and the web UI for people) and ``avocado users`` (operators).

``avocado users`` acts on the platform's database directly, as a framework's management command
does: it works while the platform is down, needs no account, and follows the same rules as the API
(the last active admin stays, every change is audited with the actor ``cli``). Sessions it ends
stop on running platforms within ``revocation_poll`` (2 s by default).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

import avocado
from avocado.cli.models import human_ago, print_columns
from avocado.platform.errors import PlatformError
from avocado.platform.settings import PlatformSettings, load_platform_settings

__all__ = ["register"]

errors = Console(stderr=True)

users_app = typer.Typer(
    help="Manage the platform's accounts on its database: list, create, approve, set-role, disable, "
    "reset-link, audit.",
    no_args_is_help=True,
)

ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
Home = Annotated[Path | None, typer.Option(help="Data directory, AVOCADO_HOME (default ~/.avocado)")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Email = Annotated[str, typer.Argument(help="The account's e-mail address")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]Error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def _settings(config: Path | None, **overrides: object) -> PlatformSettings:
    try:
        return load_platform_settings(config, **overrides)
    except (ValidationError, FileNotFoundError) as exc:
        from avocado.cli.main import settings_error

        raise _fail(f"invalid settings: {settings_error(exc)}", 2) from None


# -- avocado platform -------------------------------------------------------------------------------


def platform(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080)")] = None,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="The address users reach (reset links, redirects)")
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream", help="The gateway or Ollama-compatible endpoint models are reached through"
        ),
    ] = None,
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """Start the platform: accounts and models for people, the API under /api/v1, the web UI at /."""
    settings = _settings(
        config, host=host, port=port, public_url=public_url, upstream_url=upstream, home=home
    )
    serve_platform(settings, f"avocado platform {avocado.__version__} listening on {settings.local_url}")


def serve_platform(settings: PlatformSettings, banner: str) -> None:
    import uvicorn

    from avocado.logs import configure_logging
    from avocado.platform.build import PlatformRefused, build_platform
    from avocado.platform.settings import signing_key_file
    from avocado.secret_file import SecretFileError
    from avocado.serving import uvicorn_options

    configure_logging(settings.log_level, settings.log_format, settings.logs_dir)
    try:
        application = build_platform(settings)
        created = application.state.generated_key
        if created:
            typer.echo(
                f"the platform's signing key was generated into {signing_key_file(settings.home)}", err=True
            )
    except (PlatformRefused, SecretFileError, OSError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(banner, err=True)
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-* from 127.0.0.1 and rewrite
    # the client before the platform's own ProxyTrust (trusted_proxies) can judge it.
    options = {**uvicorn_options(settings), "proxy_headers": False}
    uvicorn.run(application, host=settings.host, port=settings.port, **options)


# -- avocado users ----------------------------------------------------------------------------------


@contextmanager
def _accounts(config: Path | None, home: Path | None) -> Iterator[Any]:
    from avocado.platform.build import open_accounts

    settings = _settings(config, home=home)
    try:
        accounts, engine = open_accounts(settings)
    except Exception as exc:
        raise _fail(f"cannot open the platform's database: {exc}") from None
    try:
        yield accounts
    except PlatformError as exc:
        raise _fail(exc.detail) from None
    finally:
        engine.dispose()


def _user(accounts: Any, email: str) -> Any:
    user = accounts.find(email)
    if user is None:
        raise _fail(f"no account with the e-mail address {email}")
    return user


def _as_dict(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "status": user.status,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


@users_app.command("list")
def list_users(
    status: Annotated[str | None, typer.Option(help="Only pending, active or disabled accounts")] = None,
    search: Annotated[str | None, typer.Option(help="Part of an e-mail address or a name")] = None,
    as_json: AsJson = False,
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """List accounts, oldest first."""
    if status is not None and status not in ("pending", "active", "disabled"):
        raise _fail("--status is pending, active or disabled", 2)
    with _accounts(config, home) as accounts:
        users, cursor = accounts.list_users(status, search, None, 200)
        while cursor is not None:
            more, cursor = accounts.list_users(status, search, cursor, 200)
            users += more
    if as_json:
        print(json.dumps([_as_dict(user) for user in users], indent=2))
        return
    rows = [
        [
            u.email,
            u.name,
            u.role,
            u.status,
            human_ago(u.created_at.isoformat()),
            human_ago(u.last_login_at.isoformat()) if u.last_login_at else "never",
        ]
        for u in users
    ]
    print_columns(["EMAIL", "NAME", "ROLE", "STATUS", "CREATED", "LAST SIGN-IN"], rows)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("create")
def create_user(
    email: Email,
    name: Annotated[str | None, typer.Option(help="Display name (default: the e-mail's local part)")] = None,
    role: Annotated[str, typer.Option(help="admin or user")] = "user",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin")
    ] = False,
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """Create an active account (the password is asked for, never taken as an argument)."""
    from avocado.platform.accounts.schemas import AdminUserCreate

    password = _read_password(password_stdin)
    try:
        spec = AdminUserCreate.model_validate(
            {"email": email, "password": password, "name": name or email.split("@")[0], "role": role}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(problems.replace("Value error, ", ""), 2) from None
    from avocado.platform.accounts.service import CLI

    with _accounts(config, home) as accounts:
        user = accounts.create_user(
            spec.email,
            spec.password,
            spec.name,
            spec.role,
            spec.status,
            actor_id=None,
            client=CLI,
            first_is_admin=True,  # as in the API: a fresh platform's first account runs it
        )
    typer.echo(f"created {user.email} ({user.role})", err=True)


def _update(
    email: str, config: Path | None, home: Path | None, *, only_from: str | None = None, **change: str
) -> None:
    from avocado.platform.accounts.service import CLI

    with _accounts(config, home) as accounts:
        user = _user(accounts, email)
        if only_from is not None and user.status != only_from:
            raise _fail(f"{user.email} is {user.status}, not {only_from}: nothing to do here", 1)
        updated = accounts.update_user(
            user.id, role=change.get("role"), status=change.get("status"), actor_id=None, client=CLI
        )
    typer.echo(f"{updated.email}: {updated.role}, {updated.status}", err=True)


@users_app.command("approve")
def approve(email: Email, config: ConfigFile = None, home: Home = None) -> None:
    """Let a pending account sign in (a disabled one stays disabled: see enable)."""
    _update(email, config, home, only_from="pending", status="active")


@users_app.command("enable")
def enable(email: Email, config: ConfigFile = None, home: Home = None) -> None:
    """Let a disabled account sign in again."""
    _update(email, config, home, status="active")


@users_app.command("disable")
def disable(email: Email, config: ConfigFile = None, home: Home = None) -> None:
    """Stop an account: it cannot sign in, and its sessions end (within seconds on running platforms)."""
    _update(email, config, home, status="disabled")


@users_app.command("set-role")
def set_role(
    email: Email,
    role: Annotated[str, typer.Argument(help="admin or user")],
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """Make an account an admin, or a user again (the last active admin stays one)."""
    if role not in ("admin", "user"):
        raise _fail("the role is admin or user", 2)
    _update(email, config, home, role=role)


@users_app.command("reset-link")
def reset_link(email: Email, config: ConfigFile = None, home: Home = None) -> None:
    """Print a one-time password reset link for the account (it expires after reset_ttl, 1h)."""
    from avocado.platform.accounts.service import CLI

    settings = _settings(config, home=home)
    with _accounts(config, home) as accounts:
        user = _user(accounts, email)
        token, expires = accounts.issue_reset(user.id, actor_id=None, client=CLI)
    print(f"{settings.base_url}/reset-password#token={token}")
    typer.echo(f"valid once, until {expires:%Y-%m-%d %H:%M} UTC", err=True)


@users_app.command("reset-mfa")
def reset_mfa(email: Email, config: ConfigFile = None, home: Home = None) -> None:
    """Turn the account's two-factor sign-in off (a lost authenticator): the password alone signs in."""
    from avocado.platform.accounts.service import CLI

    with _accounts(config, home) as accounts:
        user = _user(accounts, email)
        was_on = accounts.reset_mfa(user.id, actor_id=None, client=CLI)
    typer.echo(f"two-factor sign-in {'turned off' if was_on else 'was not on'} for {user.email}", err=True)


@users_app.command("audit")
def audit(
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. signin.failed")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Only events about this e-mail's account")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many events, newest first")] = 50,
    as_json: AsJson = False,
    config: ConfigFile = None,
    home: Home = None,
) -> None:
    """Show the security log: sign-ins, password changes, role and status changes, revocations."""
    from avocado.platform.admin.service import AuditFilter

    with _accounts(config, home) as accounts:
        subject = _user(accounts, user).id if user else None
        events, cursor = accounts.audit.page(
            AuditFilter(action=action, subject_id=subject), None, min(limit, 200)
        )
        while cursor is not None and len(events) < limit:
            more, cursor = accounts.audit.page(AuditFilter(action=action, subject_id=subject), cursor, 200)
            events += more
        events = events[:limit]
        ids = {e.actor_id for e in events} | {e.subject_id for e in events}
        found = (accounts.get(user_id) for user_id in ids if user_id)
        emails = {u.id: u.email for u in found if u is not None}
    if as_json:
        print(json.dumps([_event(e) for e in events], indent=2))
        return
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.action,
            emails.get(e.actor_id or "", e.actor_id or "-"),
            emails.get(e.subject_id or "", e.subject_id or "-"),
            e.address or "-",
            json.dumps(e.detail) if e.detail else "",
        ]
        for e in events
    ]
    print_columns(["TIME (UTC)", "ACTION", "ACTOR", "SUBJECT", "ADDRESS", "DETAIL"], rows)


def _event(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "action": event.action,
        "actor_id": event.actor_id,
        "subject_id": event.subject_id,
        "address": event.address,
        "detail": event.detail,
    }


def register(app: typer.Typer) -> None:
    app.command("platform")(platform)
    app.add_typer(users_app, name="users")
