"""Every option of the configuration file, declared once: `OPTIONS`.

Each `Option` gives an option's section, name, type, default, range or
choices, whether quotes can be part of its value, and a line of help. The
reader (s3s3.config.file) parses by this table, the dataclasses' defaults
agree with it, and the configuration reference and the s3s3.ini(5) man page
are rendered from it.

`Option.value()` turns an option's text into its value, or raises
ValueError saying what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from s3s3 import names

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MAX_PART = 5 * GiB  # S3's largest single PUT and largest part
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)


class Mode(StrEnum):
    """How announcements travel through Redis ([pubsub] mode)."""

    PUBSUB = "pubsub"  # PUBLISH/SUBSCRIBE: fire and forget
    STREAM = "stream"  # XADD/XREADGROUP: acknowledged, shared by a group of listeners
    LIST = "list"  # RPUSH/BLMOVE: acknowledged, one processing list per listener


MODES = tuple(Mode)


class Versions(StrEnum):
    """Which versions of each key a destination keeps ([dest] versions)."""

    LATEST = "latest"  # the source's current version only
    ALL = "all"  # every version and delete marker, replayed in order (s3s3.copy.replay)


class ObjectLock(StrEnum):
    """What becomes of a source version's Object Lock retention and legal hold ([dest] object_lock)."""

    COPY = "copy"  # they travel with the copy; a destination bucket without Object Lock fails the key
    IGNORE = "ignore"  # the copy is written without them
SSE_CHOICES = ("AES256", "aws:kms")
CANNED_ACLS = (
    "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
    "bucket-owner-read", "bucket-owner-full-control",
)  # fmt: skip
OTHER_SECTIONS = ("pubsub", "metrics", "logging", "webhook")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
CALLING_FORMATS = {
    "ordinarycallingformat": "path",
    "subdomaincallingformat": "virtual",
}
SIGNATURE_VERSIONS = ("s3v4", "s3")
ADDRESSING_STYLES = ("auto", "path", "virtual")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*):(\d*)")  # host:9000 or [::1]:9000, not a bare IPv6 address
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")


class Section(StrEnum):
    """The kinds of section an option belongs to."""

    ENDPOINT = "endpoint"  # [source] and every [dest...]
    DEST = "dest"  # [dest...] only: what a backup keeps besides the bytes
    PUBSUB = "pubsub"
    METRICS = "metrics"
    LOGGING = "logging"
    WEBHOOK = "webhook"


class Type(StrEnum):
    """What an option's value is, as the reference names it."""

    STRING = "string"
    BOOL = "boolean"  # true/yes/on/1 or false/no/off/0
    INT = "whole number"  # within low..high
    SIZE = "size"  # bytes, or with a binary unit: 8MB, 64MiB, 1G; within low..high
    CHOICE = "choice"  # one of choices (any case, unless exact)
    URL = "URL"  # with one of choices as its scheme
    HOST = "host"  # a host name or address: no scheme, no port
    PATH = "path"  # an existing file


