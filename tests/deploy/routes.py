"""The paths the real app serves, for checking the probes the deployment files point at."""

from app.main import create_app
from tests.harness import make_settings


def app_paths() -> set[str]:
    """Every path of the app's OpenAPI document, built from its routes (nothing is started)."""
    app = create_app(make_settings(DATABASE_URL="sqlite+aiosqlite:///:memory:"))
    return set(app.openapi()["paths"])
