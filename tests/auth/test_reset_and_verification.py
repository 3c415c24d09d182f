"""Password reset and email verification, end to end: the tokens are read from real mail."""

import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import select, update

from app.auth.models import ActionToken
from app.core.config import Settings
from app.main import create_app
from app.users.models import User
from tests.harness import client_for, factory, free_port, log_lines, running
from tests.identity import DEFAULT_PASSWORD, login, login_status, register, signed_up
from tests.security.helpers import age_action_tokens
from tests.smtp import Inbox, SmtpServer, smtp_server, smtp_settings

pytestmark = pytest.mark.anyio

RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
VERIFY_REQUEST = "/api/v1/auth/verify-email/request"
VERIFY = "/api/v1/auth/verify-email"
ME = "/api/v1/users/me"
EMAIL_CHANGE = "/api/v1/users/me/email"
EMAIL_CHANGE_CONFIRM = "/api/v1/auth/email-change/confirm"

ALICE = "alice@example.com"
BOB = "bob@example.com"
NEW_PASSWORD = "a brand new passphrase"
RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Confirm your email address"
# new_secret(): 32 random bytes, URL-safe base64 without padding, on a line of its own
# (SMTP delivers the body with CRLF line ends).
TOKEN_LINE = re.compile(r"^([A-Za-z0-9_-]{43})\r?$", re.MULTILINE)


# --- a real SMTP server ---------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mail_app(settings: Settings, smtp: SmtpServer) -> AsyncIterator[FastAPI]:
    """The app on the test database, sending its mail to the `smtp` server."""
    async with running(
        create_app(smtp_settings(smtp.port, DATABASE_URL=settings.database.url))
    ) as started:
        yield started


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_for(mail_app) as c:
        yield c


@pytest.fixture
def inbox(smtp: SmtpServer) -> Inbox:
    return smtp.inbox


# --- helpers --------------------------------------------------------------------------------


def token_in(message: EmailMessage) -> str:
    """The one token a reset or verification mail carries."""
    body = message.get_content()
    assert isinstance(body, str)
    [token] = TOKEN_LINE.findall(body)
    assert isinstance(token, str)
    return token


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def deactivate(app: FastAPI, email: str) -> None:
    async with factory(app)() as session:
        await session.execute(update(User).where(User.email == email).values(is_active=False))
        await session.commit()