@dataclass(frozen=True)
class Option:
    """One option of the configuration file: what the reader parses and the reference documents.

    - `section`: the kind of section it belongs in; `name`: its name there.
    - `type`: what its value is; `default`: the value it takes when absent or
      empty (None: nothing; a required option has none).
    - `help`: the reference's one line about it.
    - `low`, `high`: the bounds of a whole number or a size (None: unbounded).
    - `choices`: a choice's values, or a URL's schemes.
    - `allowed`: what a value may be, in words, where the type and the range do
      not say it well (`allows` gives it either way, as errors and the
      reference word it).
    - `quotes`: True where quote characters can be part of a real value; a
      value wholly in quotes is an error everywhere else.
    - `secret`: the value is never shown; `required`: it must be given;
      `exact`: the choices are case-sensitive.
    - `field`: the attribute of the section's dataclass it sets: "" for its
      own name, None for an option that only feeds others (host, port and
      is_secure make `endpoint_url`); `attribute` resolves it.
    - `parse`: a parser of its own, where the type's does not fit.
    """

    section: Section
    name: str
    type: Type
    default: Any
    help: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    allowed: str = ""
    quotes: bool = False
    secret: bool = False
    required: bool = False
    exact: bool = False
    field: str | None = ""
    parse: Callable[[str], Any] | None = None

    @property
    def attribute(self) -> str | None:
        """The dataclass attribute this option sets, if any."""
        return self.name if self.field == "" else self.field

    @property
    def allows(self) -> str:
        """What a value may be, in words: "one of s3v4, s3", "a whole number in 1..256"."""
        if self.allowed:
            return self.allowed
        bounds = f" in {self.low}..{self.high}" if self.high is not None else ""
        if self.type is Type.SIZE and self.high is not None:
            bounds = f" between {_bytes(self.low or 0)} and {_bytes(self.high)}"
        return {
            Type.STRING: "any text", Type.BOOL: "true or false", Type.INT: f"a whole number{bounds}",
            Type.SIZE: f"a size (examples: 8MB, 64MiB, 8388608){bounds}",
            Type.CHOICE: f"one of {', '.join(self.choices)}",
            Type.URL: f"a {', '.join(s + '://' for s in self.choices)} URL", Type.PATH: "an existing file",
            Type.HOST: "a host name or address, without scheme or port",
        }[self.type]  # fmt: skip

    def value(self, text: str) -> Any:
        """`text` (as written, not empty) as this option's value; ValueError says what is allowed."""
        return self.parse(text) if self.parse else _PARSERS[self.type](self, text)

    def shown(self, text: str, quote: str = "") -> str:
        """How a message quotes `text` (in `quote`, else as a repr): never a secret, never a URL's password."""
        if self.secret:
            return "the value"
        visible = _redacted(text) if self.type in (Type.URL, Type.HOST) else text
        return f"{quote}{visible}{quote}" if quote else repr(visible)


def parse_size(text: str) -> int:
    """Bytes from `8388608`, `8MB`, `64MiB`, `1G` (K/M/G/T are binary, as in s3transfer)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 8MB, 64MiB, 8388608)")
    number, unit = int(match.group(1)), (match.group(2) or "b").lower()
    return number * {"b": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}[unit[0]]


def redact_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _redacted(text: str) -> str:
    try:
        shown = redact_url(text)
    except ValueError:
        shown = text
    # What does not split as a URL with a password may still hold user:password@: show nothing before the @.
    if shown == text and "@" in text:
        return "***@" + text.rsplit("@", 1)[1]
    return shown


def _bytes(size: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size and size % unit == 0:
            return f"{size // unit}{name}"
    return "1 byte" if size == 1 else f"{size} bytes"


def _string(option: Option, text: str) -> str:
    return text


def _boolean(option: Option, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"{option.shown(text)} is not true or false")


def _whole_number(option: Option, text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"{option.shown(text)} is not a whole number") from None
    if option.low is not None and option.high is not None and not option.low <= number <= option.high:
        raise ValueError(f"{number} is out of range {option.low}..{option.high}")
    return number


def _size(option: Option, text: str) -> int:
    size = parse_size(text)
    if option.high is not None and not (option.low or 0) <= size <= option.high:
        raise ValueError(f"must be between {_bytes(option.low or 0)} and {_bytes(option.high)}")
    return size


def _choice(option: Option, text: str) -> str:
    for choice in option.choices:
        if text == choice or (not option.exact and text.lower() == choice.lower()):
            return choice
    raise ValueError(f"{option.shown(text)} is not {option.allows}")


def _url(option: Option, text: str) -> str:
    # urlsplit raises on a broken [IPv6] address, .port on a port that is no
    # number; the URL is not quoted back, as it may hold a password.
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"is not a valid URL: {e}") from None
    if parts.scheme not in option.choices or (parts.scheme.startswith("http") and not parts.hostname):
        raise ValueError(f"{option.shown(text)} is not {option.allows}")
    return text


def _host(option: Option, text: str) -> str:
    # The store's URL is made as scheme://host:port: a scheme or a port here would come out twice.
    if "://" in text:
        raise ValueError(f"{option.shown(text)} holds a scheme: give endpoint_url = {_redacted(text)} instead, "
                         f"or {_host_port_secure(text)}")
    if match := _HOST_PORT.fullmatch(text):
        raise ValueError(f"{option.shown(text)} holds a port: give host = {match[1]} and port = {match[2]} "
                         "(and is_secure), or endpoint_url instead")
    return text


def _host_port_secure(url: str) -> str:
    """The host, port and is_secure lines that say what `url` does."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host:
        return "host without it, with port and is_secure"
    return f"host = {host}" + (f", port = {port}" if port else "") + f", is_secure = {parts.scheme == 'https'}"


