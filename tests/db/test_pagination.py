"""The one page schema, its `Link` header, and the paging parameters every list shares."""

import pytest
from pydantic import ValidationError
from starlette.datastructures import URL

from app.db.pagination import MAX_OFFSET, MAX_PAGE_SIZE, Page, PageQuery

LIST = URL("http://testserver/api/v1/things?limit=2&status=active")


class ThingPage(Page[int]):
    """A list of plain numbers stands in for any resource."""


def test_offset_pages_link_to_the_next_offset_until_the_last() -> None:
    first = ThingPage(items=[1, 2], limit=2, offset=0, total=5)
    assert first.next_link(LIST) == (
        '<http://testserver/api/v1/things?limit=2&status=active&offset=2>; rel="next"'
    )
    last = ThingPage(items=[5], limit=2, offset=4, total=5)
    assert last.next_link(LIST) is None
    exactly_full = ThingPage(items=[3, 4], limit=2, offset=2, total=4)
    assert exactly_full.next_link(LIST) is None


def test_cursor_pages_link_to_the_next_cursor_and_keep_the_filters() -> None:
    page = ThingPage(items=[1, 2], limit=2, next_cursor="abc")
    link = page.next_link(URL(f"{LIST}&cursor=old"))
    assert link == (
        '<http://testserver/api/v1/things?limit=2&status=active&cursor=abc>; rel="next"'
    )
    assert ThingPage(items=[1], limit=2).next_link(LIST) is None  # the last cursor page


def test_the_page_schema_is_named_after_its_subclass() -> None:
    assert ThingPage.model_json_schema()["title"] == "ThingPage"
    assert ThingPage(items=[1], limit=1, offset=0, total=1).model_dump() == {
        "items": [1],
        "limit": 1,
        "offset": 0,
        "total": 1,
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "values",
    [{"limit": 0}, {"limit": MAX_PAGE_SIZE + 1}, {"offset": -1}, {"offset": MAX_OFFSET + 1}],
)
def test_paging_parameters_are_bounded(values: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PageQuery.model_validate(values)


def test_paging_parameters_default_to_the_first_page() -> None:
    assert PageQuery().model_dump() == {"limit": 50, "offset": 0}