async def expire_action_tokens(app: FastAPI, user_id: str) -> None:
    """Move every action token of the user one second into the past."""
    async with factory(app)() as session:
        await session.execute(
            update(ActionToken)
            .where(ActionToken.user_id == uuid.UUID(user_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


async def action_token_rows(app: FastAPI, user_id: str) -> list[dict[str, Any]]:
    """Every column of every action token of the user, as stored."""
    table = ActionToken.__table__
    async with factory(app)() as session:
        result = await session.execute(select(table).where(table.c.user_id == uuid.UUID(user_id)))
        return [dict(row._mapping) for row in result]


async def request_reset(client: AsyncClient, email: str) -> Response:
    response = await client.post(RESET, json={"email": email})
    assert response.status_code == 202, response.text
    return response


async def reset_token(client: AsyncClient, inbox: Inbox, email: str) -> str:
    """Ask for a reset of `email` and return the token from the mail that arrives."""
    already = len(inbox.messages)
    await request_reset(client, email)
    message = (await inbox.wait_for(already + 1))[already]
    assert message["To"] == email
    assert message["Subject"] == RESET_SUBJECT
    return token_in(message)


async def verification_token(client: AsyncClient, inbox: Inbox, headers: dict[str, str]) -> str:
    """Ask for a verification mail as the caller of `headers` and return its token."""
    already = len(inbox.messages)
    response = await client.post(VERIFY_REQUEST, headers=headers)
    assert response.status_code == 202, response.text
    message = (await inbox.wait_for(already + 1))[already]
    assert message["Subject"] == VERIFY_SUBJECT
    return token_in(message)


async def confirm_reset(client: AsyncClient, token: str, password: str = NEW_PASSWORD) -> Response:
    return await client.post(RESET_CONFIRM, json={"token": token, "new_password": password})


def assert_invalid_action_token(response: Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_action_token"


# --- password reset -------------------------------------------------------------------------


async def test_reset_request_answers_the_same_whether_or_not_the_account_exists(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    await register(mail_client, ALICE)
    await register(mail_client, BOB)
    await deactivate(mail_app, BOB)

    unknown = await request_reset(mail_client, "nobody@example.com")
    inactive = await request_reset(mail_client, BOB)
    existing = await request_reset(mail_client, ALICE)

    for response in (unknown, inactive):
        assert response.content == existing.content
        assert response.headers.get("content-type") == existing.headers.get("content-type")
    # Only the active account got mail: the last request's mail is the only one.
    [message] = await inbox.wait_for(1)
    assert message["To"] == ALICE
    assert message["From"] == "service@example.com"
    assert message["Subject"] == RESET_SUBJECT
    assert "60 minutes" in message.get_content()


async def test_reset_token_from_the_mail_sets_the_new_password(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    await register(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)

    response = await confirm_reset(mail_client, token)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await login_status(mail_client, ALICE, NEW_PASSWORD) == 200
    assert await login_status(mail_client, ALICE, DEFAULT_PASSWORD) == 401


async def test_reset_request_ignores_the_case_of_the_email(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    await register(mail_client, ALICE)

    await request_reset(mail_client, "  Alice@EXAMPLE.com ")

    [message] = await inbox.wait_for(1)
    assert message["To"] == ALICE


async def test_reset_token_is_single_use(mail_client: AsyncClient, inbox: Inbox) -> None:
    await register(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)
    assert (await confirm_reset(mail_client, token)).status_code == 204

    again = await confirm_reset(mail_client, token, password="yet another passphrase")

    assert_invalid_action_token(again)
    assert await login_status(mail_client, ALICE, NEW_PASSWORD) == 200
    assert await login_status(mail_client, ALICE, "yet another passphrase") == 401


async def test_using_a_reset_token_voids_the_other_pending_ones(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    await register(mail_client, ALICE)
    first = await reset_token(mail_client, inbox, ALICE)
    await age_action_tokens(mail_app)  # one reset mail per minute: the minute is over
    second = await reset_token(mail_client, inbox, ALICE)
    assert first != second

    assert (await confirm_reset(mail_client, second)).status_code == 204

    assert_invalid_action_token(await confirm_reset(mail_client, first, "yet another passphrase"))


async def test_expired_reset_token_is_refused(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    user = await register(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)
    [row] = await action_token_rows(mail_app, user["id"])
    # PASSWORD_RESET_TTL_SECONDS is one hour.
    assert row["expires_at"] - row["created_at"] == timedelta(hours=1)

    await expire_action_tokens(mail_app, user["id"])
    response = await confirm_reset(mail_client, token)

    assert_invalid_action_token(response)
    assert await login_status(mail_client, ALICE, DEFAULT_PASSWORD) == 200


async def test_unknown_reset_token_is_refused(mail_client: AsyncClient) -> None:
    await register(mail_client, ALICE)

    response = await confirm_reset(mail_client, "x" * 43)

    assert_invalid_action_token(response)


async def test_reset_token_is_stored_only_as_its_sha256_digest(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    user = await register(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)

    [row] = await action_token_rows(mail_app, user["id"])

    assert row["token_hash"] == sha256(token)
    assert row["purpose"] == "password_reset"
    assert row["used_at"] is None
    assert all(token not in str(value) for value in row.values())


async def test_a_refused_new_password_does_not_spend_the_token(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    await register(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)

    too_short = await confirm_reset(mail_client, token, password="short")

    assert too_short.status_code == 422
    assert too_short.json()["code"] == "validation_error"
    assert (await confirm_reset(mail_client, token)).status_code == 204


async def test_reset_revokes_every_refresh_token(mail_client: AsyncClient, inbox: Inbox) -> None:
    await register(mail_client, ALICE)
    laptop = await login(mail_client, ALICE)
    phone = await login(mail_client, ALICE)
    token = await reset_token(mail_client, inbox, ALICE)

    assert (await confirm_reset(mail_client, token)).status_code == 204

    for pair in (laptop, phone):
        refreshed = await mail_client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 401, refreshed.text
    # A session started after the reset works.
    fresh = await login(mail_client, ALICE, NEW_PASSWORD)
    refreshed = await mail_client.post(
        "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_reset_and_verification_tokens_are_not_interchangeable(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    verification = await verification_token(mail_client, inbox, headers)
    reset = await reset_token(mail_client, inbox, ALICE)

    assert_invalid_action_token(await confirm_reset(mail_client, verification))
    assert_invalid_action_token(await mail_client.post(VERIFY, json={"token": reset}))
    # Neither was spent by the wrong use (verified first: a reset voids every other token).
    assert (await mail_client.post(VERIFY, json={"token": verification})).status_code == 204
    assert (await confirm_reset(mail_client, reset)).status_code == 204


async def test_smtp_server_down_does_not_change_the_answer(settings: Settings) -> None:
    app = create_app(smtp_settings(free_port(), DATABASE_URL=settings.database.url))
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            await register(client, ALICE)
            unknown = await request_reset(client, "nobody@example.com")
            existing = await request_reset(client, ALICE)

    assert existing.status_code == unknown.status_code == 202
    assert existing.content == unknown.content
    [failure] = logs.events("mail_failed")
    assert failure["error"] == "SMTPConnectError"
    # The mail job failed its first attempt and waits to be retried.
    [not_sent] = logs.events("job_attempt_failed")
    assert not_sent["level"] == "warning"
    assert not_sent["task"] == "send_password_reset"
    assert not_sent["error"] == "ExternalServiceError"
    assert not_sent["retry"] is True


async def test_console_mailer_logs_the_token_outside_production(
    client: AsyncClient, settings: Settings
) -> None:
    assert settings.mail.backend == "console"
    assert settings.app.environment != "production"
    await register(client, ALICE)

    with log_lines() as logs:
        await request_reset(client, ALICE)

    [sent] = [line for line in logs.events("mail_sent") if line.get("to") == ALICE]
    assert sent["subject"] == RESET_SUBJECT
    [token] = TOKEN_LINE.findall(sent["body"])
    # The logged token is the real one.
    assert (await confirm_reset(client, token)).status_code == 204
    assert await login_status(client, ALICE, NEW_PASSWORD) == 200


# --- email verification ---------------------------------------------------------------------


async def test_verification_request_needs_authentication(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    response = await mail_client.post(VERIFY_REQUEST)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert inbox.messages == []


async def test_verification_token_from_the_mail_verifies_the_email(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    me = (await mail_client.get(ME, headers=headers)).json()
    assert me["email_verified_at"] is None

    before = datetime.now(UTC)
    token = await verification_token(mail_client, inbox, headers)
    assert inbox.messages[-1]["To"] == ALICE
    response = await mail_client.post(VERIFY, json={"token": token})
    after = datetime.now(UTC)

    assert response.status_code == 204, response.text
    me = (await mail_client.get(ME, headers=headers)).json()
    assert me["email_verified_at"] is not None
    assert before <= datetime.fromisoformat(me["email_verified_at"]) <= after
    [row] = await action_token_rows(mail_app, me["id"])
    assert row["purpose"] == "email_verification"
    assert row["token_hash"] == sha256(token)
    assert all(token not in str(value) for value in row.values())


async def test_verification_token_is_single_use(mail_client: AsyncClient, inbox: Inbox) -> None:
    headers = await signed_up(mail_client, ALICE)
    token = await verification_token(mail_client, inbox, headers)
    assert (await mail_client.post(VERIFY, json={"token": token})).status_code == 204

    assert_invalid_action_token(await mail_client.post(VERIFY, json={"token": token}))


async def test_expired_verification_token_is_refused(
    mail_client: AsyncClient, mail_app: FastAPI, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    token = await verification_token(mail_client, inbox, headers)
    me = (await mail_client.get(ME, headers=headers)).json()

    await expire_action_tokens(mail_app, me["id"])

    assert_invalid_action_token(await mail_client.post(VERIFY, json={"token": token}))
    me = (await mail_client.get(ME, headers=headers)).json()
    assert me["email_verified_at"] is None


async def change_email(
    client: AsyncClient, inbox: Inbox, headers: dict[str, str], new_email: str
) -> None:
    """Move the caller's account to `new_email` with the token mailed there."""
    already = len(inbox.messages)
    asked = await client.post(EMAIL_CHANGE, json={"email": new_email}, headers=headers)
    assert asked.status_code == 202, asked.text
    mails = (await inbox.wait_for(already + 2))[already:]
    [to_new] = [mail for mail in mails if mail["To"] == new_email]
    confirmed = await client.post(EMAIL_CHANGE_CONFIRM, json={"token": token_in(to_new)})
    assert confirmed.status_code == 204, confirmed.text


async def test_verification_token_is_void_once_the_email_changes(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    old_token = await verification_token(mail_client, inbox, headers)
    await change_email(mail_client, inbox, headers, BOB)

    assert_invalid_action_token(await mail_client.post(VERIFY, json={"token": old_token}))
    me = (await mail_client.get(ME, headers=headers)).json()
    assert me["email"] == BOB
    # The change was confirmed with a token mailed to the new address: it is verified.
    assert me["email_verified_at"] is not None


async def test_a_requested_change_leaves_the_email_and_its_verification_alone(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    token = await verification_token(mail_client, inbox, headers)
    assert (await mail_client.post(VERIFY, json={"token": token})).status_code == 204

    asked = await mail_client.post(EMAIL_CHANGE, json={"email": BOB}, headers=headers)

    assert asked.status_code == 202, asked.text
    me = (await mail_client.get(ME, headers=headers)).json()
    assert (me["email"], me["email_verified_at"] is not None) == (ALICE, True)


async def test_verification_request_when_already_verified_sends_nothing(
    mail_client: AsyncClient, inbox: Inbox
) -> None:
    headers = await signed_up(mail_client, ALICE)
    token = await verification_token(mail_client, inbox, headers)
    assert (await mail_client.post(VERIFY, json={"token": token})).status_code == 204

    again = await mail_client.post(VERIFY_REQUEST, headers=headers)
    assert again.status_code == 202
    # The next mail to arrive is the reset mail asked for afterwards: no verification mail.
    await reset_token(mail_client, inbox, ALICE)
    assert [m["Subject"] for m in inbox.messages] == [VERIFY_SUBJECT, RESET_SUBJECT]
