"""s3s3.store.response against http.client: the same status, framing, headers and body, for generated answers."""

from __future__ import annotations

import http.client
import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3s3.store.response import Response

pytestmark = pytest.mark.timeout(120)

# Header names: HTTP tokens (the body's framing is chosen apart: a random Content-Length could ask for
# terabytes); values: latin-1 text without line breaks, some with spaces and tabs around.
FRAMING = ("content-length", "transfer-encoding")
NAMES = st.one_of(
    st.sampled_from(["ETag", "etag", "Last-Modified", "x-amz-meta-s3s3-md5", "x-amz-meta-Mtime", "Connection",
                     "connection", "Keep-Alive", "Proxy-Connection", "Content-Range", "x-amz-mp-parts-count"]),
    st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20),
).filter(lambda name: name.lower() not in FRAMING)  # fmt: skip
VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, str]:
    """The raw bytes of an answer (status line, headers, maybe a folded one, a body), and the request method."""
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    status = draw(st.sampled_from([200, 204, 206, 304, 404, 412, 500, 503]))
    reason = draw(st.sampled_from(["OK", "No Content", "Partial Content", "Not Found", "", " Spaced "]))
    headers = draw(st.lists(st.tuples(NAMES, VALUES), max_size=14))
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked", "close", "none"]))
    lines = [f"{name}: {value}" for name, value in headers]
    if draw(st.booleans()) and lines:
        lines.append(" folded continuation")  # obsolete line folding, onto the last header
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "close":
        lines.append("Connection: close")
    head = f"{version} {status} {reason}\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    method = draw(st.sampled_from(["GET", "HEAD", "PUT"]))
    return head.encode("iso-8859-1") + body, method


class OneAnswer:
    """A socket whose makefile() reads one answer, as http.client's responses read a connection."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.raw))


def read(kind: type[http.client.HTTPResponse], raw: bytes, method: str) -> dict[str, object]:
    response = kind(OneAnswer(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    headers = response.headers
    names = {name for name, _ in headers.items()} | {name.lower() for name, _ in headers.items()} | {"absent"}
    seen = {
        "status": response.status, "reason": response.reason, "version": response.version,
        "chunked": response.chunked, "length": response.length, "will_close": response.will_close,
        "items": list(headers.items()),
        "get": {name: headers.get(name) for name in names},
        "get_all": {name: headers.get_all(name) for name in names},
        "getheader": {name: response.getheader(name) for name in names},
        "item": {name: headers[name] for name in names},
        "in": {name: name in headers for name in names},
    }  # fmt: skip
    try:
        seen["body"] = response.read()
    except http.client.HTTPException as e:  # a body unlike its framing: the same error either way
        seen["body"] = (type(e), str(e))
    return seen


@settings(max_examples=2000, deadline=None)
@given(answers())
def test_an_answer_reads_as_http_client_reads_it(answer: tuple[bytes, str]) -> None:
    raw, method = answer
    assert read(Response, raw, method) == read(http.client.HTTPResponse, raw, method)


def test_a_100_continue_is_skipped_as_http_client_skips_it() -> None:
    raw = (b"HTTP/1.1 100 Continue\r\nX-Skipped: yes\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: \"e\"\r\n\r\nok")
    ours, theirs = read(Response, raw, "PUT"), read(http.client.HTTPResponse, raw, "PUT")
    assert ours == theirs and ours["body"] == b"ok" and ours["get"]["etag"] == '"e"'  # type: ignore[index]


def test_too_many_headers_or_too_long_a_line_fail_as_http_client_fails() -> None:
    many = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    long = b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70000 + b"\r\n\r\n"
    for raw in (many, long):
        for kind in (Response, http.client.HTTPResponse):
            with pytest.raises(http.client.HTTPException):
                kind(OneAnswer(raw), method="GET").begin()  # type: ignore[arg-type]
