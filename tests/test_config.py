"""The configuration file: the original template loads as is, every option parses, every error is one line."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from s3s3.cli import main
from s3s3.config import (
    OPTIONS,
    Config,
    Endpoint,
    GiB,
    Logging,
    Metrics,
    MiB,
    Option,
    PubSub,
    Section,
    Type,
    Webhook,
    endpoint_from_options,
    parse_size,
)  # fmt: skip
from s3s3.errors import ConfigError

pytestmark = pytest.mark.timeout(30)

SECRET = "SENTINEL-secret-9f8e7d"  # must never be shown anywhere
PASSWORD = "SENTINEL-redis-pw-4c3b2a"  # likewise, inside a Redis URL

# The original s3s3 template, word for word (indents, inline comments and the
# trailing space after "operations." included).
ORIGINAL_TEMPLATE = "".join(
    line + "\n"
    for line in (
        "[source]",
        "     aws_access_key_id = {YOUR_AWS_ACCESS_KEY_ID}",
        "     aws_secret_access_key = {YOUR_AWS_SECRET_ACCESS_KEY}",
        "     bucket_name = {YOUR_S3_BUCKET}",
        "     host = {YOUR_CEPH_S3_ENDPOINT}",
        "     verify_md5 = False # Verify md5 during s3 operations. ",
        "     is_secure = True # Optional",
        "     calling_format = OrdinaryCallingFormat # Optional",
        "[destination]",
        "     aws_access_key_id = {YOUR_AWS_ACCESS_KEY_ID}",
        "     aws_secret_access_key = {YOUR_AWS_SECRET_ACCESS_KEY}",
        "     bucket_name = {YOUR_S3_BUCKET}",
        "     verify_md5 = False # Verify md5 during s3 operations. ",
        "     is_secure = True # Optional",
    )
)
FILLED_IN = {
    "{YOUR_AWS_ACCESS_KEY_ID}": "AKIAEXAMPLE",
    "{YOUR_AWS_SECRET_ACCESS_KEY}": SECRET,
    "{YOUR_S3_BUCKET}": "photos",
    "{YOUR_CEPH_S3_ENDPOINT}": "rgw.example.com",
}
MINIMAL = "[source]\nbucket_name = src\n[dest]\nbucket_name = dst\n"


def fill_in(template: str) -> str:
    for placeholder, value in FILLED_IN.items():
        template = template.replace(placeholder, value)
    return template


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3s3.ini"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return Config.from_file(write(tmp_path, text))


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def source_with(tmp_path: Path, *lines: str) -> Endpoint:
    """The [source] of a minimal file with these extra lines in it."""
    return load(
        tmp_path,
        "[source]\nbucket_name = src\n" + "".join(f"{line}\n" for line in lines) + "[dest]\nbucket_name = dst\n",
    ).source


def dest_with(tmp_path: Path, *lines: str) -> Endpoint:
    """The [dest] of a minimal file with these extra lines in it."""
    return load(tmp_path, MINIMAL + "".join(f"{line}\n" for line in lines)).dests[0]


def test_original_template_with_placeholders_filled_in_loads_as_is(tmp_path: Path) -> None:
    # Given the 2015 template with its placeholders filled in and nothing else changed
    text = fill_in(ORIGINAL_TEMPLATE)

    # When it is loaded
    config = load(tmp_path, text)

    # Then both sections are read, inline comments dropped, and [pubsub] takes its defaults
    assert config.source == Endpoint(
        name="source",
        bucket="photos",
        endpoint_url="https://rgw.example.com",
        access_key="AKIAEXAMPLE",
        secret_key=SECRET,
        addressing_style="path",
        verify_md5=False,
    )
    assert config.dests == (
        Endpoint(
            name="destination",
            bucket="photos",
            endpoint_url=None,
            access_key="AKIAEXAMPLE",
            secret_key=SECRET,
            addressing_style="auto",
            verify_md5=False,
        ),
    )
    assert config.pubsub == PubSub(url="redis://localhost:6379/0", channel="backup", workers=16)
    assert config.path == str(tmp_path / "s3s3.ini")


@pytest.mark.parametrize(
    ("left_in", "where"),
    [
        ("{YOUR_AWS_ACCESS_KEY_ID}", ("[source] aws_access_key_id", "[destination] aws_access_key_id")),
        ("{YOUR_CEPH_S3_ENDPOINT}", ("[source] host",)),
    ],
)
def test_original_template_with_a_placeholder_left_in_names_file_section_and_option(
    tmp_path: Path, left_in: str, where: tuple[str, ...]
) -> None:
    # Given the template with every placeholder but one filled in
    text = ORIGINAL_TEMPLATE
    for placeholder, value in FILLED_IN.items():
        if placeholder != left_in:
            text = text.replace(placeholder, value)

    # When it is loaded
    message = load_error(tmp_path, text)

    # Then the error says where the placeholder is, a line for each place it is left in
    assert message.splitlines() == [
        f"{tmp_path / 's3s3.ini'}: {option}: still holds a template placeholder; fill it in" for option in where
    ]


def test_placeholder_left_only_in_the_destination_names_the_destination(tmp_path: Path) -> None:
    # Given a filled-in template whose destination bucket is still a placeholder
    text = fill_in(ORIGINAL_TEMPLATE).replace(
        "bucket_name = photos\n     verify_md5 = False # Verify md5 during s3 operations. \n     is_secure",
        "bucket_name = {YOUR_S3_BUCKET}\n     verify_md5 = False\n     is_secure",
    )
    assert text.count("{YOUR_S3_BUCKET}") == 1

    # When it is loaded / Then the destination's bucket_name is named
    assert load_error(tmp_path, text) == (
        f"{tmp_path / 's3s3.ini'}: [destination] bucket_name: still holds a template placeholder; fill it in"
    )


def test_shipped_template_with_placeholders_filled_in_loads(tmp_path: Path) -> None:
    # Given the template the package ships (what echo_s3s3_ini_template prints), filled in
    shipped = resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text()
    text = fill_in(shipped)

    # When it is loaded
    config = load(tmp_path, text)

    # Then it describes the same setup as the original template
    assert config.source.endpoint_url == "https://rgw.example.com"
    assert config.source.addressing_style == "path"
    assert (config.source.bucket, config.source.access_key, config.source.secret_key) == (
        "photos",
        "AKIAEXAMPLE",
        SECRET,
    )
    assert [d.name for d in config.dests] == ["destination"]
    assert config.dests[0].endpoint_url is None
    assert config.pubsub == PubSub(url="redis://localhost:6379/0", channel="backup", workers=16)


def test_shipped_template_is_the_one_at_the_top_of_the_repository() -> None:
    # Given the two copies of the template / Then they are the same text
    shipped = resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text()
    assert shipped == (Path(__file__).parent.parent / "s3s3.ini.dist").read_text()


def test_shipped_template_unfilled_names_every_placeholder_in_one_error(tmp_path: Path) -> None:
    # Given the shipped template as it is printed, its seven placeholders left in
    shipped = resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text()

    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, shipped)

    # Then one error names all seven, a line each, in the order of the file
    where = [
        "[source] aws_access_key_id", "[source] aws_secret_access_key", "[source] bucket_name", "[source] host",
        "[destination] aws_access_key_id", "[destination] aws_secret_access_key", "[destination] bucket_name",
    ]  # fmt: skip
    path = tmp_path / "s3s3.ini"
    problems = [f"{path}: {option}: still holds a template placeholder; fill it in" for option in where]
    assert caught.value.problems == problems
    assert str(caught.value) == "\n".join(problems)


@pytest.mark.parametrize(
    ("lines", "endpoint_url"),
    [
        ((), None),
        (("host = rgw.local",), "https://rgw.local"),
        (("host = rgw.local", "is_secure = False"), "http://rgw.local"),
        (("host = rgw.local", "port = 8080", "is_secure = false"), "http://rgw.local:8080"),
        (("host = rgw.local", "port = 8443", "is_secure = True"), "https://rgw.local:8443"),
        (("endpoint_url = http://127.0.0.1:9000/",), "http://127.0.0.1:9000"),
        (("endpoint_url = https://s3.example.com",), "https://s3.example.com"),
    ],
)
def test_host_port_and_is_secure_become_the_endpoint_url(
    tmp_path: Path, lines: tuple[str, ...], endpoint_url: str | None
) -> None:
    assert source_with(tmp_path, *lines).endpoint_url == endpoint_url


@pytest.mark.parametrize(
    ("lines", "style"),
    [
        ((), "auto"),
        (("calling_format = OrdinaryCallingFormat",), "path"),
        (("calling_format = SubdomainCallingFormat",), "virtual"),
        (("calling_format = boto.s3.connection.OrdinaryCallingFormat",), "path"),
        (("addressing_style = virtual",), "virtual"),
        (("addressing_style = PATH",), "path"),
        (("calling_format = OrdinaryCallingFormat", "addressing_style = virtual"), "virtual"),
        (("calling_format = SubdomainCallingFormat", "addressing_style = path"), "path"),
    ],
)
def test_calling_format_maps_to_addressing_style_and_addressing_style_overrides_it(
    tmp_path: Path, lines: tuple[str, ...], style: str
) -> None:
    assert source_with(tmp_path, *lines).addressing_style == style


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8388608", 8388608),
        ("8MB", 8 * MiB),
        ("8mb", 8 * MiB),
        ("64MiB", 64 * MiB),
        ("16M", 16 * MiB),
        ("1G", GiB),
        ("5 GiB", 5 * GiB),
        ("512KiB", 512 * 1024),
        ("100b", 100),
    ],
)
def test_sizes_are_read_as_bytes_with_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_multipart_sizes_are_read_from_the_file(tmp_path: Path) -> None:
    dest = dest_with(tmp_path, "multipart_threshold = 64MiB", "multipart_chunksize = 8MB")
    assert (dest.multipart_threshold, dest.multipart_chunksize) == (64 * MiB, 8 * MiB)

    dest = dest_with(tmp_path, "multipart_threshold = 1", "multipart_chunksize = 5242880")
    assert (dest.multipart_threshold, dest.multipart_chunksize) == (1, 5 * MiB)


def test_defaults_of_an_endpoint_that_sets_nothing_but_its_bucket(tmp_path: Path) -> None:
    assert dest_with(tmp_path) == Endpoint(
        name="dest",
        bucket="dst",
        endpoint_url=None,
        access_key=None,
        secret_key=None,
        region=None,
        profile=None,
        signature_version="s3v4",
        addressing_style="auto",
        multipart=True,
        multipart_threshold=8 * MiB,
        multipart_chunksize=8 * MiB,
        list_version=2,
        verify_ssl=True,
        ca_bundle=None,
        storage_class=None,
        prefix="",
        verify_md5=False,
        checksums=False,
        propagate_deletes=False,
    )


def test_every_endpoint_option_is_read_from_the_file(tmp_path: Path) -> None:
    # Given a CA bundle on disk and a destination that sets every option
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_text("-----BEGIN CERTIFICATE-----\n")

    dest = dest_with(
        tmp_path,
        "multipart = False",
        "list_version = 1",
        "signature_version = S3",
        "verify_ssl = no",
        f"ca_bundle = {ca_bundle}",
        "storage_class = STANDARD_IA",
        "prefix = /photos/",
        "region = eu-west-1",
        "verify_md5 = yes",
        "checksums = on",
        "propagate_deletes = 1",
    )

    assert (dest.multipart, dest.list_version, dest.signature_version) == (False, 1, "s3")
    assert (dest.verify_ssl, dest.ca_bundle) == (False, str(ca_bundle))
    assert (dest.storage_class, dest.prefix, dest.region) == ("STANDARD_IA", "photos/", "eu-west-1")
    assert (dest.verify_md5, dest.checksums, dest.propagate_deletes) == (True, True, True)


@pytest.mark.parametrize("value", ["s3", "s3v4", "S3V4"])
def test_signature_version_accepts_sigv2_and_sigv4(tmp_path: Path, value: str) -> None:
    assert source_with(tmp_path, f"signature_version = {value}").signature_version == value.lower()


def test_profile_is_used_instead_of_keys(tmp_path: Path) -> None:
    source = source_with(tmp_path, "profile = backup")
    assert (source.profile, source.access_key, source.secret_key) == ("backup", None, None)


def test_keys_are_used_without_a_profile(tmp_path: Path) -> None:
    source = source_with(tmp_path, "aws_access_key_id = AK", f"aws_secret_access_key = {SECRET}")
    assert (source.profile, source.access_key, source.secret_key) == (None, "AK", SECRET)


def test_value_naming_an_environment_variable_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the secret and the Redis password in the environment, not the file
    monkeypatch.setenv("S3S3_TEST_SECRET", SECRET)
    monkeypatch.setenv("S3S3_TEST_REDIS_PW", PASSWORD)
    text = (
        "[source]\nbucket_name = src\naws_access_key_id = AK\naws_secret_access_key = ${S3S3_TEST_SECRET}\n"
        "[dest]\nbucket_name = dst-${S3S3_TEST_SUFFIX}\n"
        "[pubsub]\nurl = redis://:${S3S3_TEST_REDIS_PW}@127.0.0.1:6380/1\n"
    )
    monkeypatch.setenv("S3S3_TEST_SUFFIX", "eu")

    # When it is loaded
    config = load(tmp_path, text)

    # Then each ${NAME} is replaced by its value
    assert config.source.secret_key == SECRET
    assert config.dests[0].bucket == "dst-eu"
    assert config.pubsub.url == f"redis://:{PASSWORD}@127.0.0.1:6380/1"


def test_value_naming_a_missing_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("S3S3_TEST_UNSET", raising=False)
    text = "[source]\nbucket_name = src\nprofile = ${S3S3_TEST_UNSET}\n[dest]\nbucket_name = d\n"
    message = load_error(tmp_path, text)
    assert message == f"{tmp_path / 's3s3.ini'}: [source] profile: environment variable ${{S3S3_TEST_UNSET}} is not set"


def test_pubsub_section_of_the_original_is_accepted(tmp_path: Path) -> None:
    # Given the original's [pubsub] flags, Redis on and SNS off
    config = load(tmp_path, MINIMAL + "[pubsub]\nredis = True\nsns = False\nchannel = photos\nworkers = 3\n")

    # Then they are accepted and the rest of the section is read
    assert config.pubsub == PubSub(url="redis://localhost:6379/0", channel="photos", workers=3)


def test_pubsub_with_sns_turned_on_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + "[pubsub]\nredis = True\nsns = True\n")
    assert message == f"{tmp_path / 's3s3.ini'}: [pubsub] sns: SNS is not supported; use redis"


def test_redis_password_is_kept_for_connecting_but_never_shown(tmp_path: Path) -> None:
    # Given a Redis URL with a password
    config = load(tmp_path, MINIMAL + f"[pubsub]\nurl = redis://:{PASSWORD}@127.0.0.1:6380/2\n")

    # Then the URL is whole for connecting, and redacted everywhere it is shown
    assert config.pubsub.url == f"redis://:{PASSWORD}@127.0.0.1:6380/2"
    assert config.pubsub.safe_url == "redis://:***@127.0.0.1:6380/2"
    assert "url='redis://:***@127.0.0.1:6380/2'" in repr(config.pubsub)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config)


def test_redis_password_with_a_user_is_redacted_too(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + f"[pubsub]\nurl = rediss://backup:{PASSWORD}@redis.example.com:6380/0\n")
    assert config.pubsub.safe_url == "rediss://backup:***@redis.example.com:6380/0"
    assert PASSWORD not in repr(config)


def test_sentinels_are_read_as_host_port_pairs_and_neither_password_is_ever_shown(tmp_path: Path) -> None:
    # Given a master found through two Sentinels, with a password for the master and one for the Sentinels
    config = load(tmp_path, MINIMAL + f"[pubsub]\nurl = redis://:{PASSWORD}@/3\nsentinels = 10.0.0.1:26379, "
                  f"[::1]:26380\nsentinel_master = backups\nsentinel_password = {PASSWORD}x\nmode = stream\n"
                  "wait_replicas = 1\n")

    # Then they are kept for connecting, and logs name the Sentinels and the master without either password
    pubsub = config.pubsub
    assert pubsub.sentinels == (("10.0.0.1", 26379), ("::1", 26380)) and pubsub.sentinel_master == "backups"
    assert pubsub.wait_replicas == 1 and pubsub.sentinel_password == PASSWORD + "x"
    assert pubsub.safe_url == "redis+sentinel://10.0.0.1:26379,::1:26380/backups"
    assert PASSWORD not in repr(config) and PASSWORD not in str(config)


@pytest.mark.parametrize(("extra", "problem"), [
    ("sentinels = 10.0.0.1", "sentinels: '10.0.0.1' is not host:port (give host:port, host:port, ...)"),
    ("sentinels = 10.0.0.1:26379\ncluster = true", "sentinels: give sentinels or cluster = true, not both"),
    ("cluster_nodes = 10.0.0.1:7000", "cluster_nodes: needs cluster = true"),
    ("wait_replicas = 1", "wait_replicas: needs mode = stream or list (pubsub keeps nothing to replicate)"),
])  # fmt: skip
def test_sentinel_cluster_and_wait_replicas_mistakes_are_named(tmp_path: Path, extra: str, problem: str) -> None:
    message = load_error(tmp_path, MINIMAL + f"[pubsub]\n{extra}\n")
    assert message == f"{tmp_path / 's3s3.ini'}: [pubsub] {problem}"


def test_max_requests_per_second_is_an_endpoint_option_off_by_default(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL.replace("[source]\n", "[source]\nmax_requests_per_second = 3500\n"))
    assert config.source.max_requests_per_second == 3500 and config.dests[0].max_requests_per_second == 0


def test_secret_key_is_not_in_the_repr_of_an_endpoint_or_the_config(tmp_path: Path) -> None:
    # Given the filled-in original template, whose two secrets are the sentinel
    config = load(tmp_path, fill_in(ORIGINAL_TEMPLATE))

    # Then no repr shows it
    assert config.source.secret_key == SECRET
    assert SECRET not in repr(config.source)
    assert SECRET not in repr(config.dests)
    assert SECRET not in repr(config)
    assert SECRET not in f"{config}"


ERRORS = [
    pytest.param("[dest]\nbucket_name = d\n", "[source]: section is missing", id="missing-source"),
    pytest.param(
        "[source]\nbucket_name = s\n[pubsub]\nchannel = c\n",
        "no destination: add a section whose name starts with 'dest'",
        id="no-dest",
    ),
    pytest.param("[source]\nbucket_name = s\n[dest]\nregion = eu\n", "[dest] bucket_name: is required", id="no-bucket"),
    pytest.param(
        "[source]\nbucket_name =\n[dest]\nbucket_name = d\n", "[source] bucket_name: is required", id="empty-bucket"
    ),
    pytest.param(MINIMAL + "verify_md5 = maybe\n", "[dest] verify_md5: 'maybe' is not true or false", id="bad-boolean"),
    pytest.param(
        MINIMAL + "multipart_chunksize = 8 apples\n",
        "[dest] multipart_chunksize: '8 apples' is not a size (examples: 8MB, 64MiB, 8388608)",
        id="bad-size",
    ),
    pytest.param(
        MINIMAL + "multipart_chunksize = 4MiB\n",
        "[dest] multipart_chunksize: must be between 5MiB and 5GiB",
        id="chunksize-below-5MiB",
    ),
    pytest.param(
        MINIMAL + "multipart_threshold = 0\n",
        "[dest] multipart_threshold: must be between 1 byte and 5GiB",
        id="threshold-zero",
    ),
    pytest.param(
        MINIMAL + "signature_version = s2\n",
        "[dest] signature_version: 's2' is not one of s3v4, s3",
        id="bad-signature-version",
    ),
    pytest.param(
        MINIMAL + "addressing_style = sideways\n",
        "[dest] addressing_style: 'sideways' is not one of auto, path, virtual",
        id="bad-addressing-style",
    ),
    pytest.param(
        MINIMAL + "calling_format = ProtocolIndependentOrdinaryCallingFormat\n",
        "[dest] calling_format: 'ProtocolIndependentOrdinaryCallingFormat' is not OrdinaryCallingFormat "
        "or SubdomainCallingFormat",
        id="bad-calling-format",
    ),
    pytest.param(MINIMAL + "list_version = 3\n", "[dest] list_version: 3 is out of range 1..2", id="bad-list-version"),
    pytest.param(
        MINIMAL + "host = rgw.local\nport = http\n", "[dest] port: 'http' is not a whole number", id="bad-port"
    ),
    pytest.param(
        MINIMAL + "ca_bundle = /nonexistent/ca.pem\n",
        "[dest] ca_bundle: '/nonexistent/ca.pem' is not a file",
        id="missing-ca-bundle",
    ),
    pytest.param(
        MINIMAL + "[pubsub]\nurl = http://localhost:6379/0\n",
        "[pubsub] url: 'http://localhost:6379/0' is not a redis://, rediss:// or unix:// URL",
        id="bad-url-scheme",
    ),
    pytest.param(
        MINIMAL + "[pubsub]\nurl = redis://127.0.0.1:redis/0\n",
        "[pubsub] url: is not a valid URL: Port could not be cast to integer value as 'redis'",
        id="bad-url-port",
    ),
    pytest.param(MINIMAL + "[pubsub]\nworkers = 0\n", "[pubsub] workers: 0 is out of range 1..256", id="zero-workers"),
    pytest.param(
        MINIMAL + "[pubsub]\nredis = False\n",
        "[pubsub] redis: redis is the only transport; it cannot be turned off",
        id="redis-off",
    ),
    pytest.param(MINIMAL + "[pubsub]\nhost = r\n", "[pubsub] host: unknown option", id="unknown-pubsub-option"),
    pytest.param(
        "[source]\nbucket_name = s\nbucket = s\n[dest]\nbucket_name = d\n",
        "[source] bucket: unknown option",
        id="unknown-option",
    ),
    pytest.param(
        MINIMAL + "[sources]\nbucket_name = x\n",
        "[sources]: unknown section (expected source, dest..., pubsub, metrics, logging, webhook)",
        id="unknown-section",
    ),
    pytest.param(
        MINIMAL + "aws_access_key_id = AK\n",
        "[dest] aws_secret_access_key: is required when the other key is given",
        id="access-key-only",
    ),
    pytest.param(
        MINIMAL + f"aws_secret_access_key = {SECRET}\n",
        "[dest] aws_access_key_id: is required when the other key is given",
        id="secret-key-only",
    ),
    pytest.param(
        MINIMAL + f"aws_access_key_id = AK\naws_secret_access_key = {SECRET}\nprofile = backup\n",
        "[dest] profile: give either profile or access keys, not both",
        id="profile-and-keys",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = https://s3.example.com\nhost = rgw.local\n",
        "[dest] host: give endpoint_url or host/port/is_secure, not both: remove host",
        id="endpoint-url-and-host",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = https://s3.example.com\nis_secure = True\n",
        "[dest] is_secure: give endpoint_url or host/port/is_secure, not both: remove is_secure",
        id="endpoint-url-and-is-secure",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = https://s3.example.com\nport = 8443\n",
        "[dest] port: give endpoint_url or host/port/is_secure, not both: remove port",
        id="endpoint-url-and-port",
    ),
    pytest.param(
        "[source]\nbucket_name = src\nstorage_class = GLACIER\n[dest]\nbucket_name = dst\n",
        "[source] storage_class: is a destination option: move it to a [dest...] section",
        id="destination-option-in-source",
    ),
    pytest.param(
        MINIMAL + "sse = DES\n",
        "[dest] sse: 'DES' is not one of AES256, aws:kms",
        id="sse-unknown",
    ),
    pytest.param(
        MINIMAL + "sse = AES256\nsse_kms_key_id = alias/k\n",
        "[dest] sse_kms_key_id: needs sse = aws:kms",
        id="kms-key-without-kms",
    ),
    pytest.param(
        MINIMAL + "acl = world-writable\n",
        "[dest] acl: 'world-writable' is not a canned ACL (private, public-read, public-read-write, "
        "authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control)",
        id="acl-unknown",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = https://s3.example.com\nis_secure = maybe\n",
        "[dest] is_secure: 'maybe' is not true or false",
        id="is-secure-maybe-beside-endpoint-url",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = ftp://files.example.com\n",
        "[dest] endpoint_url: 'ftp://files.example.com' is not an http(s):// URL",
        id="endpoint-url-not-http",
    ),
    pytest.param(
        MINIMAL + "endpoint_url = http://[::1:9000\n",
        "[dest] endpoint_url: is not a valid URL: Invalid IPv6 URL",
        id="endpoint-url-broken",
    ),
    pytest.param(
        "[source]\nbucket_name = same\n[dest]\nbucket_name = same\n",
        "[dest] bucket_name: is the source bucket itself",
        id="dest-is-source",
    ),
]


@pytest.mark.parametrize(("text", "problem"), ERRORS)
def test_every_configuration_error_is_one_line_naming_file_section_and_option(
    tmp_path: Path, text: str, problem: str
) -> None:
    # Given a file with one mistake / When it is loaded
    message = load_error(tmp_path, text)

    # Then the error is exactly one line: the file, then where, then what is wrong
    assert message == f"{tmp_path / 's3s3.ini'}: {problem}"
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            f"aws_secret_access_key = {SECRET}\n[source]\nbucket_name = s\n",
            "line 1: an option before the first [section]",
            id="no-section-header",
        ),
        pytest.param(
            f"[source]\nbucket_name = s\naws_secret_access_key {SECRET}\n",
            "line 3: not a [section] or an 'option = value' line",
            id="no-equals-sign",
        ),
        pytest.param(
            f"[source]\naws_secret_access_key = {SECRET}\naws_secret_access_key = {SECRET}\n",
            "not a valid INI file: While reading from "
            "'{path}' [line 3]: option 'aws_secret_access_key' in section 'source' already exists",
            id="duplicate-option",
        ),
        pytest.param(
            "[source]\nbucket_name = s\n[source]\nbucket_name = t\n",
            "not a valid INI file: While reading from '{path}' [line 3]: section 'source' already exists",
            id="duplicate-section",
        ),
    ],
)
def test_file_that_is_not_valid_ini_is_one_line_that_never_quotes_the_secret(
    tmp_path: Path, text: str, problem: str
) -> None:
    # Given a broken file whose broken line holds the secret key
    path = tmp_path / "s3s3.ini"

    # When it is loaded
    message = load_error(tmp_path, text)

    # Then the line is named by number only
    assert message == f"{path}: " + problem.replace("{path}", str(path))
    assert "\n" not in message
    assert SECRET not in message


def test_errors_about_a_redis_url_never_show_its_password(tmp_path: Path) -> None:
    for url, problem in [
        (
            f"http://:{PASSWORD}@127.0.0.1:6379/0",
            "'http://:***@127.0.0.1:6379/0' is not a redis://, rediss:// or unix:// URL",
        ),
        (
            f"redis://:{PASSWORD}@127.0.0.1:63x9/0",
            "is not a valid URL: Port could not be cast to integer value as '63x9'",
        ),
        (f"redis://:{PASSWORD}@[::1/0", "is not a valid URL: Invalid IPv6 URL"),
    ]:
        message = load_error(tmp_path, MINIMAL + f"[pubsub]\nurl = {url}\n")
        assert message == f"{tmp_path / 's3s3.ini'}: [pubsub] url: {problem}"
        assert PASSWORD not in message


def test_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ini"
    with pytest.raises(ConfigError) as caught:
        Config.from_file(missing)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"


def test_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s3s3.ini"
    path.write_bytes(b"[source]\nbucket_name = caf\xe9\n[dest]\nbucket_name = d\n")
    with pytest.raises(ConfigError) as caught:
        Config.from_file(path)
    assert str(caught.value).startswith(f"{path}: not a valid INI file: 'utf-8' codec can't decode byte 0xe9")
    assert "\n" not in str(caught.value)


def test_every_section_starting_with_dest_is_a_destination_in_file_order(tmp_path: Path) -> None:
    text = "[source]\nbucket_name = s\n[dest-b]\nbucket_name = b\n[destination]\nbucket_name = a\n"
    assert [(d.name, d.bucket) for d in load(tmp_path, text).dests] == [("dest-b", "b"), ("destination", "a")]


def test_every_problem_in_the_file_is_reported_in_one_error_a_line_each(tmp_path: Path) -> None:
    # Given a file with six mistakes in four sections, one of them next to the secret key
    text = (
        f"[source]\nbucket_name = src\naws_access_key_id = AK\naws_secret_access_key = {SECRET}\nverify_md5 = maybe\n"
        "[dest]\nlist_version = 3\nacl = world-writable\n"
        "[pubsub]\nworkers = 0\nmode = sideways\n"
        "[logging]\nlevel = loud\n"
    )

    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)

    # Then one error lists all six, in the order of the file, each naming file, section and option
    path = tmp_path / "s3s3.ini"
    assert caught.value.problems == [
        f"{path}: [source] verify_md5: 'maybe' is not true or false",
        f"{path}: [dest] list_version: 3 is out of range 1..2",
        f"{path}: [dest] acl: 'world-writable' is not a canned ACL (private, public-read, public-read-write, "
        "authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control)",
        f"{path}: [dest] bucket_name: is required",
        f"{path}: [pubsub] workers: 0 is out of range 1..256",
        f"{path}: [pubsub] mode: 'sideways' is not one of pubsub, stream, list",
        f"{path}: [logging] level: 'loud' is not one of debug, info, warning, error",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert SECRET not in str(caught.value)


def test_missing_sections_and_unknown_sections_are_reported_with_the_rest(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[sources]\nbucket_name = x\n[pubsub]\nworkers = many\n")
    path = tmp_path / "s3s3.ini"
    assert message.splitlines() == [
        f"{path}: [source]: section is missing",
        f"{path}: no destination: add a section whose name starts with 'dest'",
        f"{path}: [sources]: unknown section (expected source, dest..., pubsub, metrics, logging, webhook)",
        f"{path}: [pubsub] workers: 'many' is not a whole number",
    ]


def test_an_option_with_a_problem_gets_one_line_not_one_per_check_it_fails(tmp_path: Path) -> None:
    # Given a placeholder left in the access key beside a filled-in secret, and a bucket named after the source's
    text = (
        f"[source]\nbucket_name = same\naws_access_key_id = {{YOUR_AWS_ACCESS_KEY_ID}}\n"
        f"aws_secret_access_key = {SECRET}\n[dest]\nbucket_name = same\n"
    )

    # Then only the placeholder is reported: the checks that need the key's value are not run on a guess
    assert load_error(tmp_path, text) == (
        f"{tmp_path / 's3s3.ini'}: [source] aws_access_key_id: still holds a template placeholder; fill it in"
    )


def test_unparsable_lines_are_each_named_by_number(tmp_path: Path) -> None:
    text = f"[source]\nbucket_name = s\naws_secret_access_key {SECRET}\n[dest]\nbucket_name\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.problems == [
        f"{tmp_path / 's3s3.ini'}: line {n}: not a [section] or an 'option = value' line" for n in (3, 5)
    ]
    assert SECRET not in str(caught.value)


FOLDED = (
    "{path}: line {line}: indented deeper than the line above, so it continues [{where}'s value; "
    "indent it like the others"
)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        pytest.param(
            MINIMAL + "region = eu-west-1\n    storage_class = STANDARD_IA\n",
            [(6, "dest] region")],
            id="option-line-under-an-option",
        ),
        pytest.param(
            "[source]\n  bucket_name = src\n    verify_md5 = True\n[dest]\n  bucket_name = dst\n",
            [(3, "source] bucket_name")],
            id="deeper-than-an-indented-option",
        ),
        pytest.param(
            MINIMAL + "region = eu-west-1\n\n# the class\n\t storage_class = STANDARD_IA\n  tags = False\n",
            [(8, "dest] region"), (9, "dest] region")],
            id="after-a-blank-and-a-comment-line",
        ),
        pytest.param(
            MINIMAL + f"aws_access_key_id = AK\naws_secret_access_key = {SECRET}\n   {SECRET}\n",
            [(7, "dest] aws_secret_access_key")],
            id="a-secret-continued",
        ),
        pytest.param(
            MINIMAL + "[pubsub]\nchannel = backup\n  photos\n",
            [(7, "pubsub] channel")],
            id="a-value-continued",
        ),
    ],
)
def test_a_line_indented_deeper_than_the_option_above_it_is_an_error_naming_the_line(
    tmp_path: Path, text: str, lines: list[tuple[int, str]]
) -> None:
    # Given a line configparser would fold into the value above it / When the file is loaded
    message = load_error(tmp_path, text)

    # Then each such line is named, with the option it would continue, and never the text it holds
    path = tmp_path / "s3s3.ini"
    assert message.splitlines() == [FOLDED.format(path=path, line=line, where=where) for line, where in lines]
    assert SECRET not in message


def test_options_indented_alike_after_an_indented_section_stay_valid(tmp_path: Path) -> None:
    # Given every line indented, the section headers too, and an option line less indented than the one above
    text = (
        "  [source]\n     bucket_name = src\n     region = eu-west-1 # the region\n   verify_md5 = True\n"
        "  [dest]\n\t bucket_name = dst\n\n\t tags = False\n"
    )

    # When it is loaded / Then every option is read as written
    config = load(tmp_path, text)
    assert (config.source.region, config.source.verify_md5) == ("eu-west-1", True)
    assert (config.dests[0].bucket, config.dests[0].tags) == ("dst", False)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('bucket_name = "uploads-backup"', 'bucket_name: "uploads-backup" is in quotes'),
        ("bucket_name = 'uploads-backup'", "bucket_name: 'uploads-backup' is in quotes"),
        ('host = "rgw.local"', 'host: "rgw.local" is in quotes'),
        ("endpoint_url = 'https://rgw.local'", "endpoint_url: 'https://rgw.local' is in quotes"),
        ('list_version = "1"', 'list_version: "1" is in quotes'),
        ("verify_md5 = 'true'", "verify_md5: 'true' is in quotes"),
        ('signature_version = "s3"', 'signature_version: "s3" is in quotes'),
        ('multipart_chunksize = "16MiB"', 'multipart_chunksize: "16MiB" is in quotes'),
        ('region = "eu-west-1"', 'region: "eu-west-1" is in quotes'),
        (f'aws_secret_access_key = "{SECRET}"', "aws_secret_access_key: the value is in quotes"),
    ],
)
def test_a_quoted_value_where_quotes_cannot_belong_is_an_error_saying_to_remove_them(
    tmp_path: Path, line: str, problem: str
) -> None:
    # Given a destination with a quoted value (and the rest it needs)
    bucket = "" if line.startswith("bucket_name") else "bucket_name = dst\n"
    key = "aws_access_key_id = AK\n" if line.startswith("aws_secret_access_key") else ""

    # When it is loaded
    message = load_error(tmp_path, f"[source]\nbucket_name = src\n[dest]\n{bucket}{key}{line}\n")

    # Then the error shows the value as written (a secret never) and says to remove the quotes
    assert message == f"{tmp_path / 's3s3.ini'}: [dest] {problem}, which would become part of the value: remove them"
    assert SECRET not in message


def test_a_quoted_redis_url_is_refused_without_showing_its_password(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + f"[pubsub]\nurl = 'redis://:{PASSWORD}@127.0.0.1:6380/0'\n")
    assert message == (
        f"{tmp_path / 's3s3.ini'}: [pubsub] url: 'redis://:***@127.0.0.1:6380/0' is in quotes, "
        "which would become part of the value: remove them"
    )


def test_quotes_are_kept_where_they_can_be_part_of_the_value(tmp_path: Path) -> None:
    # Given quotes in a key prefix and a channel name, which may hold them
    config = load(tmp_path, MINIMAL + "prefix = \"q\"/\n[pubsub]\nchannel = 'backup'\n")

    # Then they are kept as written
    assert (config.dests[0].prefix, config.pubsub.channel) == ('"q"/', "'backup'")


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        (
            "http://127.0.0.1",
            "'http://127.0.0.1' holds a scheme: give endpoint_url = http://127.0.0.1 instead, "
            "or host = 127.0.0.1, is_secure = False",
        ),
        (
            "https://rgw.example.com:8443/",
            "'https://rgw.example.com:8443/' holds a scheme: give endpoint_url = https://rgw.example.com:8443/ "
            "instead, or host = rgw.example.com, port = 8443, is_secure = True",
        ),
        (
            f"http://backup:{PASSWORD}@rgw.local",
            "'http://backup:***@rgw.local' holds a scheme: give endpoint_url = http://backup:***@rgw.local instead, "
            "or host = rgw.local, is_secure = False",
        ),
        (
            "rgw.local:9000",
            "'rgw.local:9000' holds a port: give host = rgw.local and port = 9000 (and is_secure), "
            "or endpoint_url instead",
        ),
        (
            "[::1]:9000",
            "'[::1]:9000' holds a port: give host = [::1] and port = 9000 (and is_secure), or endpoint_url instead",
        ),
    ],
)
def test_host_with_a_scheme_or_a_port_is_an_error_pointing_at_endpoint_url_or_port(
    tmp_path: Path, host: str, problem: str
) -> None:
    message = load_error(tmp_path, MINIMAL + f"host = {host}\n")
    assert message == f"{tmp_path / 's3s3.ini'}: [dest] host: {problem}"
    assert PASSWORD not in message


def test_host_as_a_bare_name_or_address_is_accepted(tmp_path: Path) -> None:
    assert dest_with(tmp_path, "host = 10.0.0.7", "port = 7480").endpoint_url == "https://10.0.0.7:7480"


DATACLASSES = {
    Section.ENDPOINT: Endpoint, Section.DEST: Endpoint, Section.PUBSUB: PubSub, Section.METRICS: Metrics,
    Section.LOGGING: Logging, Section.WEBHOOK: Webhook,
}  # fmt: skip


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: f"{o.section}.{o.name}")
def test_every_option_in_the_table_has_the_default_of_the_attribute_it_sets(option: Option) -> None:
    # Given the dataclass the option's section is read into
    fields = {f.name: f for f in dataclasses.fields(DATACLASSES[option.section])}
    if option.attribute is None:
        # (host, port, is_secure, calling_format feed other attributes; redis and sns are the original's flags)
        assert option.name in {"host", "port", "is_secure", "calling_format", "redis", "sns"}
        return

    # Then the attribute exists, and has the table's default (a required option's has none)
    default = fields[option.attribute].default
    if option.required:
        assert default is dataclasses.MISSING
    else:
        assert default == option.default
        assert type(default) is type(option.default) or {type(default), type(option.default)} == {int, float}


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: f"{o.section}.{o.name}")
def test_every_option_in_the_table_is_documented_and_its_default_is_allowed(option: Option) -> None:
    # Then it has a line of help and says what it allows, as the reference will print them
    assert option.help and "\n" not in option.help and option.allows
    # and its default, written out as an operator would, is read back as itself
    if option.default not in (None, "") and option.parse is None:
        written = str(option.default).lower() if isinstance(option.default, bool) else str(option.default)
        assert option.value(written) == option.default
    if option.type in (Type.INT, Type.SIZE):
        assert option.low is not None
    if option.type in (Type.CHOICE, Type.URL):
        assert option.choices


def test_the_table_declares_each_option_once_per_kind_of_section() -> None:
    declared = [(o.section, o.name) for o in OPTIONS]
    assert len(declared) == len(set(declared))
    assert {o.section for o in OPTIONS} == set(Section)


def test_endpoint_from_options_reports_every_problem_too() -> None:
    with pytest.raises(ConfigError) as caught:
        endpoint_from_options(
            "contract", {"bucket_name": '"b"', "verify_md5": "maybe", "host": "h:1", "region": "eu\nstorage_class = X"}
        )
    assert caught.value.problems == [
        "<options>: [contract] bucket_name: \"b\" is in quotes, which would become part of the value: remove them",
        "<options>: [contract] verify_md5: 'maybe' is not true or false",
        "<options>: [contract] host: 'h:1' holds a port: give host = h and port = 1 (and is_secure), "
        "or endpoint_url instead",
        "<options>: [contract] region: holds more than one line; give it on one",
    ]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() sets up logging on the root logger; give the next test what it had."""
    root = logging.getLogger()
    handlers, level, s3s3_level = root.handlers[:], root.level, logging.getLogger("s3s3").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("s3s3").setLevel(s3s3_level)


