"""Every spelling of an address is one account: registration, login, reset and look-ups agree.

A review registered an address with a decomposed `é` and could not log in with the very string
it registered (401): registration put the address in NFC and through IDNA, the login only
trimmed and lower-cased it. One normaliser now serves every email the API receives.
"""

import uuid
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.deps import resources_of
from app.users.schemas import normalize_email
from tests.harness import assert_problem, log_lines
from tests.identity import DEFAULT_PASSWORD, bearer, mailed_token, register

pytestmark = pytest.mark.anyio

USERS = "/api/v1/users"
LOGINS = ("/api/v1/auth/login", "/auth/login")
RESET = "/api/v1/auth/password-reset"
EMAIL_CHANGE = f"{USERS}/me/email"
STORED = "jos\u00e9@m\u00fcller.com"  # the one stored form: NFC, Unicode domain, lower case
# The same mailbox as a client may type it.
FORMS = {
    "nfc": STORED,
    "nfd": "jose\u0301@mu\u0308ller.com",
    "upper-case": "JOS\u00c9@M\u00dcLLER.COM",
    "upper-case-nfd": "JOSE\u0301@MU\u0308LLER.COM",
    "fullwidth-domain": "jos\u00e9@\uff4d\u00fc\uff4c\uff4c\uff45\uff52.\uff43\uff4f\uff4d",
    "punycode-domain": "jos\u00e9@xn--mller-kva.com",
    "padded": f"  {STORED} ",
}
SPELLINGS = list(FORMS.values())
IDS = list(FORMS)
# Registered in the review's form, and in the one a keyboard without accents may produce.
REGISTERED = [FORMS["nfd"], FORMS["fullwidth-domain"], FORMS["nfc"]]
REGISTERED_IDS = ["nfd", "fullwidth-domain", "nfc"]


async def login_as(client: AsyncClient, path: str, username: str, password: str) -> str | None:
    """The account id a login signs in to, or None when it fails."""
    response = await client.post(path, data={"username": username, "password": password})
    if response.status_code != 200:
        return None
    claims: dict[str, Any] = jwt.decode(
        response.json()["access_token"], options={"verify_signature": False}
    )
    return str(claims["sub"])


@pytest.mark.parametrize("registered", REGISTERED, ids=REGISTERED_IDS)
@pytest.mark.parametrize("typed", SPELLINGS, ids=IDS)
@pytest.mark.parametrize("path", LOGINS)
async def test_every_spelling_logs_in(
    client: AsyncClient, registered: str, typed: str, path: str
) -> None:
    user = await register(client, registered)
    assert user["email"] == STORED
    assert await login_as(client, path, typed, DEFAULT_PASSWORD) == user["id"]


@pytest.mark.parametrize("typed", SPELLINGS, ids=IDS)
async def test_every_spelling_gets_the_reset_mail(client: AsyncClient, typed: str) -> None:
    await register(client, FORMS["nfd"])
    with log_lines() as logs:
        assert (await client.post(RESET, json={"email": typed})).status_code == 202
    assert mailed_token(logs, STORED, "Reset your password")


@pytest.mark.parametrize("typed", SPELLINGS, ids=IDS)
async def test_every_spelling_finds_the_account(client: AsyncClient, typed: str) -> None:
    await register(client, FORMS["nfd"])
    again = await client.post(USERS, json={"email": typed, "password": DEFAULT_PASSWORD})
    assert_problem(again, 409, "email_taken")

    await register(client, "other@example.com")
    other = await client.post(
        "/api/v1/auth/login", data={"username": "other@example.com", "password": DEFAULT_PASSWORD}
    )
    moved = await client.post(
        EMAIL_CHANGE, json={"email": typed}, headers=bearer(other.json()["access_token"])
    )
    assert_problem(moved, 409, "email_taken")


async def test_failed_logins_in_any_spelling_count_for_the_account(
    app: FastAPI, client: AsyncClient
) -> None:
    # A guesser may not multiply their attempts by spelling the address differently.
    await register(client, STORED)
    limit = resources_of(app).settings.auth.login_max_attempts
    for n in range(limit):
        typed = SPELLINGS[n % len(SPELLINGS)]
        assert await login_as(client, LOGINS[0], typed, f"guess {n}") is None
    refused = await client.post(
        LOGINS[0], data={"username": FORMS["upper-case-nfd"], "password": DEFAULT_PASSWORD}
    )
    assert_problem(refused, 429, "rate_limited")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (STORED, "jose@m\u00fcller.com"),  # an accent is a letter, not a spelling
        (STORED, "jos\u00e9@muller.com"),
        ("stra\u00dfe@example.com", "strasse@example.com"),  # lower case, not case folding
        ("first.last@example.com", "firstlast@example.com"),
    ],
    ids=["accent-local", "accent-domain", "sharp-s", "dot"],
)
async def test_different_addresses_stay_different(
    client: AsyncClient, first: str, second: str
) -> None:
    one = await register(client, first, "the first passphrase")
    two = await register(client, second, "the second passphrase")
    assert one["id"] != two["id"]
    assert await login_as(client, LOGINS[0], first, "the first passphrase") == one["id"]
    assert await login_as(client, LOGINS[0], second, "the second passphrase") == two["id"]
    assert await login_as(client, LOGINS[0], second, "the first passphrase") is None


