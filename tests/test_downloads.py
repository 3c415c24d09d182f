"""Every route that answers with a file sends it whole (`core.downloads`).

Starlette's `FileResponse` serves `Range` requests with statuses (206, 416) and media types
(multipart/byteranges, a text/plain 400) that no operation documents; `WholeFileResponse`
ignores ranges. Only `core.downloads` may use the plain class, so a file route added later
answers as the document says; tests/jobs/test_api.py sends the ranges to the one there is.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "app"
ALLOWED = PACKAGE / "core" / "downloads.py"
PLAIN = "FileResponse"


def _uses_plain_file_response(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and any(a.name == PLAIN for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == PLAIN:
            return True
    return False


def test_only_the_whole_file_response_uses_starlettes_file_response() -> None:
    assert _uses_plain_file_response(ALLOWED), "the check would pass on nothing"
    users = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ALLOWED and _uses_plain_file_response(path)
    ]
    assert users == [], f"file responses that serve ranges: {users}"