@pytest.mark.usefixtures("restore_logging")
def test_check_config_on_the_unfilled_template_prints_every_placeholder_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the template as printed by echo_s3s3_ini_template, nothing filled in
    path = write(tmp_path, resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text())

    # When check-config runs on it
    code = main(["check-config", "-c", str(path)])

    # Then it names all seven placeholders, each on a line of its own, and exits 2 having connected to nothing
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    where = [line.removeprefix(f"s3s3: error: {path}: ") for line in err.splitlines()]
    assert where == [
        f"{option}: still holds a template placeholder; fill it in"
        for option in ("[source] aws_access_key_id", "[source] aws_secret_access_key", "[source] bucket_name",
                       "[source] host", "[destination] aws_access_key_id", "[destination] aws_secret_access_key",
                       "[destination] bucket_name")
    ]  # fmt: skip


@pytest.mark.usefixtures("restore_logging")
def test_check_config_prints_every_problem_on_a_line_of_its_own_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the template as shipped, its placeholders filled in but for one, with three of the mistakes that
    # used to pass: a host with a scheme, a quoted bucket name and an option indented under another one
    shipped = resources.files("s3s3.data").joinpath("s3s3.ini.dist").read_text()
    text = shipped.replace("{YOUR_CEPH_S3_ENDPOINT}", "http://rgw.example.com").replace(
        "{YOUR_S3_BUCKET}", '"photos-backup"', 1
    )
    text = fill_in(text).replace("aws_access_key_id = AKIAEXAMPLE", "aws_access_key_id = {YOUR_AWS_ACCESS_KEY_ID}", 1)
    text = text.replace("[destination]\n", "[destination]\nregion = eu-west-1\n   storage_class = GLACIER\n", 1)
    path = write(tmp_path, text)
    region_line = text.splitlines().index("   storage_class = GLACIER") + 1

    # When check-config runs on it
    code = main(["check-config", "--config", str(path)])

    # Then it prints each problem on its own line, nothing on stdout, and exits 2
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"s3s3: error: {path}: [source] aws_access_key_id: still holds a template placeholder; fill it in",
        f"s3s3: error: {path}: [source] bucket_name: \"photos-backup\" is in quotes, which would become part of the "
        "value: remove them",
        f"s3s3: error: {path}: [source] host: 'http://rgw.example.com' holds a scheme: give endpoint_url = "
        "http://rgw.example.com instead, or host = rgw.example.com, is_secure = False",
        "s3s3: error: " + FOLDED.format(path=path, line=region_line, where="destination] region"),
    ]
    assert SECRET not in err


