"""The configuration file: parsed once into frozen dataclasses, validated at load time.

The file is the original s3s3's INI format (`[source]`, `[dest...]`, `[pubsub]`),
including its inline comments and indented keys, plus the options the original
never had. The reader parses each option by its entry in `OPTIONS` and goes on
past a problem, so that one load reports them all: one line each, naming the
file, section and option.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3s3 import names
from s3s3.config.options import (
    DESTINATION_OPTIONS,
    OPTIONS,
    OTHER_SECTIONS,
    MiB,
    Mode,
    ObjectLock,
    Option,
    Section,
    Versions,
    redact_url,
)
from s3s3.errors import ConfigError

# Where the configuration is looked for when --config is not given, in order
# ($S3S3_CONFIG is tried before these).
DEFAULT_PATHS = ("./s3s3.ini", "/usr/local/etc/s3s3.ini")
CONFIG_ENV = "S3S3_CONFIG"

_PLACEHOLDER = re.compile(r"(?<!\$)\{[A-Z][A-Z0-9_]*\}")  # {YOUR_...}, but not ${NAME}
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMENT = re.compile(r"(?:^|\s)[#;]")  # where configparser's comments start: # or ; first or after a blank
_QUOTES = ("'", '"')


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
    max_requests_per_second: int = 0  # every process using this store together; 0: no limit
    propagate_deletes: bool = False
    # What a backup keeps besides the bytes (destinations only):
    tags: bool = True  # copy the object's tag set
    sse: str | None = None  # encrypt at rest: AES256 or aws:kms
    sse_kms_key_id: str | None = field(default=None, repr=False)  # with aws:kms: the key's ARN or alias
    acl: str | None = None  # a canned ACL for every copy
    preserve_mtime: bool = True  # the source's Last-Modified in metadata `mtime`, as rclone keeps it
    versions: Versions = Versions.LATEST  # every version and delete marker, or the current one (s3s3.copy.replay)
    object_lock: ObjectLock = ObjectLock.COPY  # a version's retention and legal hold travel with its copy
    propagate_version_deletes: bool = False  # with versions = all: a version deleted for good goes here too

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
    cluster_nodes: tuple[tuple[str, int], ...] = ()  # nodes besides url's to find the cluster from
    sentinels: tuple[tuple[str, int], ...] = ()  # (host, port) of each Sentinel; url then names no host
    sentinel_master: str = "mymaster"
    sentinel_password: str | None = field(default=None, repr=False)
    wait_replicas: int = 0  # replicas that must hold an announcement before publish says it is done
    bwlimit: int = 0  # bytes per second a process sends, all copies together; 0: no limit
    ledger_days: int = 0  # a destination's ledger expires this long after its last write; 0: never

    @property
    def safe_url(self) -> str:
        """How logs and errors name the Redis: its URL with any password as ***, or the Sentinels and master."""
        if self.sentinels:  # as kombu and limits write a Sentinel-found master, without the password
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"redis+sentinel://{hosts}/{self.sentinel_master}"
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

    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Webhook:
    """`s3s3 webhook`: where it listens, the token a sender must show, and its TLS certificate (both or neither)."""

    bind: str = "127.0.0.1"
    port: int = 8340
    token: str | None = field(default=None, repr=False)
    tls_cert: str | None = None  # a PEM certificate chain: serve HTTPS
    tls_key: str | None = None  # its private key (PEM, unencrypted)


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
        """Read, validate and return the configuration at `path`; ConfigError lists every problem in it."""
        path = str(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a valid INI file: {_one_line(e)}") from e
        parser = _parser()
        try:
            parser.read_string(text, source=path)
        # configparser quotes the offending lines, which may hold a secret: give their numbers only.
        except configparser.MissingSectionHeaderError as e:
            raise ConfigError(f"{path}: line {e.lineno}: an option before the first [section]") from e
        except configparser.ParsingError as e:
            raise ConfigError(
                *(f"{path}: line {lineno}: not a [section] or an 'option = value' line" for lineno, _ in e.errors)
            ) from e
        except configparser.Error as e:
            raise ConfigError(f"{path}: not a valid INI file: {_one_line(e)}") from e
        return _build(_Reader(path, parser, _folded_lines(parser, text)))


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
    r = _Reader("<options>", parser, {})
    endpoint = _endpoint(r, name)
    if r.problems:
        raise ConfigError(*r.problems)
    return endpoint


class _Reader:
    """The raw INI values parsed by the option table; it notes each problem and goes on."""

    def __init__(self, path: str, parser: configparser.ConfigParser, folded: dict[tuple[str, str], list[int]]) -> None:
        self.path = path
        self.parser = parser
        self.folded = folded  # (section, option): the lines configparser folded into its value
        self.problems: list[str] = []  # one line each, in the order found
        self.bad: set[tuple[str, str | None]] = set()  # (section, option) with a problem: checked no further
        self.given: set[tuple[str, str]] = set()  # (section, option) whose value is in the file and valid

    def problem(self, section: str, option: str | None, problem: str) -> None:
        where = f"[{section}] {option}" if option else f"[{section}]"
        self.problems.append(f"{self.path}: {where}: {problem}")
        self.bad.add((section, option))

    def ok(self, section: str, *options: str) -> bool:
        """True when none of these options (or nothing in the section, if none are named) has a problem."""
        if options:
            return not any((section, option) in self.bad for option in options)
        return all(where != section for where, _ in self.bad)

    def read(self, section: str, kinds: tuple[Section, ...]) -> dict[str, Any]:
        """Each option of these kinds: its value in `section`, or its default where absent, empty or wrong."""
        table = {o.name: o for o in OPTIONS if o.section in kinds}
        values = {name: option.default for name, option in table.items()}
        for name in self.parser.options(section):
            for lineno in self.folded.get((section, name), ()):
                self.problems.append(
                    f"{self.path}: line {lineno}: indented deeper than the line above, so it continues "
                    f"[{section}] {name}'s value; indent it like the others"
                )
            option = table.get(name)
            if option is None:
                self.problem(section, name, _unknown(name, kinds))
                continue
            try:
                text = self.text(section, option)
                if text:
                    values[name] = option.value(text)
                    self.given.add((section, name))
            except ValueError as e:
                self.problem(section, name, str(e))
        for option in table.values():
            if option.required and (section, option.name) not in self.given and self.ok(section, option.name):
                self.problem(section, option.name, "is required")
        return values

    def text(self, section: str, option: Option) -> str:
        """The option's value as written: placeholders and needless quotes refused, each ${NAME} filled in."""
        first, newline, _ = self.parser.get(section, option.name).partition("\n")
        if newline and (section, option.name) not in self.folded:
            raise ValueError("holds more than one line; give it on one")
        value = first.strip()
        if _PLACEHOLDER.search(value):
            raise ValueError("still holds a template placeholder; fill it in")
        if not option.quotes and len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
            raise ValueError(
                f"{option.shown(value[1:-1], value[0])} is in quotes, which would become part of the value: "
                "remove them"
            )
        unset = [name for name in _ENV_VAR.findall(value) if name not in os.environ]
        if unset:
            raise ValueError(f"environment variable ${{{unset[0]}}} is not set")
        return _ENV_VAR.sub(lambda match: os.environ[match.group(1)], value)


