"""Nothing a user types is markup: the two escaping helpers on hostile text, and the pages that draw such text
(AppTest: the link warnings and a sweep's name). The real DOM is checked in tests/test_browser.py."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.components.markup import escape_html, escape_markdown
from markdown_text import shown

HOSTILE = [
    '<img src=x onerror="document.title=String.fromCharCode(88,83,83)">',
    "[click me](http://example.com/x)", "**bold**![i](http://example.com/i.png)", "it's \"quoted\" & <b>",
    "x" * 5000, "bell\x07 nul\x00 esc\x1b", "\u202eright-to-left\u202c mark\u200f", ":smile: :material/home: $x^2$",
    "<script>alert(1)</script>", "a\nb\r\nc",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_escape_html_leaves_no_tag_and_round_trips(text):
    out = escape_html(text)
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", out)
    expected = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "\ufffd", text.replace("\r", " ").replace("\n", " "))
    assert html.unescape(out) == expected


def _plain(md: str) -> str:
    """What the page shows for ``md`` (tests/markdown_text.shown), checking on the way that no Markdown- or
    HTML-active character stands outside a code span without its backslash."""
    outside = re.sub(r"(`+).*?\1", "", re.sub(r"\\.", "", md), flags=re.S)
    assert not set(outside) & set("<>[]()*_!$:&~#|"), f"unescaped characters in {md!r}"
    return shown(md)


@pytest.mark.parametrize("text", HOSTILE + ["see http://example.com/a`b` and www.x.org or me@mail.example.org"],
                         ids=range(len(HOSTILE) + 1))
def test_escape_markdown_shows_exactly_the_text(text):
    out = escape_markdown(text)
    assert _plain(out) == re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "\ufffd", text)
    # addresses are code spans (GitHub-flavoured Markdown links them even when escaped)
    assert "http://" not in re.sub(r"(`+).*?\1", "", out)


def test_link_warnings_show_the_values_as_text():
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.query_params["alpha"] = "[click me](http://example.com/x)"
    at.query_params["preset"] = "**bold**![i](http://example.com/i.png)"
    at.run()
    assert not at.exception
    bodies = [w.value for w in at.sidebar.warning] + [w.value for w in at.warning]
    assert len(bodies) == 2, bodies
    for body in bodies:
        assert "](http" not in body and "**bold**" not in body  # no live link, image or bold
        assert _plain(body).startswith("Ignored ")
    joined = " ".join(_plain(b) for b in bodies)
    assert "[click me](http://example.com/x)" in joined and "**bold**![i](http://example.com/i.png)" in joined
