"""The route class that stores an idempotent route's response in the request's transaction.

Dependencies never see the response, so the route itself hands it over: its handler builds
the response (dependencies, endpoint, serialization) while the request's session is still
open, and the function-scoped session dependency commits only after the handler returns.
Storing the response there makes it part of the same commit as the work it reports.

The route also decides when a taken key is answered: the dependency finds the stored response
(or the 409/422), and the endpoint raises it on entry, after FastAPI has run every other
dependency of the route, the authorization included.
"""

import functools
import inspect
import uuid
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.openapi import problem_responses, response_headers
from app.core.routing import StrictBodyRoute
from app.db.base import utcnow
from app.idempotency import service
from app.idempotency.exceptions import IdempotencyKeyInProgress

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # on a stored response answered again
SCOPE_KEY = "app.idempotency"
# The problems an idempotent route adds to its documented responses.
IDEMPOTENCY_ERROR_STATUSES = (400, 409, 422)


@dataclass(slots=True)
class Claim:
    """The key this request holds, and the request's session that will store its response."""

    record_id: uuid.UUID
    session: AsyncSession


@dataclass(slots=True)
class IdempotencyState:
    """What the route and the idempotency dependency share during one request.

    `answer` is what a taken key gets (a `Replay`, or a 409/422 error): raised by the endpoint.
    """

    claim: Claim | None = None
    completed: bool = False
    answer: Exception | None = None


_current_state: ContextVar[IdempotencyState | None] = ContextVar("idempotency", default=None)


def _answering_taken_keys(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an endpoint so it raises the answer for a taken key before doing any work.

    The wrapper keeps the endpoint's signature (`functools.wraps`), so FastAPI solves the same
    dependencies, all of them before the wrapper runs.
    """

    def raise_answer() -> None:
        state = _current_state.get()
        if state is not None and state.answer is not None:
            raise state.answer

    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            raise_answer()
            return await endpoint(*args, **kwargs)

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        raise_answer()
        return endpoint(*args, **kwargs)

    return run


class Replay(Exception):
    """Raised by the dependency to answer with a stored response instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__("replay")
        self.response = response


def _reads_idempotency_key(route: APIRoute) -> bool:
    return any(
        field.alias.lower() == IDEMPOTENCY_HEADER.lower()
        for field in get_flat_params(route.dependant)
        if isinstance(field.field_info, params.Header)
    )


def _documented_responses(
    responses: dict[int | str, dict[str, Any]], status_code: int | None
) -> dict[int | str, dict[str, Any]]:
    """The route's responses with the idempotency problems and headers added.

    A repeat gets the stored answer (the route's own status) with `Idempotent-Replayed`; a
    repeat while the first request runs gets a 409 with `Retry-After`. New dicts throughout:
    the ones given may be shared with other routes.
    """
    documented = {**problem_responses(*IDEMPOTENCY_ERROR_STATUSES), **responses}
    added = {409: response_headers("Retry-After", required=False)}
    if status_code is not None:
        added[status_code] = response_headers(REPLAYED_HEADER, required=False)
    for status, extra in added.items():
        response = documented.get(status, {})
        documented[status] = {
            **response,
            "headers": {**response.get("headers", {}), **extra["headers"]},
        }
    return documented


class IdempotentRoute(StrictBodyRoute):
    """A route that can replay its responses; give it to a router with `route_class=`.

    Routes opt in one by one with `dependencies=[Idempotent]`; the others run unchanged.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _answering_taken_keys(endpoint), **kwargs)
        if _reads_idempotency_key(self):
            self.responses = _documented_responses(self.responses, self.status_code)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler: answer replays, and store the response of a claimed key."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            state = IdempotencyState()
            request.scope[SCOPE_KEY] = state
            token = _current_state.set(state)
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.response
            finally:
                _current_state.reset(token)
            if state.claim is not None:
                state.completed = await _store(state.claim, response)
            return response

        return handle


async def _store(claim: Claim, response: Response) -> bool:
    """Store `response` on the claim in the request's session; False when it is not storable.

    Server errors and streamed bodies are not stored: the key is released after the request.
    """
    body = getattr(response, "body", None)
    if response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR or not isinstance(body, bytes):
        return False
    stored = service.StoredResponse(
        status_code=response.status_code,
        headers={
            name: value
            for name in service.STORED_HEADERS
            if (value := response.headers.get(name)) is not None
        },
        body=body,
    )
    if not await service.complete(
        session=claim.session, claim_id=claim.record_id, response=stored, now=utcnow()
    ):
        # The claim outlived its lease and another request took the key: roll this one back.
        raise IdempotencyKeyInProgress("Another request with this Idempotency-Key took over.")
    return True
