"""The configuration file: parsed once into frozen dataclasses, validated at load time.

The file is the original s3s3's INI format (`[source]`, `[dest...]`, `[pubsub]`),
including its inline comments and indented keys, plus the options the original
never had. Every error names the file, section and option in one line.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from s3s3 import names
from s3s3.errors import ConfigError

# Where the configuration is looked for when --config is not given, in order
# ($S3S3_CONFIG is tried before these).
DEFAULT_PATHS = ("./s3s3.ini", "/usr/local/etc/s3s3.ini")
CONFIG_ENV = "S3S3_CONFIG"

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MAX_PART = 5 * GiB  # S3's largest single PUT and largest part
MIN_PART = 5 * MiB  # S3's smallest part (all but the last)

ENDPOINT_OPTIONS = frozenset(
    {
        "aws_access_key_id", "aws_secret_access_key", "bucket_name", "host", "port",
        "is_secure", "calling_format", "verify_md5", "endpoint_url", "region", "profile",
        "signature_version", "addressing_style", "multipart", "multipart_threshold",
        "multipart_chunksize", "list_version", "verify_ssl", "ca_bundle", "storage_class",
        "prefix", "checksums", "propagate_deletes", "tags", "sse", "sse_kms_key_id", "acl", "preserve_mtime",
    }
)
PUBSUB_OPTIONS = frozenset(
    {
        "url", "mode", "channel", "pattern", "stream", "group", "consumer", "claim_idle", "list",
        "workers", "max_attempts", "max_retry_seconds", "redis", "sns", "cluster", "bwlimit", "ledger_days",
    }
)


class Mode(StrEnum):
    """How announcements travel through Redis ([pubsub] mode)."""

    PUBSUB = "pubsub"  # PUBLISH/SUBSCRIBE: fire and forget
    STREAM = "stream"  # XADD/XREADGROUP: acknowledged, shared by a group of listeners
    LIST = "list"  # RPUSH/BLMOVE: acknowledged, one processing list per listener


MODES = tuple(Mode)
DESTINATION_OPTIONS = (
    "storage_class", "propagate_deletes", "tags", "sse", "sse_kms_key_id", "acl", "preserve_mtime",
)  # fmt: skip
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
_PLACEHOLDER = re.compile(r"(?<!\$)\{[A-Z][A-Z0-9_]*\}")  # {YOUR_...}, but not ${NAME}
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")


@dataclass(frozen=True)
class Endpoint:
    """One S3 bucket s3s3 reads from or writes to, and how to reach it."""

    name: str
    bucket: str
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    profile: str | None = None
    signature_version: str = "s3v4"
    addressing_style: str = "auto"
    multipart: bool = True
    multipart_threshold: int = 8 * MiB
    multipart_chunksize: int = 8 * MiB
    list_version: int = 2
    verify_ssl: bool = True
    ca_bundle: str | None = None
    storage_class: str | None = None
    prefix: str = ""
    verify_md5: bool = False
    checksums: bool = False
    propagate_deletes: bool = False
    # What a backup keeps besides the bytes (destinations only):
    tags: bool = True  # copy the object's tag set
    sse: str | None = None  # encrypt at rest: AES256 or aws:kms
    sse_kms_key_id: str | None = field(default=None, repr=False)  # with aws:kms: the key's ARN or alias
    acl: str | None = None  # a canned ACL for every copy
    preserve_mtime: bool = True  # the source's Last-Modified in metadata `mtime`, as rclone keeps it

    @property
    def label(self) -> str:
        """How logs name this endpoint: section, bucket and where it lives."""
        return f"{self.name}:{self.bucket}"

    def same_store(self, other: Endpoint) -> bool:
        """True when a server-side copy between the two can work: same place, same identity."""
        return (
            self.endpoint_url == other.endpoint_url
            and self.access_key == other.access_key
            and self.secret_key == other.secret_key
            and self.profile == other.profile
            and self.region == other.region
        )


@dataclass(frozen=True)
class PubSub:
    """Where announcements arrive (a Redis server, and a channel, stream or list on it) and how they are worked."""

    url: str = field(default=names.DEFAULT_URL, repr=False)
    mode: Mode = Mode.PUBSUB
    channel: str = names.DEFAULT_CHANNEL
    pattern: bool = False
    stream: str = names.DEFAULT_STREAM
    group: str = names.DEFAULT_GROUP
    consumer: str | None = None
    claim_idle: float = 60.0
    list: str = names.DEFAULT_LIST
    workers: int = 16
    max_attempts: int = 0  # 0: no bound but max_retry_seconds
    max_retry_seconds: float = 300.0
    cluster: bool = False
    bwlimit: int = 0  # bytes per second a process sends, all copies together; 0: no limit
    ledger_days: int = 0  # a destination's ledger expires this long after its last write; 0: never

    @property
    def safe_url(self) -> str:
        """The Redis URL with any password replaced by ***, for logs and errors."""
        return redact_url(self.url)

    @property
    def target(self) -> str:
        """The channel, stream or list that this mode reads and `s3s3 publish` writes."""
        return {Mode.STREAM: self.stream, Mode.LIST: self.list}.get(self.mode, self.channel)

    def __repr__(self) -> str:
        return f"PubSub(url={self.safe_url!r}, mode={self.mode!r}, target={self.target!r}, workers={self.workers})"


@dataclass(frozen=True)
class Metrics:
    """The listener's /metrics and /healthz endpoint; off unless a port is given."""

    port: int = 0
    bind: str = "127.0.0.1"
    max_copy_seconds: float = 900.0  # /healthz answers 503 while a copy has been in flight longer than this


