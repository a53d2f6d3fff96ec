"""What the accounts API takes and gives. Inputs (``*Create``, ``*Update``, requests) forbid unknown
fields and check lengths and the password policy at the edge; outputs (``*Public``) never carry a
hash or a secret other than the tokens a response exists to hand over."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from avocado.platform.accounts.passwords import MAX_PASSWORD, password_problem

__all__ = [
    "AccountDelete",
    "AdminUserCreate",
    "AdminUserUpdate",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyPublic",
    "LoginRequest",
    "LogoutRequest",
    "MfaChallenge",
    "MfaCode",
    "MfaDisable",
    "MfaEnrolment",
    "MfaLogin",
    "MfaStatusPublic",
    "PasswordChange",
    "PasswordResetConfirm",
    "PasswordResetRequest",
    "PreferencesPublic",
    "PreferencesUpdate",
    "RecoveryCodes",
    "RefreshRequest",
    "RegisterRequest",
    "ResetLinkPublic",
    "Role",
    "SessionPublic",
    "Status",
    "TokenResponse",
    "UserPublic",
    "UserUpdate",
]

Role = Literal["admin", "user"]
Status = Literal["pending", "active", "disabled"]


def _lower(value: str) -> str:
    return value.lower()


def _policy(value: str) -> str:
    problem = password_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_lower)]
NewPassword = Annotated[str, AfterValidator(_policy)]
AnyPassword = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]  # checked, not judged
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Token = Annotated[str, Field(min_length=1, max_length=200)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Input):
    email: Email
    password: NewPassword
    name: Name


class AdminUserCreate(RegisterRequest):
    role: Role = "user"
    status: Status = "active"


class LoginRequest(_Input):
    email: Email
    password: AnyPassword
    cookie: bool = Field(default=False, description="Put the refresh token in a cookie (the web UI)")


class RefreshRequest(_Input):
    refresh_token: Token | None = Field(default=None, description="Omit to use the cookie")


class LogoutRequest(_Input):
    refresh_token: Token | None = None


class PasswordChange(_Input):
    current_password: AnyPassword
    new_password: NewPassword


class PasswordResetRequest(_Input):
    email: Email


class PasswordResetConfirm(_Input):
    token: Token
    password: NewPassword


class UserUpdate(_Input):
    name: Name | None = None


class AdminUserUpdate(_Input):
    role: Role | None = None
    status: Status | None = None


class AvatarPublic(BaseModel):
    content_type: str
    size: int
    updated_at: datetime
    url: str  # where signed-in users get it (with their access token)


class AuthConfig(BaseModel):
    """What a sign-in page and the app shell need to know before anyone signs in."""

    signup_policy: Literal["approval", "open", "closed"]
    mfa: bool = True  # two-factor sign-in is always offered
    management: bool  # our gateway with its master key: the admin nodes and usage pages exist


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str | None = Field(default=None, description="Absent when it went into the cookie")


class UserPublic(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    status: Status
    created_at: datetime
    last_login_at: datetime | None
    has_password: bool = True


class SessionPublic(BaseModel):
    id: str
    device: str
    user_agent: str
    address: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class ResetLinkPublic(BaseModel):
    url: str
    expires_at: datetime


class ApiKeyCreate(_Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, never again")


Code = Annotated[
    str, Field(min_length=6, max_length=20, description="A 6-digit TOTP code, or a recovery code")
]


class MfaChallenge(BaseModel):
    """Login's answer when two-factor sign-in is on: send ``mfa_token`` and a code to ``/auth/mfa``."""

    mfa_required: Literal[True] = True
    mfa_token: str
    expires_in: int


class MfaLogin(_Input):
    mfa_token: Annotated[str, Field(min_length=1, max_length=2000)]
    code: Code
    cookie: bool = Field(default=False, description="Put the refresh token in a cookie (also if login asked)")


class MfaCode(_Input):
    code: Code


class MfaDisable(_Input):
    code: Code | None = None
    password: AnyPassword | None = None

    @model_validator(mode="after")
    def _one(self) -> MfaDisable:
        if self.code is None and self.password is None:
            raise ValueError("give a code (or a recovery code) or the password")
        return self


class MfaEnrolment(BaseModel):
    secret: str = Field(description="Base32, for typing into an authenticator app")
    otpauth_uri: str = Field(description="The otpauth:// URI, for a QR code")


class MfaStatusPublic(BaseModel):
    enabled: bool
    pending: bool = Field(description="Enrolled, waiting for a first code")
    recovery_codes_left: int


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="One-time codes, shown this once")


Theme = Literal["system", "light", "dark"]


class PreferencesPublic(BaseModel):
    default_model: str | None = Field(description="The model new chats start with (None: the first listed)")
    system_prompt: str | None
    theme: Theme


class PreferencesUpdate(_Input):
    """Only the fields given change; ``null`` clears one (``theme``: back to ``system``)."""

    default_model: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None
    ) = None
    system_prompt: Annotated[str, Field(max_length=8000)] | None = None
    theme: Theme | None = None


class AccountDelete(_Input):
    """The password; an account made by single sign-on (no password) types its e-mail instead."""

    password: AnyPassword | None = None
    confirm_email: Annotated[str, StringConstraints(max_length=320)] | None = None
