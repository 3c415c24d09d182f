"""Attack: flood an address with the service's mail by asking for it over and over.

Anyone may ask for a password reset of any address, and a signed-in caller (or a leaked key)
for a verification mail, as often as the rate limiter lets each client address. Each asking
mailed a new token, so from many addresses a victim's mailbox, and the service's standing with
its mail provider, took as many mails as were asked for. One mail of each purpose per account
per interval now goes out; the last one mailed stays good meanwhile.
"""

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from tests.harness import LogLines, log_lines
from tests.identity import mailed_token, signed_up, unique_email
from tests.security.helpers import age_action_tokens

pytestmark = pytest.mark.anyio

RESET = "/api/v1/auth/password-reset"
VERIFY_REQUEST = "/api/v1/auth/verify-email/request"
ASKED = 10


def mails_to(logs: LogLines, address: str) -> list[str]:
    return [mail["subject"] for mail in logs.events("mail_sent") if mail["to"] == address]


async def test_many_reset_requests_for_one_account_mail_it_once(
    app: FastAPI, client: AsyncClient
) -> None:
    victim = unique_email("victim")
    await signed_up(client, victim)

    with log_lines() as logs:
        for _ in range(ASKED):
            assert (await client.post(RESET, json={"email": victim})).status_code == 202
        token = mailed_token(logs, victim, "Reset your password")

    assert mails_to(logs, victim) == ["Reset your password"]
    confirmed = await client.post(
        f"{RESET}/confirm", json={"token": token, "new_password": "a brand new passphrase"}
    )
    assert confirmed.status_code == 204, confirmed.text


async def test_many_verification_requests_mail_the_caller_once(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email("flooded")
    headers = await signed_up(client, email)

    with log_lines() as logs:
        for _ in range(ASKED):
            assert (await client.post(VERIFY_REQUEST, headers=headers)).status_code == 202

    assert mails_to(logs, email) == ["Confirm your email address"]


async def test_a_new_mail_goes_out_once_the_interval_is_over(
    app: FastAPI, client: AsyncClient
) -> None:
    email = unique_email("patient")
    headers = await signed_up(client, email)

    with log_lines() as logs:
        await client.post(RESET, json={"email": email})
        await client.post(VERIFY_REQUEST, headers=headers)
        await age_action_tokens(app)
        await client.post(RESET, json={"email": email})
        await client.post(VERIFY_REQUEST, headers=headers)

    assert sorted(mails_to(logs, email)) == 2 * ["Confirm your email address"] + 2 * [
        "Reset your password"
    ]
