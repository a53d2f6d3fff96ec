"""``build_platform(settings)``: database, secrets, services and background work, wired into the app.

Everything replicas share lives outside the process: accounts and sessions in the database
(PostgreSQL through ``AVOCADO_DATABASE_URL``), revocations, sign-in limits and the users' limits'
counters in Redis
(``AVOCADO_REDIS_URL``), jobs on a broker (``AVOCADO_PLATFORM_BROKER_URL``). Without them the
same code runs on embedded defaults: SQLite in the home, in-process limits and jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from avocado.db import make_engine, make_sessionmaker, upgrade
from avocado.platform.accounts.apikeys import PersonalKeys
from avocado.platform.accounts.avatars import AvatarStore
from avocado.platform.accounts.mfa import Mfa
from avocado.platform.accounts.oidc import Identities, OidcProvider
from avocado.platform.accounts.password_reset_router import reset_link
from avocado.platform.accounts.passwords import Passwords
from avocado.platform.accounts.preferences import PreferenceStore
from avocado.platform.accounts.revocation import Revocations
from avocado.platform.accounts.service import AccountService
from avocado.platform.accounts.throttle import MemoryThrottle, RedisThrottle, Throttle
from avocado.platform.accounts.tokens import TokenSigner
from avocado.platform.admin.service import Audit, SiteSettings
from avocado.platform.app import create_platform_app
from avocado.platform.catalog.service import Catalog
from avocado.platform.compat.service import Upstream
from avocado.platform.conversations.answers import AnswerStore
from avocado.platform.conversations.dependencies import KnownModels
from avocado.platform.conversations.folders import FolderService
from avocado.platform.conversations.generation import Generations
from avocado.platform.conversations.history import PathCache
from avocado.platform.conversations.live import Publisher
from avocado.platform.conversations.retention import EVERY as RETENTION_EVERY
from avocado.platform.conversations.retention import Retention
from avocado.platform.conversations.service import ConversationService
from avocado.platform.conversations.titles import summary_job, title_job
from avocado.platform.conversations.transfer import Transfer
from avocado.platform.conversations.upstream import ChatUpstream
from avocado.platform.feedback.service import FeedbackService
from avocado.platform.jobs import Jobs
from avocado.platform.limits.counters import Counters, MemoryCounters, RedisCounters
from avocado.platform.limits.service import Limits
from avocado.platform.mail import Mailer
from avocado.platform.management.service import GatewayManagement
from avocado.platform.net import ProxyTrust
from avocado.platform.notes.service import NoteService
from avocado.platform.search.service import SearchService
from avocado.platform.settings import PlatformSettings, signing_key_file
from avocado.platform.sharing.service import ShareService
from avocado.platform.state import Platform
from avocado.secret_file import load_or_create_secret

__all__ = ["Built", "PlatformRefused", "build_platform", "open_accounts", "open_services", "signing_keys"]

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds between purges of ended sessions and spent tokens


class PlatformRefused(RuntimeError):
    """The platform will not start as configured (production mode's checks)."""


@dataclass
class Built:
    platform: Platform
    engine: Engine
    generated_key: bool  # the signing key was made into the home just now


def signing_keys(settings: PlatformSettings) -> tuple[list[str], bool]:
    """The keys tokens are signed (first) and verified with; whether one was generated just now."""
    created = False
    if settings.signing_key is not None:
        current = settings.signing_key.get_secret_value()
    else:
        current, created = load_or_create_secret(signing_key_file(settings.home))
    previous = [key.get_secret_value() for key in settings.previous_signing_keys]
    return [current, *previous], created


def _passwords(settings: PlatformSettings) -> Passwords:
    return Passwords(
        memory=settings.argon2_memory, time=settings.argon2_time, parallelism=settings.argon2_parallelism
    )


def open_accounts(settings: PlatformSettings) -> tuple[AccountService, Engine]:
    """The accounts on a migrated database, for ``avocado users``: it acts on the database directly,
    as a framework's management command does. Running platforms learn of the sessions it ends from
    their poll of the database. Tokens it would sign are never used (it starts no sessions)."""
    engine = make_engine(settings.database)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    audit = Audit(sessions)
    site = SiteSettings(sessions, audit, production=settings.production)
    signer = TokenSigner([secrets.token_urlsafe(32)], settings.access_ttl_seconds)
    accounts = AccountService(
        sessions,
        _passwords(settings),
        signer,
        audit,
        site,
        refresh_ttl=settings.refresh_ttl_seconds,
        reset_ttl=settings.reset_ttl_seconds,
    )
    return accounts, engine


def _oidc(settings: PlatformSettings) -> OidcProvider | None:
    """The OpenID Connect provider, when one is configured (its discovery document is read at the
    first sign-in, so a provider down at start-up does not stop the platform)."""
    if settings.oidc_issuer is None or settings.oidc_client_id is None:
        return None
    if settings.public_url is None:
        log.warning(
            "single sign-on without public_url: the provider will send browsers back to %s/api/v1/auth/"
            "oidc/callback, which only this machine reaches; set AVOCADO_PLATFORM_PUBLIC_URL",
            settings.local_url,
        )
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return OidcProvider(
        settings.oidc_issuer,
        settings.oidc_client_id,
        secret,
        name=settings.oidc_name,
        scopes=settings.oidc_scopes,
    )


def open_services(settings: PlatformSettings) -> Built:
    """The platform's services on a migrated database."""
    engine = make_engine(settings.database)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    audit = Audit(sessions)
    site = SiteSettings(sessions, audit, production=settings.production)
    if settings.production and site.all()["signup_policy"] == "open":
        engine.dispose()
        raise PlatformRefused(
            "production mode refuses sign-up open to all: set it to approval or closed "
            "(PATCH /api/v1/admin/settings, outside production mode)"
        )
    keys, created = signing_keys(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    revocations = Revocations(
        sessions, ttl=settings.access_ttl_seconds, poll=settings.revocation_poll_seconds, redis_url=redis_url
    )
    accounts = AccountService(
        sessions,
        _passwords(settings),
        TokenSigner(keys, settings.access_ttl_seconds),
        audit,
        site,
        refresh_ttl=settings.refresh_ttl_seconds,
        reset_ttl=settings.reset_ttl_seconds,
        on_revoked=revocations.add,
    )
    throttle: Throttle = (
        RedisThrottle(redis_url, settings.login_max_delay_seconds)
        if redis_url
        else MemoryThrottle(settings.login_max_delay_seconds)
    )
    counters: Counters = RedisCounters(redis_url) if redis_url else MemoryCounters()
    limits = Limits(sessions, site, audit, counters)
    mailer = Mailer(settings.smtp_url.get_secret_value(), settings.mail_from) if settings.smtp_url else None
    broker_url = settings.broker_url.get_secret_value() if settings.broker_url else None
    jobs = Jobs(broker_url, mailer, queue=settings.broker_queue)
    upstream_key = settings.service_key
    gateway_key = settings.gateway_key.get_secret_value() if settings.gateway_key else None
    catalog = Catalog(settings.upstream_url, upstream_key)
    # the ends of paths last answered, shared by sends and answers' ends
    paths = PathCache(max_paths=settings.kept_paths) if settings.kept_paths else None
    conversations = ConversationService(sessions, paths=paths)
    answers = AnswerStore(sessions, paths=paths)
    chat = ChatUpstream(settings.upstream_url, upstream_key)
    make_title = jobs.register("avocado.platform.make_title", title_job(answers, chat))
    retention = Retention(sessions, site, audit)
    jobs.retention = jobs.register("avocado.platform.retention", retention.job())
    summarise = jobs.register("avocado.platform.summarise", summary_job(answers, chat))
    generations = Generations(
        answers, chat, Publisher(redis_url), on_first_exchange=make_title, on_summarise=summarise
    )
    platform = Platform(
        settings=settings,
        sessions=sessions,
        accounts=accounts,
        audit=audit,
        site=site,
        revocations=revocations,
        throttle=throttle,
        proxies=ProxyTrust(settings.trusted_proxies),
        jobs=jobs,
        catalog=catalog,
        keys=PersonalKeys(sessions, audit),
        upstream=Upstream(settings.upstream_url, upstream_key),
        mfa=Mfa(sessions, accounts.passwords, audit),
        preferences=PreferenceStore(sessions),
        limits=limits,
        conversations=conversations,
        answers=answers,
        folders=FolderService(sessions),
        generations=generations,
        models=KnownModels(catalog, limits),
        search=SearchService(sessions),
        notes=NoteService(sessions),
        feedback=FeedbackService(sessions),
        shares=ShareService(sessions, conversations),
        transfer=Transfer(sessions, conversations),
        retention=retention,
        management=GatewayManagement(settings.upstream_url, gateway_key),
        avatars=AvatarStore(sessions),
        identities=Identities(sessions, accounts, audit),
        oidc=_oidc(settings),
    )
    jobs.reset_links = functools.partial(reset_link, platform)
    return Built(platform, engine, created)


async def _purge_forever(accounts: AccountService, every: float = PURGE_EVERY) -> None:
    """Delete ended sessions, old refresh tokens and spent reset tokens now and then (every replica
    does: the deletes are idempotent)."""
    while True:
        try:
            gone = await asyncio.to_thread(accounts.purge)
            if any(gone.values()):
                log.info("purged %s", ", ".join(f"{count} {what}" for what, count in gone.items()))
        except Exception as exc:  # a busy database now is no reason to stop purging later
            log.warning("could not purge old sessions and tokens: %s", exc)
        await asyncio.sleep(every)


async def _retain_forever(jobs: Jobs, every: float = RETENTION_EVERY) -> None:
    """Queue the retention job now and then (on a shared broker any replica may run it; it is
    idempotent)."""
    while True:
        await asyncio.sleep(every)
        if jobs.retention is None:
            return
        try:
            await jobs.retention()
        except Exception as exc:
            log.warning("could not queue the retention job: %s", exc)


def build_platform(settings: PlatformSettings) -> FastAPI:
    built = open_services(settings)
    platform = built.platform

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Both pools database work runs on: routes (anyio) and the answers' writes and jobs (asyncio)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="avocado-db")
        )
        await platform.revocations.start()
        await platform.jobs.start()
        await platform.generations.start()
        purging = asyncio.create_task(_purge_forever(platform.accounts), name="platform-purge")
        retaining = asyncio.create_task(_retain_forever(platform.jobs), name="platform-retention")
        try:
            yield
        finally:
            purging.cancel()
            retaining.cancel()
            await platform.generations.close()
            await platform.jobs.close()  # before the chat client: a title job may still be asking
            await platform.generations.upstream.aclose()
            await platform.revocations.close()
            await platform.throttle.aclose()
            await platform.limits.aclose()
            await platform.catalog.aclose()
            await platform.upstream.aclose()
            await platform.management.aclose()
            built.engine.dispose()

    app = create_platform_app(platform, lifespan)
    app.state.generated_key = built.generated_key
    return app