@dataclass(frozen=True)
class Logging:
    """How the commands log (the command line's --log-level/--log-format win)."""

    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class Webhook:
    """`s3s3 webhook`: where it listens, and the token a sender must show."""

    bind: str = "127.0.0.1"
    port: int = 8340
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    path: str
    source: Endpoint
    dests: tuple[Endpoint, ...]
    pubsub: PubSub = field(default_factory=PubSub)
    metrics: Metrics = field(default_factory=Metrics)
    logging: Logging = field(default_factory=Logging)
    webhook: Webhook = field(default_factory=Webhook)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Config:
        """Read, validate and return the configuration at `path`."""
        path = str(path)
        parser = configparser.ConfigParser(
            interpolation=None, inline_comment_prefixes=("#", ";"), strict=True
        )
        parser.optionxform = str.lower  # type: ignore[assignment,method-assign]
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
        # configparser quotes the offending lines, which may hold a secret: give their numbers only.
        except configparser.MissingSectionHeaderError as e:
            raise ConfigError(f"{path}: line {e.lineno}: an option before the first [section]") from e
        except configparser.ParsingError as e:
            lines = ", ".join(str(lineno) for lineno, _ in e.errors)
            raise ConfigError(f"{path}: line {lines}: not a [section] or an 'option = value' line") from e
        except (configparser.Error, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not a valid INI file: {_one_line(e)}") from e
        return _build(_Reader(path, parser))


def find_config(explicit: str | None) -> str:
    """The configuration path to use: --config, $S3S3_CONFIG, ./s3s3.ini, /usr/local/etc/s3s3.ini."""
    if explicit:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return from_env
    for candidate in DEFAULT_PATHS:
        if Path(candidate).is_file():
            return candidate
    looked = ", ".join(("--config", f"${CONFIG_ENV}", *DEFAULT_PATHS))
    raise ConfigError(f"no configuration file found (looked at {looked})")


def load(explicit: str | None = None) -> Config:
    """Find and load the configuration."""
    return Config.from_file(find_config(explicit))


def endpoint_from_options(name: str, options: dict[str, str]) -> Endpoint:
    """An Endpoint from one section's options given as a dict (the Python API's way in)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict({name: {k: str(v) for k, v in options.items()}})
    return _endpoint(_Reader("<options>", parser), name)


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


class _Reader:
    """Typed, validated access to the raw INI values; every error names file/section/option."""

    def __init__(self, path: str, parser: configparser.ConfigParser) -> None:
        self.path = path
        self.parser = parser

    def error(self, section: str, option: str | None, problem: str) -> ConfigError:
        where = f"[{section}] {option}" if option else f"[{section}]"
        return ConfigError(f"{self.path}: {where}: {problem}")

    def get(self, section: str, option: str, default: str | None = None) -> str | None:
        if not self.parser.has_option(section, option):
            return default
        value = self.parser.get(section, option).strip()
        if _PLACEHOLDER.search(value):
            raise self.error(section, option, "still holds a template placeholder; fill it in")

        def from_env(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise self.error(section, option, f"environment variable ${{{name}}} is not set")
            return os.environ[name]

        return _ENV_VAR.sub(from_env, value)

    def require(self, section: str, option: str) -> str:
        value = self.get(section, option)
        if not value:
            raise self.error(section, option, "is required")
        return value

    def boolean(self, section: str, option: str, default: bool) -> bool:
        value = self.get(section, option)
        if value is None or value == "":
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.error(section, option, f"{value!r} is not true or false")

    def integer(self, section: str, option: str, default: int, low: int, high: int) -> int:
        value = self.get(section, option)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.error(section, option, f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise self.error(section, option, f"{number} is out of range {low}..{high}")
        return number

    def size(self, section: str, option: str, default: int) -> int:
        value = self.get(section, option)
        if value is None or value == "":
            return default
        try:
            return parse_size(value)
        except ValueError as e:
            raise self.error(section, option, str(e)) from None

    def choice(self, section: str, option: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (self.get(section, option) or default).lower()
        if value not in allowed:
            raise self.error(section, option, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def check_known(self, section: str, known: frozenset[str]) -> None:
        for option in self.parser.options(section):
            if option not in known:
                raise self.error(section, option, "unknown option")


def _build(r: _Reader) -> Config:
    sections = r.parser.sections()
    if "source" not in sections:
        raise ConfigError(f"{r.path}: [source]: section is missing")
    dest_names = [s for s in sections if s.startswith("dest")]
    if not dest_names:
        raise ConfigError(f"{r.path}: no destination: add a section whose name starts with 'dest'")
    for section in sections:
        if section not in OTHER_SECTIONS and section != "source" and not section.startswith("dest"):
            expected = ", ".join(("source", "dest...", *OTHER_SECTIONS))
            raise r.error(section, None, f"unknown section (expected {expected})")
    source = _endpoint(r, "source")
    dests = tuple(_endpoint(r, name) for name in dest_names)
    for dest in dests:
        if dest.same_store(source) and dest.bucket == source.bucket and dest.prefix == source.prefix:
            raise r.error(dest.name, "bucket_name", "is the source bucket itself")
    return Config(
        path=r.path,
        source=source,
        dests=dests,
        pubsub=_pubsub(r) if "pubsub" in sections else PubSub(),
        metrics=_metrics(r) if "metrics" in sections else Metrics(),
        logging=_logging(r) if "logging" in sections else Logging(),
        webhook=_webhook(r) if "webhook" in sections else Webhook(),
    )


def _endpoint(r: _Reader, section: str) -> Endpoint:
    r.check_known(section, ENDPOINT_OPTIONS)
    access_key = r.get(section, "aws_access_key_id") or None
    secret_key = r.get(section, "aws_secret_access_key") or None
    profile = r.get(section, "profile") or None
    if bool(access_key) != bool(secret_key):
        missing = "aws_secret_access_key" if access_key else "aws_access_key_id"
        raise r.error(section, missing, "is required when the other key is given")
    if profile and access_key:
        raise r.error(section, "profile", "give either profile or access keys, not both")
    multipart_chunksize = r.size(section, "multipart_chunksize", 8 * MiB)
    if not MIN_PART <= multipart_chunksize <= MAX_PART:
        raise r.error(section, "multipart_chunksize", "must be between 5MiB and 5GiB")
    multipart_threshold = r.size(section, "multipart_threshold", 8 * MiB)
    if not 1 <= multipart_threshold <= MAX_PART:
        raise r.error(section, "multipart_threshold", "must be between 1 byte and 5GiB")
    ca_bundle = r.get(section, "ca_bundle") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise r.error(section, "ca_bundle", f"{ca_bundle!r} is not a file")
    return Endpoint(
        name=section,
        bucket=r.require(section, "bucket_name"),
        endpoint_url=_endpoint_url(r, section),
        access_key=access_key,
        secret_key=secret_key,
        region=r.get(section, "region") or None,
        profile=profile,
        signature_version=r.choice(section, "signature_version", "s3v4", SIGNATURE_VERSIONS),
        addressing_style=_addressing_style(r, section),
        multipart=r.boolean(section, "multipart", True),
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        list_version=r.integer(section, "list_version", 2, 1, 2),
        verify_ssl=r.boolean(section, "verify_ssl", True),
        ca_bundle=ca_bundle,
        storage_class=r.get(section, "storage_class") or None,
        prefix=(r.get(section, "prefix") or "").lstrip("/"),
        verify_md5=r.boolean(section, "verify_md5", False),
        checksums=r.boolean(section, "checksums", False),
        propagate_deletes=r.boolean(section, "propagate_deletes", False),
        **_backup_options(r, section),
    )


def _backup_options(r: _Reader, section: str) -> dict[str, Any]:
    """What a destination keeps besides the bytes: tags, encryption, ACL, modification time."""
    given = [o for o in DESTINATION_OPTIONS if r.parser.has_option(section, o)]
    if section == "source" and given:
        raise r.error(section, given[0], "is a destination option: move it to a [dest...] section")
    sse = r.get(section, "sse") or None
    if sse is not None and sse not in SSE_CHOICES:
        raise r.error(section, "sse", f"{sse!r} is not one of {', '.join(SSE_CHOICES)}")
    kms_key = r.get(section, "sse_kms_key_id") or None
    if kms_key and sse != "aws:kms":
        raise r.error(section, "sse_kms_key_id", "needs sse = aws:kms")
    acl = r.get(section, "acl") or None
    if acl is not None and acl not in CANNED_ACLS:
        raise r.error(section, "acl", f"{acl!r} is not a canned ACL ({', '.join(CANNED_ACLS)})")
    return {
        "tags": r.boolean(section, "tags", True),
        "sse": sse,
        "sse_kms_key_id": kms_key,
        "acl": acl,
        "preserve_mtime": r.boolean(section, "preserve_mtime", True),
    }


def _endpoint_url(r: _Reader, section: str) -> str | None:
    url = r.get(section, "endpoint_url") or None
    host = r.get(section, "host") or None
    # Checked whether or not they count: a typo is an error even where another option makes it moot.
    secure = r.boolean(section, "is_secure", True)
    port = r.integer(section, "port", 0, 0, 65535)
    if url:
        also = [o for o in ("host", "port", "is_secure") if r.parser.has_option(section, o)]
        if also:
            raise r.error(section, also[0], f"give endpoint_url or host/port/is_secure, not both: remove {also[0]}")
        parts = _split_url(r, section, "endpoint_url", url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise r.error(section, "endpoint_url", f"{url!r} is not an http(s):// URL")
        return url.rstrip("/")
    if not host:
        return None  # AWS itself, found from the region
    scheme = "https" if secure else "http"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _addressing_style(r: _Reader, section: str) -> str:
    calling_format = r.get(section, "calling_format")
    if r.get(section, "addressing_style") or not calling_format:
        return r.choice(section, "addressing_style", "auto", ADDRESSING_STYLES)
    short = calling_format.rsplit(".", 1)[-1].lower()
    if short not in CALLING_FORMATS:
        raise r.error(
            section,
            "calling_format",
            f"{calling_format!r} is not OrdinaryCallingFormat or SubdomainCallingFormat",
        )
    return CALLING_FORMATS[short]


def _pubsub(r: _Reader) -> PubSub:
    r.check_known("pubsub", PUBSUB_OPTIONS)
    if r.boolean("pubsub", "sns", False):
        raise r.error("pubsub", "sns", "SNS is not supported; use redis")
    if not r.boolean("pubsub", "redis", True):
        raise r.error("pubsub", "redis", "redis is the only transport; it cannot be turned off")
    url = r.get("pubsub", "url") or names.DEFAULT_URL
    if _split_url(r, "pubsub", "url", url).scheme not in ("redis", "rediss", "unix"):
        raise r.error("pubsub", "url", f"{redact_url(url)!r} is not a redis://, rediss:// or unix:// URL")
    return PubSub(
        url=url,
        mode=Mode(r.choice("pubsub", "mode", Mode.PUBSUB, MODES)),
        channel=r.get("pubsub", "channel") or names.DEFAULT_CHANNEL,
        pattern=r.boolean("pubsub", "pattern", False),
        stream=r.get("pubsub", "stream") or names.DEFAULT_STREAM,
        group=r.get("pubsub", "group") or names.DEFAULT_GROUP,
        consumer=r.get("pubsub", "consumer") or None,
        claim_idle=r.integer("pubsub", "claim_idle", 60, 1, 86400),
        list=r.get("pubsub", "list") or names.DEFAULT_LIST,
        workers=r.integer("pubsub", "workers", PubSub.workers, 1, 256),
        max_attempts=r.integer("pubsub", "max_attempts", PubSub.max_attempts, 0, 1000),
        max_retry_seconds=r.integer("pubsub", "max_retry_seconds", 300, 0, 86400),
        cluster=r.boolean("pubsub", "cluster", False),
        bwlimit=r.size("pubsub", "bwlimit", 0),
        ledger_days=r.integer("pubsub", "ledger_days", 0, 0, 36500),
    )


def _split_url(r: _Reader, section: str, option: str, url: str) -> SplitResult:
    # urlsplit raises on a broken [IPv6] address, .port on a port that is no
    # number; the URL is not quoted back, as it may hold a password.
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        raise r.error(section, option, f"is not a valid URL: {e}") from None
    return parts


def _metrics(r: _Reader) -> Metrics:
    r.check_known("metrics", frozenset({"port", "bind", "max_copy_seconds"}))
    return Metrics(
        port=r.integer("metrics", "port", 0, 0, 65535),
        bind=r.get("metrics", "bind") or Metrics.bind,
        max_copy_seconds=r.integer("metrics", "max_copy_seconds", int(Metrics.max_copy_seconds), 1, 7 * 86400),
    )


def _logging(r: _Reader) -> Logging:
    r.check_known("logging", frozenset({"level", "format"}))
    return Logging(
        level=r.choice("logging", "level", "info", LOG_LEVELS).upper(),
        format=r.choice("logging", "format", "text", LOG_FORMATS),
    )


def _webhook(r: _Reader) -> Webhook:
    r.check_known("webhook", frozenset({"bind", "port", "token"}))
    return Webhook(
        bind=r.get("webhook", "bind") or Webhook.bind,
        port=r.integer("webhook", "port", Webhook.port, 1, 65535),
        token=r.get("webhook", "token") or None,
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
