"""What a page shows for Markdown that the dashboard escaped (dashboard/components/markup.py): AppTest gives an
element's Markdown source; tests compare the text a reader sees."""
from __future__ import annotations

import re


def shown(md: str) -> str:
    """The text a Markdown renderer shows for ``md`` made of backslash escapes, code spans and plain text."""
    out, i = [], 0
    while i < len(md):
        fence = re.match(r"`+", md[i:])
        if fence:
            end = md.index(fence.group(0), i + len(fence.group(0)))
            inner = md[i + len(fence.group(0)):end]
            out.append(inner[1:-1] if inner.startswith(" ") and inner.endswith(" ") and inner.strip() else inner)
            i = end + len(fence.group(0))
        elif md[i] == "\\" and i + 1 < len(md):
            out.append(md[i + 1])
            i += 2
        else:
            out.append(md[i])
            i += 1
    return "".join(out)
