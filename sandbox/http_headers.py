"""HTTP header blocks parsed without the email parser when they are plain `Name: value` lines.

Python's http.client (and so http.server, under werkzeug's server, and every in-process client's
responses) hands a request's or response's header block to the email package's FeedParser, which
builds the same `HTTPMessage` as the few lines below for a block of ordinary header lines, at some
15 times the CPU (about 75 µs a request on this machine, twice a call when the caller is in-process:
CodeDeploy's and the event deliveries' own calls). A block with anything else (folded lines, a line
without a colon or with a bare CR, no blank line at the end) still goes to the email parser, so its
quirks and defects stay as they were. tests/unit/test_sandbox_http_headers.py compares the two.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# A header line as the email parser splits it off (a name of the characters it accepts in one, then a
# colon), whose value holds no line break of its own (FeedParser also breaks lines at a bare CR).
_PLAIN_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n")


def install() -> None:
    import http.client

    from sandbox import core

    original: Callable[..., Any] = http.client._parse_header_lines  # type: ignore[attr-defined]
    if hasattr(original, "original"):
        return  # installed already

    def _parse_header_lines(header_lines: list[bytes], _class: Any = http.client.HTTPMessage) -> Any:
        if (
            core.active() is None
            or not header_lines
            or header_lines[-1] not in (b"\r\n", b"\n")
            or not all(_PLAIN_LINE.fullmatch(line) for line in header_lines[:-1])
        ):
            return original(header_lines, _class)
        message = _class()
        for line in header_lines[:-1]:
            # email.policy.compat32's header_source_parse: the name up to the first colon, the value
            # without its leading blanks and its line ending
            name, value = line.decode("iso-8859-1").split(":", 1)
            message._headers.append((name, value.lstrip(" \t").rstrip("\r\n")))
        message.set_payload("")  # what the parser leaves for a block that ends at its blank line
        return message

    _parse_header_lines.original = original  # type: ignore[attr-defined]
    http.client._parse_header_lines = _parse_header_lines  # type: ignore[attr-defined]
