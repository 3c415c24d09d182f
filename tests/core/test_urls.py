"""`core.urls.url_for` gives what `request.url_for` gives, without walking the routes each time."""

import gc
import uuid
import weakref
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.routing import NoMatchFound

from app.core import urls
from app.core.urls import url_for
from app.main import create_app
from tests.harness import make_settings

# Every route the service links to by name, and its id parameter.
LINKED = {
    "read_item": "item_id",
    "read_user": "user_id",
    "read_api_key": "key_id",
    "read_job": "job_id",
    "download_job_result": "job_id",
}


def _request(app: FastAPI, root_path: str, scheme: str, host: str) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "app": app,
        "router": app.router,
        "root_path": root_path,
        "scheme": scheme,
        "server": ("10.0.0.1", 8000),
        "headers": [(b"host", host.encode())],
        "path": f"{root_path}/api/v1/items",
        "query_string": b"",
        "method": "POST",
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("root_path", "scheme", "host"),
    [("", "http", "testserver"), ("/svc", "https", "api.example.com:8443")],
)
def test_the_url_is_starlettes(root_path: str, scheme: str, host: str) -> None:
    app = create_app(make_settings())
    request = _request(app, root_path, scheme, host)
    for name, param in LINKED.items():
        for _ in range(2):  # found, then from the kept path
            ids = {param: uuid.uuid4()}
            assert url_for(request, name, **ids) == str(request.url_for(name, **ids))
    assert url_for(request, "read_item", item_id=uuid.UUID(int=7)).startswith(
        f"{scheme}://{host}{root_path}/api/v1/items/00000000-"
    )


def test_an_unknown_name_or_parameter_fails_as_in_starlette() -> None:
    request = _request(create_app(make_settings()), "", "http", "testserver")
    with pytest.raises(NoMatchFound):
        url_for(request, "no_such_route", item_id=uuid.uuid4())
    with pytest.raises(NoMatchFound):
        url_for(request, "read_item", user_id=uuid.uuid4())


def test_a_kept_path_does_not_keep_its_app() -> None:
    app = create_app(make_settings())
    url_for(_request(app, "", "http", "testserver"), "read_item", item_id=uuid.uuid4())
    router, key = weakref.ref(app.router), id(app.router)
    assert key in urls._TEMPLATES
    del app
    gc.collect()
    assert router() is None
    assert key not in urls._TEMPLATES