def _parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"), strict=True)
    parser.optionxform = str.lower  # type: ignore[assignment,method-assign]
    return parser


def _folded_lines(parser: configparser.ConfigParser, text: str) -> dict[tuple[str, str], list[int]]:
    """The lines configparser folds into the value of the option above them, by (section, option).

    configparser's rule, followed here step by step: a line indented deeper
    than the option line above it continues that option's value (blank and
    comment lines in between change nothing), so `region = eu-west-1` followed
    by an indented `storage_class = STANDARD_IA` is one region of two lines.
    """
    folded: dict[tuple[str, str], list[int]] = {}
    section: str | None = None
    option: str | None = None
    indent = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        comment = _COMMENT.search(line)
        value = (line[: comment.start()] if comment else line).strip()
        if not value:
            continue
        depth = len(line) - len(line.lstrip())
        if section is not None and option and depth > indent:
            folded.setdefault((section, option), []).append(lineno)
            continue
        indent = depth
        if header := parser.SECTCRE.match(value):
            section, option = header.group("header"), None
        elif match := parser.OPTCRE.match(value):
            option = parser.optionxform(match.group("option").rstrip())
    return folded


def _unknown(name: str, kinds: tuple[Section, ...]) -> str:
    if Section.DEST not in kinds and name in DESTINATION_OPTIONS:
        return "is a destination option: move it to a [dest...] section"
    return "unknown option"


def _fields(values: dict[str, Any], kinds: tuple[Section, ...]) -> dict[str, Any]:
    """The dataclass attributes that the options of these kinds set, from their values."""
    return {o.attribute: values[o.name] for o in OPTIONS if o.section in kinds and o.attribute}


