"""Single sign-on with an OpenID Connect provider: the protocol (``authlib``) and the accounts it signs in.

:class:`OidcProvider` talks to the provider: it reads the discovery document from the issuer
(``ISSUER/.well-known/openid-configuration``, once, then kept), builds the authorization URL with a
state, a nonce and a PKCE challenge (S256), exchanges the code for tokens and validates the ID
token (signature against the provider's JWKS, issuer, audience, expiry, nonce).

:class:`Identities` maps a provider's account (issuer, subject) to one of ours. A known identity
signs in its user. An unknown one is linked to an existing account with the same e-mail **only
when the provider says the address is verified** (``email_verified: true``); otherwise a provider
account claiming someone's address could take their account over. With no account for the address,
a new one is made (again only for a verified address) and follows the sign-up policy, as
``POST /auth/register`` does: the first account is an active admin, then ``approval`` makes it
``pending``, ``closed`` refuses it. Links, refusals and sign-ins are audited.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import StarletteIntegration, StarletteOAuth2App
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from avocado.platform.accounts.errors import AccountDisabled, AccountPending, SignupClosed
from avocado.platform.accounts.models import OidcIdentity, User
from avocado.platform.accounts.service import AccountService, Client, UserRecord
from avocado.platform.admin.service import Audit
from avocado.platform.errors import Forbidden, PlatformError

__all__ = [
    "Authorization",
    "Identities",
    "IdentityRecord",
    "OidcClaims",
    "OidcFailed",
    "OidcProvider",
    "ProviderUnavailable",
]

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"


def _transport_errors() -> tuple[type[Exception], ...]:
    """What a failed request to the provider raises: authlib uses ``httpx2`` when it is installed
    (it is, through other dependencies), ``httpx`` otherwise."""
    errors: list[type[Exception]] = [httpx.HTTPError]
    try:
        import httpx2
    except ImportError:
        return tuple(errors)
    errors.append(httpx2.HTTPError)
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()
_DISCOVERY_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, ValueError)  # ValueError: not JSON
_USERINFO_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, AuthlibBaseError)


class OidcFailed(PlatformError):
    """The sign-in with the provider did not go through (bad state, refused code, invalid token).
    ``code`` names the reason for the sign-in page (``state``: start again; ``failed``: the rest)."""

    status = 400

    def __init__(self, detail: str, code: str = "failed") -> None:
        super().__init__(detail)
        self.code = code


class ProviderUnavailable(PlatformError):
    """The provider could not be reached, or answered with something that is not OpenID Connect."""

    status = 502
    code = "unavailable"


class LinkRefused(Forbidden):
    code = "unverified_link"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"an account with this e-mail address exists, and {name} does not say the address is "
            "verified: sign in with your password instead"
        )


class UnverifiedEmail(Forbidden):
    code = "unverified"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} does not say this e-mail address is verified, so no account is made for it: "
            "verify it there, or sign up with a password"
        )


class NoEmail(Forbidden):
    code = "no_email"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} gave no e-mail address: allow the platform to read it (scope email)")


@dataclass(frozen=True, slots=True)
class Authorization:
    """Where to send the browser, and what the callback must find again."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class OidcClaims:
    """What an ID token (and the userinfo endpoint, when it lacks the e-mail) says about a person."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    issuer: str
    subject: str
    user_id: str
    email: str | None


def _verified(value: object) -> bool:
    """``email_verified`` is a JSON boolean; a few providers send the string ``"true"``."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


