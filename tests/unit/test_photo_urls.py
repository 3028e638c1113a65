"""Photo links as operators paste them (shared.urls.as_uri, shared.report.PhotoUrl): what a
browser opens is accepted and made a valid URI, so the public CAP message (`<resource><uri>`,
xs:anyURI) stays valid; credentials in a link are refused, since the link is published."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import TypeAdapter, ValidationError

from shared.report import STORED, PhotoUrl
from shared.urls import as_uri

ANY_URI = etree.XMLSchema(etree.XML(
    b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
    b'<xs:element name="u" type="xs:anyURI"/></xs:schema>'))
PHOTO = TypeAdapter(PhotoUrl)


def is_any_uri(text: str) -> bool:
    u = etree.Element("u")
    u.text = text
    return ANY_URI.validate(u)


@pytest.mark.parametrize(("pasted", "published"), [
    ("https://x.org/%zz.jpg", "https://x.org/%25zz.jpg"),
    ("https://x.org/100%", "https://x.org/100%25"),
    ("https://x.org/a%2", "https://x.org/a%252"),
    ("https://x.org/a.jpg#b#c", "https://x.org/a.jpg#b%23c"),
    ("https://x.org/a?q=[1]", "https://x.org/a?q=%5B1%5D"),
    ("https://x.org/{a}|^`", "https://x.org/%7Ba%7D%7C%5E%60"),
    ("https://x.org/照片.jpg", "https://x.org/%E7%85%A7%E7%89%87.jpg"),
    ("https://x.org/a b.jpg", "https://x.org/a%20b.jpg"),
    # already valid: unchanged
    ("https://x.org/p.jpg?w=1&h=2#top", "https://x.org/p.jpg?w=1&h=2#top"),
    ("https://x.org/a?b=%E4%B8%AD", "https://x.org/a?b=%E4%B8%AD"),
    ("https://[::1]:8080/a.jpg", "https://[::1]:8080/a.jpg"),
    ("https://例子.中国/a.jpg", "https://xn--fsqu00a.xn--fiqs8s/a.jpg"),
])
def test_a_pasted_link_is_published_as_a_valid_uri(pasted: str, published: str) -> None:
    assert str(PHOTO.validate_python(pasted)) == published
    assert is_any_uri(published)


@pytest.mark.parametrize("pasted", ["http://user:pw@x.org/a.jpg", "https://admin@x.org/a.jpg"])
def test_a_link_with_credentials_is_refused_but_a_stored_one_is_read(pasted: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PHOTO.validate_python(pasted)
    assert refused.value.errors()[0]["type"] == "photo_url_credentials"
    assert str(PHOTO.validate_python(pasted, context=STORED)).startswith("http")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20), st.text(max_size=20))
def test_any_path_query_and_fragment_become_a_valid_uri_once(path: str, query: str,
                                                             fragment: str) -> None:
    url = as_uri(f"https://x.org/{path}?{query}#{fragment}")
    assert is_any_uri(url), url
    assert as_uri(url) == url



def test_a_link_that_encoding_makes_too_long_is_refused_at_input() -> None:
    """Encoded, a link must still be readable back under its max_length (what is accepted is
    never lost to a consumer's dead-letter queue)."""
    near = "https://x.org/" + "a" * (1990 - len("https://x.org/"))
    with pytest.raises(ValidationError) as refused:
        PHOTO.validate_python(near + "[" * 10)
    assert refused.value.errors()[0]["type"] == "url_too_long"
    assert str(PHOTO.validate_python(near + "b" * 10)) == near + "b" * 10


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.integers(0, 1990))
def test_whatever_is_accepted_reads_back_the_same(tail: str, padding: int) -> None:
    try:
        accepted = PHOTO.validate_python("https://x.org/" + "p" * padding + tail)
    except ValidationError:
        return
    assert PHOTO.validate_python(str(accepted), context=STORED) == accepted
    assert is_any_uri(str(accepted))
