"""What the layers read from an ASGI scope alike: the path as the routes see it."""

from collections.abc import Collection

from starlette.types import Scope


def route_path(scope: Scope) -> str:
    """The request's path as the routes see it: without the `root_path` a proxy mounts it at."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


class PathSet:
    """Paths and everything below them (`/health` covers `/health/live`, not `/healthz`)."""

    def __init__(self, paths: Collection[str]) -> None:
        if not all(path.startswith("/") for path in paths):
            raise ValueError("Exempt paths must start with '/'.")
        self.exact = frozenset(paths)
        self.below = tuple(path.rstrip("/") + "/" for path in paths)

    def covers(self, scope: Scope) -> bool:
        """Whether the request's path (as the routes see it, `route_path`) is in the set."""
        path = route_path(scope)
        return path in self.exact or path.startswith(self.below)
