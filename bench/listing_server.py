"""A synthetic S3 server for listings at scale: millions of keys generated from a seed, nothing stored.

    python bench/listing_server.py --keys 10000000 [--seed 1] [--tenants 200] [--skew 1.1]
                                   [--differ 0.01] [--port P]

Keys live under `--tenants` prefixes (`tenant000/` ...), spread over them by
a Zipf law (`--skew`: the first prefix holds the most keys, about a fifth of
them at 1.1), each key `tenantNNN/` and 12 hex digits spread evenly over the
prefix's range. Key number j of a prefix is computed directly, so a listing
can start anywhere (StartAfter, V1 Marker, continuation token) at the cost of
a binary search. Every bucket holds the same keys.

An object's bytes are its key's name (UTF-8), so its ETag is the MD5 of the
name: GET and HEAD answer without storing anything. With `--differ F`, a
fraction F of the keys (chosen by a hash of the seed and the key) hold other
bytes (the name and "~old"): a destination started with it differs from a
source started without it in exactly those keys.

PUT is accepted and counted per key (its body read, MD5'd and forgotten,
but its ETag and size remembered for later HEADs, GETs and listings).
`GET /_stats` answers JSON counts: list requests (V1, V2, with a delimiter),
GET, HEAD, PUT, and keys PUT more than once. Signatures are not checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

SPAN = 16**12  # the hex part of a key: 12 digits
MODIFIED = "2024-01-01T00:00:00.000Z"


@dataclass
class KeySpace:
    """The keys: per prefix, how many, and key number j computed without a table."""

    keys: int
    seed: int = 1
    tenants: int = 200
    skew: float = 1.1
    differ: float = 0.0
    counts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        weights = [1 / (i + 1) ** self.skew for i in range(self.tenants)]
        total = sum(weights)
        self.counts = [int(self.keys * w / total) for w in weights]
        self.counts[0] += self.keys - sum(self.counts)
        self.step = [max(SPAN // c, 1) if c else SPAN for c in self.counts]
        self.names = [f"tenant{t:03d}/" for t in range(self.tenants)]

    def key(self, tenant: int, j: int) -> str:
        jitter = int.from_bytes(hashlib.blake2b(f"{self.seed}:{tenant}:{j}".encode(), digest_size=6).digest())
        return f"{self.names[tenant]}{j * self.step[tenant] + jitter % self.step[tenant]:012x}"

    def first_after(self, tenant: int, after: str) -> int:
        """The number of the first key of `tenant` that sorts after `after`."""
        low, high = 0, self.counts[tenant]
        while low < high:
            middle = (low + high) // 2
            if self.key(tenant, middle) <= after:
                low = middle + 1
            else:
                high = middle
        return low

    def after(self, after: str, prefix: str) -> Iterator[str]:
        """Every key under `prefix` that sorts after `after`, in order."""
        for tenant, name in enumerate(self.names):
            if not (name.startswith(prefix) or prefix.startswith(name)) or name + "g" <= after:
                continue
            j = self.first_after(tenant, after) if after > name else 0
            for number in range(j, self.counts[tenant]):
                key = self.key(tenant, number)
                if not key.startswith(prefix):
                    if key > prefix:
                        break
                    continue
                yield key

    def differs(self, key: str) -> bool:
        if not self.differ:
            return False
        mark = int.from_bytes(hashlib.blake2b(f"{self.seed}:differ:{key}".encode(), digest_size=4).digest())
        return mark < self.differ * 2**32

    def body(self, key: str) -> bytes:
        return (key + "~old").encode() if self.differs(key) else key.encode()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], space: KeySpace) -> None:
        super().__init__(address, Handler)
        self.space = space
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()
        self.written: dict[str, tuple[str, int]] = {}  # key -> (ETag, size) of what was PUT

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away (a killed worker) is no error of the server's."""

    def count(self, what: str) -> None:
        with self.lock:
            self.stats[what] += 1

    def object(self, key: str) -> tuple[str, int] | None:
        if key in self.written:
            return self.written[key]
        if not self._exists(key):
            return None
        body = self.space.body(key)
        return hashlib.md5(body).hexdigest(), len(body)

    def _exists(self, key: str) -> bool:
        tenant_name, _, rest = key.partition("/")
        name = tenant_name + "/"
        if name not in self.space.names or len(rest) != 12:
            return False
        tenant = self.space.names.index(name)
        j = self.space.first_after(tenant, key[:-1] + chr(ord(key[-1]) - 1) + "~")
        return j < self.space.counts[tenant] and self.space.key(tenant, j) == key


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)) if self.command != "HEAD" or not headers else
                         (headers or {}).get("Content-Length", "0"))  # fmt: skip
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _where(self) -> tuple[str, str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return bucket, unquote(key), query

    def do_GET(self) -> None:  # noqa: N802
        bucket, key, query = self._where()
        if bucket == "_stats":
            with self.server.lock:
                doc = dict(self.server.stats) | {"keys_put_twice": sum(1 for c in self.server.puts.values() if c > 1),
                                                  "keys_put": len(self.server.puts)}  # fmt: skip
            return self._answer(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if not key:
            return self._list(query)
        found = self.server.object(key)
        self.server.count("get")
        if found is None:
            return self._answer(404, _error("NoSuchKey"), {"Content-Type": "application/xml"})
        etag, _size = found
        wanted = self.headers.get("If-Match")
        if wanted and wanted.strip('"') != etag:
            return self._answer(412, _error("PreconditionFailed"), {"Content-Type": "application/xml"})
        body = key.encode() if key in self.server.written else self.server.space.body(key)
        self._answer(200, body, {"ETag": f'"{etag}"', "Last-Modified": formatdate(1704067200, usegmt=True),
                                 "Content-Type": "application/octet-stream"})  # fmt: skip

    def do_HEAD(self) -> None:  # noqa: N802
        bucket, key, _ = self._where()
        if not key:
            return self._answer(200)
        self.server.count("head")
        found = self.server.object(key)
        if found is None:
            return self._answer(404)
        etag, size = found
        self._answer(200, b"", {"ETag": f'"{etag}"', "Content-Length": str(size),
                                "Last-Modified": formatdate(1704067200, usegmt=True)})  # fmt: skip

    def do_PUT(self) -> None:  # noqa: N802
        _bucket, key, _ = self._where()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        etag = hashlib.md5(body).hexdigest()
        with self.server.lock:
            self.server.stats["put"] += 1
            self.server.puts[key] += 1
            self.server.written[key] = (etag, len(body))
        self._answer(200, b"", {"ETag": f'"{etag}"'})

    def _list(self, query: dict[str, str]) -> None:
        space = self.server.space
        v2 = query.get("list-type") == "2"
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        limit = min(int(query.get("max-keys", "1000")), 1000)
        after = query.get("continuation-token") or query.get("start-after", "") if v2 else query.get("marker", "")
        self.server.count(("list_v2" if v2 else "list_v1") + ("_delimited" if delimiter else ""))
        keys, prefixes, truncated = _page(space, prefix, delimiter, after, limit)
        last = max(keys[-1:] + prefixes[-1:], default="")
        entries = []
        written = self.server.written
        for key in keys:
            if key in written:
                etag, size = written[key]
            else:
                body = space.body(key)
                etag, size = hashlib.md5(body).hexdigest(), len(body)
            entries.append(f"<Contents><Key>{quote(key)}</Key><LastModified>{MODIFIED}</LastModified>"
                           f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
                           "<StorageClass>STANDARD</StorageClass></Contents>")  # fmt: skip
        entries += [f"<CommonPrefixes><Prefix>{quote(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        more = f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        if truncated and v2:
            more += f"<NextContinuationToken>{escape(last)}</NextContinuationToken>"
        elif truncated and delimiter:
            more += f"<NextMarker>{quote(last)}</NextMarker>"
        root = "ListBucketResult"
        text = (f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Prefix>{quote(prefix)}</Prefix><KeyCount>{len(keys) + len(prefixes)}</KeyCount>"
                f"<MaxKeys>{limit}</MaxKeys><EncodingType>url</EncodingType>{more}{''.join(entries)}</{root}>")
        self._answer(200, text.encode(), {"Content-Type": "application/xml"})


def _page(space: KeySpace, prefix: str, delimiter: str, after: str, limit: int) -> tuple[list[str], list[str], bool]:
    """One listing page: (keys, common prefixes, truncated)."""
    keys: list[str] = []
    prefixes: list[str] = []
    if delimiter == "/" and "/" not in prefix:
        for tenant, name in enumerate(space.names):
            if name.startswith(prefix) and name > after and space.counts[tenant]:
                if len(prefixes) == limit:
                    return keys, prefixes, True
                prefixes.append(name)
        return keys, prefixes, False
    for key in space.after(max(after, prefix), prefix):
        if len(keys) == limit:
            return keys, prefixes, True
        keys.append(key)
    return keys, prefixes, False


def _error(code: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code></Error>'.encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--skew", type=float, default=1.1)
    parser.add_argument("--differ", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    space = KeySpace(args.keys, args.seed, args.tenants, args.skew, args.differ)
    server = Server(("127.0.0.1", args.port), space)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
