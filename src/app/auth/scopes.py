"""Scopes an API key can be limited to; bearer tokens carry all of them."""

from enum import StrEnum


class Scope(StrEnum):
    """A permission a route may require."""

    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    API_KEYS_READ = "api-keys:read"
    API_KEYS_WRITE = "api-keys:write"
    ITEMS_READ = "items:read"
    ITEMS_WRITE = "items:write"
    JOBS_READ = "jobs:read"


ALL_SCOPES = frozenset(Scope)
