"""The auth tests' settings: a JWT secret long enough for every HMAC algorithm."""

import pytest

from app.core.config import Settings
from tests.harness import make_settings
from tests.identity import JWT_SECRET


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The suite's settings with a JWT secret of a proper length."""
    return make_settings(DATABASE_URL=database_url, JWT_SECRET=JWT_SECRET)