def _build(r: _Reader) -> Config:
    sections = r.parser.sections()
    if "source" not in sections:
        r.problems.append(f"{r.path}: [source]: section is missing")
    if not any(s.startswith("dest") for s in sections):
        r.problems.append(f"{r.path}: no destination: add a section whose name starts with 'dest'")
    expected = ", ".join(("source", "dest...", *OTHER_SECTIONS))
    for section in sections:
        if section not in OTHER_SECTIONS and section != "source" and not section.startswith("dest"):
            r.problem(section, None, f"unknown section (expected {expected})")
    endpoints = {s: _endpoint(r, s) for s in sections if s == "source" or s.startswith("dest")}
    source = endpoints.pop("source", None)
    dests = tuple(endpoints.values())
    if source and r.ok("source"):
        _check_not_the_source(r, source, dests)
    pubsub = PubSub(**_pubsub(r)) if "pubsub" in sections else PubSub()
    metrics = Metrics(**_plain(r, Section.METRICS)) if "metrics" in sections else Metrics()
    logging = Logging(**_plain(r, Section.LOGGING)) if "logging" in sections else Logging()
    webhook = Webhook(**_webhook(r)) if "webhook" in sections else Webhook()
    if r.problems or source is None:
        raise ConfigError(*r.problems)
    return Config(r.path, source, dests, pubsub=pubsub, metrics=metrics, logging=logging, webhook=webhook)


def _check_not_the_source(r: _Reader, source: Endpoint, dests: tuple[Endpoint, ...]) -> None:
    for dest in dests:
        if r.ok(dest.name) and dest.same_store(source) and (dest.bucket, dest.prefix) == (source.bucket, source.prefix):
            r.problem(dest.name, "bucket_name", "is the source bucket itself")


def _endpoint(r: _Reader, section: str) -> Endpoint:
    kinds = (Section.ENDPOINT,) if section == "source" else (Section.ENDPOINT, Section.DEST)
    values = r.read(section, kinds)
    _check_credentials(r, section, values)
    if values.get("sse_kms_key_id") and values["sse"] != "aws:kms" and r.ok(section, "sse"):
        r.problem(section, "sse_kms_key_id", "needs sse = aws:kms")
    fields = _fields(values, kinds)
    if (section, "addressing_style") not in r.given:
        fields["addressing_style"] = values["calling_format"] or "auto"
    fields["endpoint_url"] = _endpoint_url(r, section, values)
    fields["prefix"] = values["prefix"].lstrip("/")
    return Endpoint(name=section, **fields)


def _check_credentials(r: _Reader, section: str, values: dict[str, Any]) -> None:
    key, secret = "aws_access_key_id", "aws_secret_access_key"
    if r.ok(section, key, secret) and bool(values[key]) != bool(values[secret]):
        r.problem(section, secret if values[key] else key, "is required when the other key is given")
    if values["profile"] and values[key]:
        r.problem(section, "profile", "give either profile or access keys, not both")


def _endpoint_url(r: _Reader, section: str, values: dict[str, Any]) -> str | None:
    url = values["endpoint_url"]
    if url or (section, "endpoint_url") in r.bad:
        # Checked whether or not they count: a typo is an error even where another option makes it moot.
        for option in ("host", "port", "is_secure"):
            if r.parser.has_option(section, option) and r.ok(section, option):
                r.problem(section, option, f"give endpoint_url or host/port/is_secure, not both: remove {option}")
        return url.rstrip("/") if url else None
    host, port = values["host"], values["port"]
    if not host:
        return None  # AWS itself, found from the region
    scheme = "https" if values["is_secure"] else "http"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _pubsub(r: _Reader) -> dict[str, Any]:
    values = r.read("pubsub", (Section.PUBSUB,))
    if values["sns"]:
        r.problem("pubsub", "sns", "SNS is not supported; use redis")
    if not values["redis"]:
        r.problem("pubsub", "redis", "redis is the only transport; it cannot be turned off")
    if values["sentinels"] and values["cluster"]:
        r.problem("pubsub", "sentinels", "give sentinels or cluster = true, not both")
    if values["cluster_nodes"] and not values["cluster"]:
        r.problem("pubsub", "cluster_nodes", "needs cluster = true")
    if values["wait_replicas"] and values["mode"] is Mode.PUBSUB:
        r.problem("pubsub", "wait_replicas", "needs mode = stream or list (pubsub keeps nothing to replicate)")
    return _fields(values, (Section.PUBSUB,))


def _webhook(r: _Reader) -> dict[str, Any]:
    values = r.read("webhook", (Section.WEBHOOK,))
    cert, key = values["tls_cert"], values["tls_key"]
    if r.ok("webhook", "tls_cert", "tls_key") and bool(cert) != bool(key):
        r.problem("webhook", "tls_key" if cert else "tls_cert", "is required when the other is given (both or neither)")
    return _fields(values, (Section.WEBHOOK,))


def _plain(r: _Reader, kind: Section) -> dict[str, Any]:
    """The attributes of a section whose options need no checks beyond their own."""
    return _fields(r.read(kind.value, (kind,)), (kind,))


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
