"""http.client's response, with its headers read without Python's `email` package.

http.client parses every answer's headers with the `email` package: ~50 us of
CPU for an S3 answer's dozen headers, and each `headers.get` then walks the
list again. Copying a small object takes two answers, so on a busy machine
that parsing was a tenth of the CPU a copy costs. `Response.begin` is
http.client's own, line for line, but for the one call that parses the
headers; `Headers` answers lookups from a dict. tests/store/test_response.py
checks both against http.client on generated answers.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Protocol, cast

_MAXLINE = 65536  # http.client's limits on one header line and on their number
_MAXHEADERS = 100


class Headers:
    """An answer's headers: names looked up case-insensitively, the first of repeated ones by `get`.

    What http.client and s3s3 ask of its HTTPMessage: `get`, `get_all`,
    `items`, `[name]`, `in`, iteration over the names.
    """

    __slots__ = ("_items", "_first")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        first: dict[str, str] = {}
        for name, value in items:
            first.setdefault(name.lower(), value)
        self._first = first

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        lower = name.lower()
        return [value for n, value in self._items if n.lower() == lower] or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [name for name, _ in self._items]

    def values(self) -> list[str]:
        return [value for _, value in self._items]

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def parse_headers(fp: _Lines) -> Headers:
    """The header lines up to the blank one, read as the email package's compat32 policy reads them."""
    lines: list[list[str]] = []  # each header's lines: its own, then any folded onto it
    readline = fp.readline
    while True:
        line = readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(lines) >= _MAXHEADERS:
            raise http.client.HTTPException(f"got more than {_MAXHEADERS} headers")
        text = line.decode("iso-8859-1")
        if text[0] in " \t":
            if lines:  # an obsolete folded line continues the previous value
                lines[-1].append(text)
            continue
        if ":" not in text:  # not a header: the email package ends the headers here
            break
        lines.append([text])
    items = []
    for first, *folded in lines:
        name, value = first.split(":", 1)
        items.append((name, (value.lstrip(" \t") + "".join(folded)).rstrip("\r\n")))
    return Headers(items)


class Response(http.client.HTTPResponse):
    """An HTTPResponse whose headers are a `Headers`; everything else is http.client's."""

    # http.client.HTTPResponse.begin (identical in Python 3.11, 3.12 and 3.13), in three pieces, but for
    # the call that parses the headers.
    def begin(self) -> None:
        if cast(object, self.headers) is not None:  # None until begun, whatever typeshed says
            return
        version, status, reason = self._final_status()
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)  # type: ignore[assignment]
        self._frame(status)

    def _final_status(self) -> tuple[str, int, str]:
        """The status line of the answer, past any 100 Continue (whose headers are skipped)."""
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                return version, status, reason
            parse_headers(self.fp)

    def _frame(self, status: int) -> None:
        """How the body is framed: chunked, its length, and whether the connection closes after it."""
        tr_enc = self.headers.get("transfer-encoding")
        self.chunked = bool(tr_enc and tr_enc.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        head = self._method == "HEAD"  # type: ignore[attr-defined]
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 or head:
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
