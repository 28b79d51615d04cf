"""s3s3.store.sigv4 against botocore's S3SigV4Auth: the same headers, byte for byte, for 10,000 generated requests."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3s3.store import sigv4

# Every character class a key, a value or a secret can hold: ASCII letters, digits, S3's unreserved and
# reserved punctuation, space, controls, Latin-1, the BMP and astral planes.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30)
NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
QUERY_VALUE = TEXT.map(lambda v: quote(v, safe="-_.~"))


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    """A request as the lean transport sends it: encoded path, query, headers, keys, time, payload."""
    query_pairs = draw(
        st.lists(
            st.one_of(
                st.tuples(st.sampled_from(["partNumber", "uploadId", "list-type", "prefix", "continuation-token",
                                           "marker", "max-keys", "delimiter", "uploads", "tagging"]), QUERY_VALUE),
                st.tuples(NAME, QUERY_VALUE),
            ),
            max_size=4,
        )
    )  # fmt: skip
    headers = {f"x-amz-meta-{name}": value for name, value in draw(st.dictionaries(NAME, ASCII, max_size=4)).items()}
    if draw(st.booleans()):
        headers["Content-MD5"] = draw(st.sampled_from(["1B2M2Y8AsgTpgAmY7PhCfg==", "rL0Y20zC+Fzt72VPzMSk2A=="]))
    if draw(st.booleans()):
        headers["Content-Length"] = str(draw(st.integers(0, 5 * 2**30)))
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["If-Match", "Range", "x-amz-copy-source", "x-amz-tagging", "x-amz-acl"]))] = draw(
            ASCII
        )
    if draw(st.booleans()):
        headers["User-Agent"] = "s3s3"  # not signed
    if draw(st.booleans()):
        headers["x-amz-meta-spaced"] = "  a   b \t c  "  # signed with its white space folded
    payload = draw(st.binary(max_size=64)) if draw(st.booleans()) else None  # None: UNSIGNED-PAYLOAD
    return {
        "method": draw(st.sampled_from(["GET", "PUT", "HEAD", "POST", "DELETE"])),
        "netloc": draw(st.sampled_from(["127.0.0.1:9000", "s3.example.com", "LOCALHOST:8080", "[::1]:9000",
                                        "s3.example.com:443", "s3.example.com:80"])),
        "scheme": draw(st.sampled_from(["http", "https"])),
        "path": "/" + quote(draw(NAME), safe="") + "/" + quote(draw(TEXT), safe="/~"),
        "query": "&".join(f"{k}={v}" if v or draw(st.booleans()) else k for k, v in query_pairs),
        "headers": headers,
        "access_key": draw(ASCII),
        "secret_key": draw(TEXT),
        "token": draw(st.one_of(st.none(), ASCII)),
        "region": draw(st.sampled_from(["us-east-1", "eu-west-3", "default", "ap-southeast-2", "garage"])),
        "timestamp": draw(st.datetimes()).strftime(sigv4.TIMESTAMP),
        "payload": payload,
    }  # fmt: skip


def botocores(r: dict[str, Any]) -> dict[str, str]:
    """The headers botocore's S3 signer sends for `r` (payload signing off unless `r` has a payload)."""

    class Config:
        s3 = {"payload_signing_enabled": r["payload"] is not None}

    url = f"{r['scheme']}://{r['netloc']}{r['path']}" + (f"?{r['query']}" if r["query"] else "")
    request = AWSRequest(method=r["method"], url=url, data=r["payload"] or b"", headers=dict(r["headers"]))
    request.context["client_config"] = Config
    request.context["timestamp"] = r["timestamp"]
    auth = S3SigV4Auth(Credentials(r["access_key"], r["secret_key"], r["token"]), "s3", r["region"])
    # add_auth with its clock stopped at the request's time
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    auth._inject_signature_to_request(request, auth.signature(auth.string_to_sign(request, canonical), request))
    return dict(request.headers.items())


def ours(r: dict[str, Any]) -> dict[str, str]:
    parts = urlsplit(f"{r['scheme']}://{r['netloc']}/")
    payload_hash = sigv4.UNSIGNED_PAYLOAD if r["payload"] is None else hashlib.sha256(r["payload"]).hexdigest()
    return sigv4.sign(
        r["method"], sigv4.host_header(parts.scheme, parts.hostname or "", parts.port), r["path"], r["query"],
        r["headers"], access_key=r["access_key"], secret_key=r["secret_key"], token=r["token"], region=r["region"],
        payload_hash=payload_hash, timestamp=r["timestamp"],
    )  # fmt: skip


@pytest.mark.timeout(600)  # 10,000 signatures twice: CPU-bound, and slow on a busy machine
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_signs_10000_generated_requests_with_the_same_headers_as_botocore(r: dict[str, Any]) -> None:
    assert ours(r) == botocores(r)


def test_a_request_signed_now_carries_the_current_time_and_a_key_derived_once_per_day() -> None:
    r = {"method": "GET", "netloc": "127.0.0.1:9000", "scheme": "http", "path": "/b/k", "query": "", "headers": {},
         "access_key": "AK", "secret_key": "SK", "token": None, "region": "us-east-1", "payload": None}  # fmt: skip
    signed = sigv4.sign("GET", "127.0.0.1:9000", "/b/k", "", {}, access_key="AK", secret_key="SK", token=None,
                        region="us-east-1")  # fmt: skip
    assert signed == botocores({**r, "timestamp": signed["X-Amz-Date"]})
    sigv4.signing_key.cache_clear()
    for _ in range(3):
        sigv4.sign("GET", "h", "/b/k", "", {}, access_key="AK", secret_key="SK", token=None, region="us-east-1",
                   timestamp="20261205T101010Z")  # fmt: skip
    assert sigv4.signing_key.cache_info().misses == 1
