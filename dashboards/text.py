"""Text that agents control, made safe to show: Streamlit renders markdown in messages and captions.

Agent names, identities and attributes come from telemetry anyone can send, so they are shown in
tables, code blocks or `st.text` (plain text); where a message has to mention one, `plain` escapes
every markdown character so it reads as typed and cannot become a link, an image or formatting.
"""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")


def plain(value: object) -> str:
    """`value` as text with markdown escaped, for st.error / st.info / st.caption messages."""
    return _MARKDOWN.sub(r"\\\1", str(value))