def test_webhook_tls_certificate_and_key_are_read_as_paths(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    config = load(tmp_path, MINIMAL + f"[webhook]\ntls_cert = {cert}\ntls_key = {key}\n")
    assert (config.webhook.tls_cert, config.webhook.tls_key) == (str(cert), str(key))
    assert load(tmp_path, MINIMAL + "[webhook]\nport = 8443\n").webhook.tls_cert is None


@pytest.mark.parametrize(
    ("lines", "problems"),
    [
        (["tls_cert = {cert}"], ["[webhook] tls_key: is required when the other is given (both or neither)"]),
        (["tls_key = {cert}"], ["[webhook] tls_cert: is required when the other is given (both or neither)"]),
        (["tls_cert = {missing}", "tls_key = {cert}"], ["[webhook] tls_cert: '{missing}' is not a file"]),
        (["tls_cert = {cert}", "tls_key = {missing}", "port = 0"],
         ["[webhook] tls_key: '{missing}' is not a file", "[webhook] port: 0 is out of range 1..65535"]),
    ],
)  # fmt: skip
def test_webhook_tls_takes_both_files_or_neither_and_each_must_exist(
    tmp_path: Path, lines: list[str], problems: list[str]
) -> None:
    cert, missing = tmp_path / "cert.pem", tmp_path / "nowhere" / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    names = {"cert": cert, "missing": missing}
    text = MINIMAL + "[webhook]\n" + "".join(line.format(**names) + "\n" for line in lines)
    path = tmp_path / "s3s3.ini"
    assert load_error(tmp_path, text).splitlines() == [f"{path}: {p.format(**names)}" for p in problems]
