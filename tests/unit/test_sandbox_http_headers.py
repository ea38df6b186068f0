"""Header blocks the sandbox parses without the email parser (sandbox/http_headers.py) come out as the
email parser makes them, and every other block still goes to it."""

from __future__ import annotations

import http.client
import io
import random

import pytest

from sandbox import core, http_headers

BOTOCORE_REQUEST = (
    b"Host: 127.0.0.1:5000\r\nAccept-Encoding: identity\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\n"
    b"User-Agent: Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6 md/arch#x86_64 lang/python#3.13.0\r\n"
    b"X-Amz-Date: 20241129T160000Z\r\nX-Amz-Security-Token: sandbox-session/abc\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=ASIAX/20241129/us-east-1/dynamodb/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date, Signature=abcdef\r\n"
    b"amz-sdk-invocation-id: 1234\r\namz-sdk-request: attempt=1\r\nContent-Length: 80\r\n\r\n"
)
ODD_LINES = [
    b"Folded: first\r\n continued\r\n",
    b"No colon here\r\n",
    b": no name\r\n",
    b"From someone\r\n",
    b"Bare: carriage\rreturn\r\n",
    b"Spaced name : value\r\n",
    b"Tab:\tvalue with tab\r\n",
    b"Empty:\r\n",
    b"Latin: caf\xe9 \xff\r\n",
    b"Trailing: blanks  \t \r\n",
    b"Colons: a:b:c\r\n",
    b"LF-only: value\n",
    b"X-Dup: one\r\n",
    b"x-dup: two\r\n",
]


@pytest.fixture(autouse=True)
def sandbox_running(monkeypatch: pytest.MonkeyPatch) -> None:
    http_headers.install()
    monkeypatch.setattr(core, "_active", object())  # the fast path applies only while a sandbox runs


def shown(message: http.client.HTTPMessage) -> dict[str, object]:
    """Everything the message holds (its defects by kind: each is an object of its own)."""
    found = dict(vars(message))
    found["defects"] = [type(defect).__name__ for defect in message.defects]
    return found


def both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    lines = http.client._read_headers(io.BytesIO(block))  # type: ignore[attr-defined]
    fast = http.client._parse_header_lines(lines)  # type: ignore[attr-defined]
    slow = http.client._parse_header_lines.original(lines)  # type: ignore[attr-defined]
    return fast, slow


def test_a_botocore_request_s_headers_parse_alike() -> None:
    fast, slow = both(BOTOCORE_REQUEST)
    assert shown(fast) == shown(slow)
    assert fast["Content-Length"] == "80" and fast.get_all("x-amz-target") == ["DynamoDB_20120810.GetItem"]


@pytest.mark.parametrize("seed", range(200))
def test_any_header_block_parses_as_the_email_parser_parses_it(seed: int) -> None:
    rng = random.Random(seed)
    lines = [rng.choice(ODD_LINES) for _ in range(rng.randint(0, 6))]
    plain = BOTOCORE_REQUEST.split(b"\r\n")[:-2]
    lines += [line + b"\r\n" for line in rng.sample(plain, rng.randint(0, len(plain)))]
    rng.shuffle(lines)
    block = b"".join(lines) + rng.choice([b"\r\n", b"\n", b""]) + rng.choice([b"", b"body after the headers"])
    fast, slow = both(block)
    assert shown(fast) == shown(slow)
    assert fast.items() == slow.items() and fast.as_string() == slow.as_string()


def test_a_response_read_by_http_client_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"

    class Sock:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    answers = []
    for parse in (http.client._parse_header_lines, http.client._parse_header_lines.original):  # type: ignore[attr-defined]
        monkeypatch.setattr(http.client, "_parse_header_lines", parse)
        response = http.client.HTTPResponse(Sock())  # type: ignore[arg-type]
        response.begin()
        answers.append((response.status, shown(response.msg), response.read()))
    assert answers[0] == answers[1]
