"""The configuration: the file read into dataclasses (file.py), by the table of every option (options.py)."""

from s3s3.config.file import (
    CONFIG_ENV,
    DEFAULT_PATHS,
    Config,
    Endpoint,
    Logging,
    Metrics,
    PubSub,
    Webhook,
    endpoint_from_options,
    find_config,
    load,
)
from s3s3.config.options import (
    ADDRESSING_STYLES,
    CALLING_FORMATS,
    CANNED_ACLS,
    DESTINATION_OPTIONS,
    ENDPOINT_OPTIONS,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_PART,
    MIN_PART,
    MODES,
    OPTIONS,
    OTHER_SECTIONS,
    PUBSUB_OPTIONS,
    SIGNATURE_VERSIONS,
    SSE_CHOICES,
    GiB,
    KiB,
    MiB,
    Mode,
    Option,
    Section,
    Type,
    parse_size,
    redact_url,
)

__all__ = [
    "ADDRESSING_STYLES", "CALLING_FORMATS", "CANNED_ACLS", "CONFIG_ENV", "DEFAULT_PATHS", "DESTINATION_OPTIONS",
    "ENDPOINT_OPTIONS", "LOG_FORMATS", "LOG_LEVELS", "MAX_PART", "MIN_PART", "MODES", "OPTIONS", "OTHER_SECTIONS",
    "PUBSUB_OPTIONS", "SIGNATURE_VERSIONS", "SSE_CHOICES", "Config", "Endpoint", "GiB", "KiB", "Logging", "Metrics",
    "MiB", "Mode", "Option", "PubSub", "Section", "Type", "Webhook", "endpoint_from_options", "find_config", "load",
    "parse_size", "redact_url",
]  # fmt: skip