# Fresh each run (failed logins kept in Redis outlive a test), so named: every xdist worker
# must collect the same ids.
@pytest.mark.parametrize(
    "typed",
    ["not an address", "nobody@", f"{uuid.uuid4().hex}@x"],
    ids=["no at sign", "no domain", "no dot in the domain"],
)
async def test_a_login_with_no_address_fails_like_an_unknown_one(
    client: AsyncClient, typed: str
) -> None:
    response = await client.post(LOGINS[0], data={"username": typed, "password": "whatever"})
    assert_problem(response, 401, "invalid_credentials")


# Addresses that look like another one: a compatibility character (fullwidth, a ligature)
# or a letter of a look-alike script among Latin ones, in the local part or a domain label.
LOOKALIKES = {
    "fullwidth-local": "\uff41lice@example.com",
    "ligature-local": "\ufb01nance@example.com",
    "cyrillic-in-latin-local": "\u0430lice@example.com",
    "greek-in-latin-local": "alic\u03b5@example.com",
    "cyrillic-in-latin-domain": "alice@ex\u0430mple.com",
    "armenian-in-latin-local": "j\u0585hn@example.com",
}


@pytest.mark.parametrize("typed", list(LOOKALIKES.values()), ids=list(LOOKALIKES))
async def test_an_address_that_passes_for_another_is_refused(
    client: AsyncClient, typed: str
) -> None:
    await register(client, "alice@example.com")
    refused = await client.post(USERS, json={"email": typed, "password": DEFAULT_PASSWORD})
    assert_problem(refused, 422, "validation_error")
    login = await client.post(LOGINS[0], data={"username": typed, "password": DEFAULT_PASSWORD})
    assert_problem(login, 401, "invalid_credentials")


@pytest.mark.parametrize(
    "address",
    ["\u0438\u0432\u0430\u043d@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
     "ivan@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
     "\u3072\u3089\u304c\u306a\u30ab\u30bf\u30ab\u30ca\u6f22\u5b57@example.com"],
    ids=["cyrillic", "latin-local-cyrillic-domain", "japanese"],
)  # fmt: skip
async def test_an_address_in_one_script_per_part_is_taken(
    client: AsyncClient, address: str
) -> None:
    user = await register(client, address)
    assert await login_as(client, LOGINS[0], address, DEFAULT_PASSWORD) == user["id"]


# UTS #39's "highly restrictive" profile, script by script: refused unless one script, or
# Latin with those written together in Japanese, Chinese or Korean (digits and marks: none).
SCRIPT_MIXES = {
    "armenian-oh-in-latin": ("j\u0585hn@example.com", False),
    "armenian-in-a-domain-label": ("user@g\u0585\u0585gle.com", False),
    "cherokee-in-latin": ("\u13a0bc@example.com", False),
    "georgian-in-latin": ("\u10d0bc@example.com", False),
    "hebrew-in-latin": ("\u05d0bc@example.com", False),
    "greek-in-cyrillic": ("\u0438\u03b1@example.com", False),
    "hangul-with-hiragana": ("\uac00\u3042@example.com", False),
    "armenian-alone-with-digits": ("\u0570\u0561\u0575123@example.com", True),
    "kanji-with-latin": ("\u6771\u4eactokyo@example.com", True),
    "kanji-with-iteration-mark": ("\u6642\u3005@example.com", True),
    "hangul-with-latin": ("\uc11c\uc6b8seoul@example.com", True),
    "han-with-bopomofo": ("\u4e2d\u6587\u3105@example.com", True),
    "latin-with-accents": ("jos\u00e9@example.com", True),
}


@pytest.mark.parametrize(("address", "kept"), list(SCRIPT_MIXES.values()), ids=list(SCRIPT_MIXES))
def test_scripts_mix_only_as_they_are_written_together(address: str, kept: bool) -> None:
    if kept:
        normalize_email(address)
    else:
        with pytest.raises(ValueError, match="look-alike scripts"):
            normalize_email(address)
