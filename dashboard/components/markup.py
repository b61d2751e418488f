"""Text a user typed (sweep and run names, fixed settings, URL values, file names, error messages that quote
them) is never markup on anyone's page. Two helpers, used wherever such text meets ``st.markdown``,
``st.warning`` & co.: :func:`escape_html` inside HTML built for ``unsafe_allow_html`` and :func:`escape_markdown`
inside Markdown."""
from __future__ import annotations

import html
import re

# CommonMark lets any ASCII punctuation be backslash-escaped; Streamlit also reads $...$ (LaTeX), :name: (emoji and
# material icons) and ~ (strikethrough) from Markdown, all punctuation too.
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&\"'=])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: object) -> str:
    """``str(text)`` with control characters shown as U+FFFD (they are not text a page can draw)."""
    return _CONTROL.sub("\ufffd", str(text))


def escape_html(text: object) -> str:
    """``text`` for the inside of an HTML element or a quoted attribute: ``<``, ``>``, ``&`` and both quotes
    escaped, control characters replaced, and newlines kept as spaces."""
    return html.escape(_printable(text).replace("\n", " ").replace("\r", " "), quote=True)


# what GitHub-flavoured Markdown turns into a link even when escaped (it looks for these in the parsed text)
_AUTOLINK = re.compile(r"(?i)(?:https?://|www\.|mailto:)\S*|[-.\w+]+@[-\w]+(?:\.[-\w]+)+")


def _code_span(text: str) -> str:
    """``text`` as an inline code span (shown verbatim, never linked): a fence longer than any run of backticks
    inside, padded with a space where the text starts or ends with a backtick."""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_markdown(text: object) -> str:
    """``text`` for a Markdown body (``st.warning``, ``st.caption``...): every Markdown-active character
    backslash-escaped, HTML-active ones too, and addresses (``http://...``, ``www.``, e-mail) as code spans, which
    GitHub-flavoured Markdown would otherwise link: the page shows exactly the characters typed."""
    text = _printable(text)
    out, at = [], 0
    for m in _AUTOLINK.finditer(text):
        out.append(_MD_PUNCT.sub(r"\\\1", text[at:m.start()]))
        out.append(_code_span(m.group(0)))
        at = m.end()
    out.append(_MD_PUNCT.sub(r"\\\1", text[at:]))
    return "".join(out)
