"""What the layers read from an ASGI scope alike."""

from starlette.types import Scope


def route_path(scope: Scope) -> str:
    """The request's path as the routes see it: without the `root_path` a proxy mounts it at."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path
