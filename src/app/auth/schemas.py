"""Authentication API schemas."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.types import Text
from app.users.schemas import Email, Password

OpaqueToken = Annotated[Text, Field(min_length=1, max_length=512)]


class TokenPair(BaseModel):
    """Tokens issued at login and on refresh."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RefreshRequest(BaseModel):
    """A refresh token to exchange or revoke."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: OpaqueToken


class PasswordResetRequest(BaseModel):
    """Ask for a password reset mail."""

    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordResetConfirm(BaseModel):
    """Set a new password with the token from the reset mail."""

    model_config = ConfigDict(extra="forbid")

    token: OpaqueToken
    new_password: Password


class EmailVerification(BaseModel):
    """The token from the verification mail."""

    model_config = ConfigDict(extra="forbid")

    token: OpaqueToken
