"""What a running platform holds: its settings and services, kept on ``app.state.platform``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from avocado.platform.accounts.apikeys import PersonalKeys
from avocado.platform.accounts.avatars import AvatarStore
from avocado.platform.accounts.mfa import Mfa
from avocado.platform.accounts.oidc import Identities, OidcProvider
from avocado.platform.accounts.preferences import PreferenceStore
from avocado.platform.accounts.revocation import Revocations
from avocado.platform.accounts.service import AccountService
from avocado.platform.accounts.throttle import Throttle
from avocado.platform.admin.service import Audit, SiteSettings
from avocado.platform.catalog.service import Catalog
from avocado.platform.compat.service import Upstream
from avocado.platform.conversations.answers import AnswerStore
from avocado.platform.conversations.dependencies import KnownModels
from avocado.platform.conversations.folders import FolderService
from avocado.platform.conversations.generation import Generations
from avocado.platform.conversations.retention import Retention
from avocado.platform.conversations.service import ConversationService
from avocado.platform.conversations.transfer import Transfer
from avocado.platform.feedback.service import FeedbackService
from avocado.platform.jobs import Jobs
from avocado.platform.limits.service import Limits
from avocado.platform.management.service import GatewayManagement
from avocado.platform.net import ProxyTrust
from avocado.platform.notes.service import NoteService
from avocado.platform.search.service import SearchService
from avocado.platform.settings import PlatformSettings
from avocado.platform.sharing.service import ShareService

__all__ = ["Platform", "platform_of"]


@dataclass
class Platform:
    settings: PlatformSettings
    sessions: sessionmaker[Session]  # for a route that reads several services' rows in one session
    accounts: AccountService
    audit: Audit
    site: SiteSettings
    revocations: Revocations
    throttle: Throttle
    proxies: ProxyTrust
    jobs: Jobs
    catalog: Catalog
    keys: PersonalKeys
    upstream: Upstream
    mfa: Mfa
    preferences: PreferenceStore
    identities: Identities
    limits: Limits
    conversations: ConversationService
    answers: AnswerStore
    folders: FolderService
    generations: Generations
    models: KnownModels
    search: SearchService
    notes: NoteService
    feedback: FeedbackService
    shares: ShareService
    transfer: Transfer
    retention: Retention
    management: GatewayManagement
    avatars: AvatarStore
    oidc: OidcProvider | None = None  # single sign-on, when configured


def platform_of(connection: HTTPConnection) -> Platform:
    platform: Platform = connection.app.state.platform
    return platform