class OidcProvider:
    """One configured provider, reached with ``authlib``'s Starlette client (httpx underneath)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        *,
        name: str,
        scopes: str = "openid email profile",
        timeout: float = 10.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.name = name
        wanted = scopes.split()
        scope = " ".join(["openid", *[s for s in wanted if s != "openid"]])
        client_kwargs: dict[str, Any] = {
            "scope": scope,
            "code_challenge_method": "S256",
            "timeout": timeout,
            "trust_env": False,  # no proxy from the environment, as everywhere in the platform
        }
        if client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"
        self._app = StarletteOAuth2App(
            StarletteIntegration("oidc"),
            name="oidc",
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=self.issuer + DISCOVERY_PATH,
            client_kwargs=client_kwargs,
        )

    async def _metadata(self) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = await self._app.load_server_metadata()
        except _DISCOVERY_ERRORS as exc:
            log.warning("OpenID provider %s: discovery failed: %s", self.issuer, type(exc).__name__)
            raise ProviderUnavailable(
                f"{self.name} cannot be reached right now (its discovery document did not load): "
                "try again later, or sign in with your password"
            ) from None
        found = str(metadata.get("issuer", "")).rstrip("/")
        if found != self.issuer:
            self._app.server_metadata.clear()  # read it again next time: it may be fixed by then
            raise ProviderUnavailable(
                f"{self.name}'s discovery document names the issuer {found!r}, not the configured "
                f"{self.issuer!r}: ask an administrator to check oidc_issuer"
            )
        return metadata

    async def authorization(self, redirect_uri: str) -> Authorization:
        """The provider's authorization URL for a new sign-in, with a fresh state, nonce and PKCE pair."""
        await self._metadata()
        try:
            made = await self._app.create_authorization_url(redirect_uri)
        except RuntimeError as exc:  # no authorization_endpoint in the metadata
            raise ProviderUnavailable(f"{self.name}: {exc}") from None
        return Authorization(made["url"], made["state"], made["nonce"], made["code_verifier"])

    async def claims(self, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> OidcClaims:
        """Exchange ``code`` for tokens and read the person from the validated ID token."""
        await self._metadata()
        try:
            token = await self._app.fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
        except TRANSPORT_ERRORS as exc:
            log.warning("OpenID provider %s: token exchange failed: %s", self.issuer, type(exc).__name__)
            raise ProviderUnavailable(f"{self.name} cannot be reached right now: try again later") from None
        except AuthlibBaseError as exc:
            raise OidcFailed(f"{self.name} refused the sign-in: {exc.error or 'error'}") from None
        if "id_token" not in token:
            raise OidcFailed(f"{self.name} sent no ID token: is the client set up for OpenID Connect?")
        try:
            info = await self._app.parse_id_token(token, nonce=nonce)
        except TRANSPORT_ERRORS:
            raise ProviderUnavailable(f"{self.name}'s signing keys cannot be read right now") from None
        except (JoseError, AuthlibBaseError, ValueError) as exc:
            raise OidcFailed(f"{self.name}'s ID token is not valid: {exc}") from None
        claims = dict(info)
        if not claims.get("email"):
            claims = {**await self._userinfo(token), **claims}
        return self._read(claims)

    async def _userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        """The userinfo endpoint's claims (some providers keep the e-mail out of the ID token)."""
        metadata = await self._metadata()
        if not metadata.get("userinfo_endpoint"):
            return {}
        try:
            info = await self._app.userinfo(token=token)
        except _USERINFO_ERRORS:
            return {}
        return {key: value for key, value in dict(info).items() if key != "sub"}

    def _read(self, claims: dict[str, Any]) -> OidcClaims:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcFailed(f"{self.name}'s ID token has no usable subject")
        email = claims.get("email")
        email = email.strip().lower() if isinstance(email, str) and "@" in email else None
        if email is not None and len(email) > 320:
            email = None
        name = next(
            (
                value.strip()
                for key in ("name", "preferred_username", "given_name")
                if isinstance(value := claims.get(key), str) and value.strip()
            ),
            None,
        )
        return OidcClaims(self.issuer, subject, email, _verified(claims.get("email_verified")), name)


class Identities:
    """Provider identities and the accounts they sign in to."""

    def __init__(self, sessions: sessionmaker[Session], accounts: AccountService, audit: Audit) -> None:
        self._sessions = sessions
        self.accounts = accounts
        self.audit = audit

    def list(self, user_id: str) -> list[IdentityRecord]:
        with self._sessions() as session:
            rows = session.scalars(
                select(OidcIdentity).where(OidcIdentity.user_id == user_id).order_by(OidcIdentity.created_at)
            )
            return [IdentityRecord(row.issuer, row.subject, row.user_id, row.email) for row in rows]

    def sign_in(self, claims: OidcClaims, provider: str, client: Client) -> UserRecord:
        """The account ``claims`` sign in to: found, linked or made. Raises when it may not sign in
        (pending, disabled, a link refused, sign-up closed)."""
        try:
            user_id = self._find_or_link(claims, provider, client)
        except IntegrityError:  # the same identity linked a moment ago by a parallel callback
            user_id = self._find_or_link(claims, provider, client)
        user = self.accounts.get(user_id) if user_id is not None else self._create(claims, provider, client)
        if user is None:  # deleted in between
            raise OidcFailed("this account was just deleted: sign in again")
        return self._may_sign_in(user, client)

    def _find_or_link(self, claims: OidcClaims, provider: str, client: Client) -> str | None:
        """The id of the user the identity signs in to (linked now if the e-mail is verified), or
        ``None`` when no account has it or its address."""
        with self._sessions.begin() as session:
            identity = session.scalars(
                select(OidcIdentity).where(
                    OidcIdentity.issuer == claims.issuer, OidcIdentity.subject == claims.subject
                )
            ).one_or_none()
            if identity is not None:
                identity.last_login_at = self.audit.now()
                return identity.user_id
            if claims.email is None:
                return None
            user_id = session.scalar(select(User.id).where(User.email == claims.email))
            if user_id is None:
                return None
            if claims.email_verified:
                self._link(session, user_id, claims, client)
                return user_id
        self.audit.record_now(
            "oidc.link_refused", subject_id=user_id, address=client.address,
            detail={"issuer": claims.issuer, "reason": "email_not_verified"},
        )  # fmt: skip
        raise LinkRefused(provider)

    def _link(self, session: Session, user_id: str, claims: OidcClaims, client: Client) -> None:
        now = self.audit.now()
        session.add(
            OidcIdentity(
                id=str(uuid.uuid4()),
                issuer=claims.issuer,
                subject=claims.subject,
                user_id=user_id,
                email=claims.email,
                created_at=now,
                last_login_at=now,
            )
        )
        session.flush()
        self.audit.record(
            session, "oidc.linked", actor_id=user_id, subject_id=user_id, address=client.address,
            detail={"issuer": claims.issuer, "email": claims.email},
        )  # fmt: skip

    def _create(self, claims: OidcClaims, provider: str, client: Client) -> UserRecord:
        if claims.email is None:
            self.audit.record_now(
                "signin.failed", address=client.address,
                detail={"via": "oidc", "issuer": claims.issuer, "reason": "no_email"},
            )  # fmt: skip
            raise NoEmail(provider)
        if not claims.email_verified:
            self.audit.record_now(
                "signin.failed", address=client.address,
                detail={"via": "oidc", "issuer": claims.issuer, "reason": "email_not_verified"},
            )  # fmt: skip
            raise UnverifiedEmail(provider)
        name = (claims.name or claims.email.split("@")[0])[:200]
        try:
            return self.accounts.register_vouched(
                claims.email,
                name,
                client,
                via="oidc",
                link=lambda session, user_id: self._link(session, user_id, claims, client),
            )
        except SignupClosed:
            self.audit.record_now(
                "signin.failed", address=client.address,
                detail={"via": "oidc", "issuer": claims.issuer, "reason": "signup_closed"},
            )  # fmt: skip
            raise

    def _may_sign_in(self, user: UserRecord, client: Client) -> UserRecord:
        if user.status == "active":
            return user
        self.audit.record_now(
            "signin.refused", subject_id=user.id, address=client.address,
            detail={"status": user.status, "via": "oidc"},
        )  # fmt: skip
        if user.status == "pending":
            raise AccountPending()
        raise AccountDisabled()
