"""What settings may not be outside development: each rule returns the problems it finds.

`Settings` calls `unsafe_settings` once, so one message names every bad setting and one restart
fixes them all.
"""

import ipaddress
import math
from collections import Counter
from typing import TYPE_CHECKING

from app.core.settings_groups import PLACEHOLDER_SECRET

if TYPE_CHECKING:
    from app.core.config import Settings

# Where secrets may be weak and docs verbose: a developer's machine and the test suite.
DEVELOPMENT_ENVIRONMENTS = frozenset({"local", "test"})
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_LENGTH = {"HS256": 32, "HS384": 48, "HS512": 64}
# A random 32-byte secret written in hex carries ~250 bits by this estimate, 'a' * 32 none.
MIN_SECRET_BITS = 128
MIN_SUPERUSER_PASSWORD_LENGTH = 12
MIN_SUPERUSER_PASSWORD_BITS = 50
_PLACEHOLDER_SECRETS = frozenset(
    {"", PLACEHOLDER_SECRET, "change-me", "changethis", "secret", "changeme"}
)


def estimated_bits(text: str) -> float:
    """Estimate the entropy of `text`: its length times the Shannon entropy of its characters.

    Generous to a random string, harsh to repetition: `'ab' * 16` scores 32 bits.
    """
    if not text:
        return 0.0
    counts = Counter(text)
    length = len(text)
    return length * -sum(n / length * math.log2(n / length) for n in counts.values())


def _jwt_secret(settings: "Settings") -> list[str]:
    secret = settings.auth.jwt_secret.get_secret_value()
    algorithm = settings.auth.jwt_algorithm
    if secret.strip().lower() in _PLACEHOLDER_SECRETS:
        return ["JWT_SECRET is missing or a placeholder; set a random secret"]
    if len(secret.encode()) < (minimum := MIN_SECRET_LENGTH[algorithm]):
        return [f"JWT_SECRET is shorter than {minimum} bytes, the minimum for {algorithm}"]
    if estimated_bits(secret) < MIN_SECRET_BITS:
        return ["JWT_SECRET is repetitive or low in entropy; use e.g. `openssl rand -hex 32`"]
    return []


WEAK_SUPERUSER_PASSWORD = f"weak: use {MIN_SUPERUSER_PASSWORD_LENGTH}+ varied characters"


def weak_superuser_password(text: str) -> bool:
    """Whether `text` is too short or too repetitive for a superuser's password."""
    short = len(text) < MIN_SUPERUSER_PASSWORD_LENGTH
    return short or estimated_bits(text) < MIN_SUPERUSER_PASSWORD_BITS


def _superuser_password(settings: "Settings") -> list[str]:
    password = settings.first_superuser.password
    if password is not None and weak_superuser_password(password.get_secret_value()):
        return [f"FIRST_SUPERUSER_PASSWORD is {WEAK_SUPERUSER_PASSWORD}"]
    return []


def _everything_trusted(settings: "Settings") -> bool:
    return any(
        ipaddress.ip_network(entry, strict=False).prefixlen == 0
        for entry in settings.http.trusted_proxies
    )


def _edge(settings: "Settings") -> list[str]:
    http, problems = settings.http, []
    if "*" in http.allowed_hosts:
        problems.append("ALLOWED_HOSTS must name the service's hosts, not '*'")
    if http.trust_proxy_headers and _everything_trusted(settings):
        problems.append("TRUSTED_PROXIES must list the proxies, not every address")
    if http.cors_allow_credentials and "*" in http.cors_allow_origins:
        problems.append(
            "CORS_ALLOW_ORIGINS must list origins, not '*', when CORS_ALLOW_CREDENTIALS is on"
        )
    # Browsers send `Origin: null` from sandboxed frames, local files and data: URLs, which
    # any page can open: allowing it allows everyone.
    if "null" in (origin.strip().lower() for origin in http.cors_allow_origins):
        problems.append("CORS_ALLOW_ORIGINS must not allow 'null', which any page can send")
    return problems


def _production(settings: "Settings") -> list[str]:
    problems = _edge(settings) + _superuser_password(settings)
    if settings.database.echo:
        problems.append("DATABASE_ECHO must be false in production (it logs every statement)")
    if settings.logging.format == "console":
        problems.append("LOG_FORMAT must be json or auto in production")
    mail = settings.mail
    if mail.backend == "smtp" and mail.smtp_username and not mail.smtp_starttls:
        problems.append("SMTP_STARTTLS must be on when SMTP_USERNAME sends credentials")
    return problems


def unsafe_settings(settings: "Settings") -> list[str]:
    """Return every setting that is unsafe in the settings' environment (none in development)."""
    environment = settings.app.environment
    if environment in DEVELOPMENT_ENVIRONMENTS:
        return []
    problems = _jwt_secret(settings)
    if settings.app.debug:
        problems.append(f"DEBUG must be false in {environment} (it exposes internals)")
    if environment == "production":
        problems += _production(settings)
    return problems