def _path(option: Option, text: str) -> str:
    if not Path(text).is_file():
        raise ValueError(f"{option.shown(text)} is not a file")
    return text


_PARSERS: dict[Type, Callable[[Option, str], Any]] = {
    Type.STRING: _string, Type.BOOL: _boolean, Type.INT: _whole_number, Type.SIZE: _size,
    Type.CHOICE: _choice, Type.URL: _url, Type.HOST: _host, Type.PATH: _path,
}  # fmt: skip


def _calling_format(text: str) -> str:
    """The original's calling_format, `OrdinaryCallingFormat` or boto's dotted name, as an addressing style."""
    style = CALLING_FORMATS.get(text.rsplit(".", 1)[-1].lower())
    if style is None:
        raise ValueError(f"{text!r} is not OrdinaryCallingFormat or SubdomainCallingFormat")
    return style


def _host_ports(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port, host:port` as (host, port) pairs."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        match = _HOST_PORT.fullmatch(item)
        if not match or not match[1] or not match[2] or not 0 < int(match[2]) < 65536:
            raise ValueError(f"{item!r} is not host:port (give host:port, host:port, ...)")
        pairs.append((match[1].strip("[]"), int(match[2])))
    return tuple(pairs)


_E, _D, _P = Section.ENDPOINT, Section.DEST, Section.PUBSUB  # short, to keep each option on a line or two
OPTIONS: tuple[Option, ...] = (
    Option(_E, "aws_access_key_id", Type.STRING, None, "the access key (without keys: AWS's credential chain)",
           field="access_key"),
    Option(_E, "aws_secret_access_key", Type.STRING, None, "the secret key that goes with it", secret=True,
           field="secret_key"),
    Option(_E, "bucket_name", Type.STRING, None, "the bucket", required=True, field="bucket"),
    Option(_E, "host", Type.HOST, None, "the store's host, with port and is_secure (none of them: AWS)", field=None),
    Option(_E, "port", Type.INT, 0, "the store's port (0: the scheme's own)", low=0, high=65535, field=None),
    Option(_E, "is_secure", Type.BOOL, True, "https (true) or http (false) to host", field=None),
    Option(_E, "calling_format", Type.CHOICE, None, "the original's addressing_style: Ordinary is path, Subdomain "
           "virtual", choices=("OrdinaryCallingFormat", "SubdomainCallingFormat"),
           allowed="OrdinaryCallingFormat or SubdomainCallingFormat", field=None, parse=_calling_format),
    Option(_E, "endpoint_url", Type.URL, None, "the store's URL, instead of host, port and is_secure",
           choices=("http", "https"), allowed="an http(s):// URL"),
    Option(_E, "region", Type.STRING, None, "the bucket's region"),
    Option(_E, "profile", Type.STRING, None, "an AWS credential profile, instead of the two keys"),
    Option(_E, "signature_version", Type.CHOICE, "s3v4", "s3 (SigV2) for old Ceph", choices=SIGNATURE_VERSIONS),
    Option(_E, "addressing_style", Type.CHOICE, "auto", "the bucket in the path or the host name (wins over "
           "calling_format)", choices=ADDRESSING_STYLES),
    Option(_E, "multipart", Type.BOOL, True, "false: single PUT only (up to 5 GiB), where multipart is unreliable"),
    Option(_E, "multipart_threshold", Type.SIZE, 8 * MiB, "objects above this size are sent in parts",
           low=1, high=MAX_PART),
    Option(_E, "multipart_chunksize", Type.SIZE, 8 * MiB, "the part size", low=MIN_PART, high=MAX_PART),
    Option(_E, "list_version", Type.INT, 2, "1 for old Ceph RGW whose ListObjectsV2 paging is broken", low=1, high=2),
    Option(_E, "verify_ssl", Type.BOOL, True, "check the store's TLS certificate"),
    Option(_E, "ca_bundle", Type.PATH, None, "the CA certificates to check it with"),
    Option(_E, "prefix", Type.STRING, "", "only keys under this prefix (a leading / is dropped)", quotes=True),
    Option(_E, "verify_md5", Type.BOOL, False, "prove every copy's bytes by MD5, reading back where needed"),
    Option(_E, "checksums", Type.BOOL, False, "boto3's default CRC checksums (AWS only)"),
    Option(_E, "max_requests_per_second", Type.INT, 0, "requests per second to this store, every process that "
           "uses it together (0: no limit); SlowDown answers lower it for a while", low=0, high=1_000_000),
    Option(_D, "storage_class", Type.STRING, None, "the storage class of every copy (default: the bucket's)"),
    Option(_D, "propagate_deletes", Type.BOOL, False, "remove keys here when the source announces a delete"),
    Option(_D, "tags", Type.BOOL, True, "copy each object's tag set (false for Swift, which keeps none)"),
    Option(_D, "sse", Type.CHOICE, None, "encrypt the copies at rest", choices=SSE_CHOICES, exact=True),
    Option(_D, "sse_kms_key_id", Type.STRING, None, "with sse = aws:kms: the key's ARN or alias (default: the "
           "bucket's)", secret=True),
    Option(_D, "acl", Type.CHOICE, None, "a canned ACL for every copy", choices=CANNED_ACLS, exact=True,
           allowed=f"a canned ACL ({', '.join(CANNED_ACLS)})"),
    Option(_D, "preserve_mtime", Type.BOOL, True, "keep the source's Last-Modified in metadata `mtime`, as rclone"),
    Option(_D, "versions", Type.CHOICE, Versions.LATEST, "latest: the current version of each key; all: every "
           "version and delete marker, in order (the bucket must have versioning on)", choices=tuple(Versions)),
    Option(_D, "object_lock", Type.CHOICE, ObjectLock.COPY, "copy: a version's retention and legal hold travel "
           "with it (the bucket must have Object Lock); ignore: copies carry none", choices=tuple(ObjectLock)),
    Option(_D, "propagate_version_deletes", Type.BOOL, False, "with versions = all: a version deleted for good at "
           "the source is deleted here too (under --max-delete)"),
    Option(_P, "url", Type.URL, names.DEFAULT_URL, "the Redis server (its password is never shown)",
           choices=("redis", "rediss", "unix"), allowed="a redis://, rediss:// or unix:// URL"),
    Option(_P, "mode", Type.CHOICE, Mode.PUBSUB, "how announcements travel (stream and list lose nothing)",
           choices=MODES),
    Option(_P, "channel", Type.STRING, names.DEFAULT_CHANNEL, "pubsub mode: the channel producers PUBLISH on",
           quotes=True),
    Option(_P, "pattern", Type.BOOL, False, "pubsub mode: PSUBSCRIBE, with channel a glob pattern"),
    Option(_P, "stream", Type.STRING, names.DEFAULT_STREAM, "stream mode: the stream producers XADD to", quotes=True),
    Option(_P, "group", Type.STRING, names.DEFAULT_GROUP, "stream mode: the consumer group every listener joins",
           quotes=True),
    Option(_P, "consumer", Type.STRING, None, "this listener's name (default: host:pid in stream mode, the host "
           "name in list mode; s3s3listen --consumer wins)", quotes=True),
    Option(_P, "claim_idle", Type.INT, 60, "stream mode: seconds before another listener takes over a stuck entry",
           low=1, high=86400),
    Option(_P, "list", Type.STRING, names.DEFAULT_LIST, "list mode: the list producers RPUSH to", quotes=True),
    Option(_P, "workers", Type.INT, 16, "copies at once", low=1, high=256),
    Option(_P, "max_attempts", Type.INT, 0, "tries per key before it is dead-lettered (0: only the time bounds it)",
           low=0, high=1000),
    Option(_P, "max_retry_seconds", Type.INT, 300, "seconds a failing key is retried before it is dead-lettered",
           low=0, high=86400),
    Option(_P, "redis", Type.BOOL, True, "the original's flag: Redis is the only transport", field=None),
    Option(_P, "sns", Type.BOOL, False, "the original's flag: SNS is not supported", field=None),
    Option(_P, "cluster", Type.BOOL, False, "the Redis server is a Redis Cluster"),
    Option(_P, "cluster_nodes", Type.STRING, (), "with cluster: more nodes (host:port, ...) to start from when url's "
           "is down", allowed="host:port, host:port, ...", parse=_host_ports),
    Option(_P, "sentinels", Type.STRING, (), "Redis Sentinels (host:port, ...) to ask for the master; url then gives "
           "only the credentials and database", allowed="host:port, host:port, ...", parse=_host_ports),
    Option(_P, "sentinel_master", Type.STRING, "mymaster", "the name the sentinels know the master by", quotes=True),
    Option(_P, "sentinel_password", Type.STRING, None, "the sentinels' own password (default: none asked)",
           quotes=True, secret=True),
    Option(_P, "wait_replicas", Type.INT, 0, "stream and list modes: publish and the webhook answer success only once "
           "this many replicas hold each announcement (WAIT)", low=0, high=100),
    Option(_P, "bwlimit", Type.SIZE, 0, "bytes per second a process sends, all its copies together (0: no limit)",
           low=0),
    Option(_P, "ledger_days", Type.INT, 0, "days a destination's ledger lives after its last write (0: for ever)",
           low=0, high=36500),
    Option(Section.METRICS, "port", Type.INT, 0, "serve /metrics and /healthz on the listener (0: off)",
           low=0, high=65535),
    Option(Section.METRICS, "bind", Type.STRING, "127.0.0.1", "the address to serve them on"),
    Option(Section.METRICS, "max_copy_seconds", Type.INT, 900, "/healthz answers 503 while a copy has been in "
           "flight longer than this many seconds", low=1, high=7 * 86400),
    Option(Section.LOGGING, "level", Type.CHOICE, "info", "how much to log (--log-level wins)", choices=LOG_LEVELS),
    Option(Section.LOGGING, "format", Type.CHOICE, "text", "text or json lines (--log-format wins)",
           choices=LOG_FORMATS),
    Option(Section.WEBHOOK, "bind", Type.STRING, "127.0.0.1", "the address `s3s3 webhook` listens on"),
    Option(Section.WEBHOOK, "port", Type.INT, 8340, "the port it listens on", low=1, high=65535),
    Option(Section.WEBHOOK, "token", Type.STRING, None, "the token a sender must show (default: none asked)",
           quotes=True, secret=True),
    Option(Section.WEBHOOK, "tls_cert", Type.PATH, None, "serve HTTPS with this certificate chain (PEM; with "
           "tls_key; default: plain HTTP)"),
    Option(Section.WEBHOOK, "tls_key", Type.PATH, None, "the certificate's private key (PEM, unencrypted; with "
           "tls_cert)"),
)  # fmt: skip
ENDPOINT_OPTIONS = frozenset(o.name for o in OPTIONS if o.section in (_E, _D))
DESTINATION_OPTIONS = tuple(o.name for o in OPTIONS if o.section is _D)
PUBSUB_OPTIONS = frozenset(o.name for o in OPTIONS if o.section is _P)
