"""Which transport an endpoint gets, decided here and nowhere else.

The lean transport (s3s3.store.http) for every SigV4 endpoint with boto3's
checksums off: that is nearly every endpoint, and it spends about a third of
boto3's CPU per request. boto3 (s3s3.store.boto) for SigV2 (old Ceph, with
the SigV2 fixes its hooks carry) and for `checksums = True` (boto3's CRC
checksums, AWS only), which the lean path does not speak.
"""

from __future__ import annotations

import redis

from s3s3.config import Endpoint
from s3s3.errors import StoreError
from s3s3.store.base import Store, Transport
from s3s3.store.boto import BotoStore, boundary_error, create_client, session_credentials, verify
from s3s3.store.facts import Facts, store_name
from s3s3.store.http import HttpStore
from s3s3.store.throttle import Throttle
from s3s3.store.wire import CONNECT_TIMEOUT, MAX_TRIES, Keys, Wire

_PROBE = "s3s3-wire-probe"


def transport_for(endpoint: Endpoint) -> Transport:
    """The transport `open_store` gives this endpoint."""
    return Transport.HTTP if endpoint.signature_version == "s3v4" and not endpoint.checksums else Transport.BOTO3


def open_store(
    endpoint: Endpoint,
    *,
    pool_size: int = 10,
    redis_client: redis.Redis | None = None,
    check_timeout: float | None = None,
) -> Store:
    """The Store for `endpoint`; what it learns is kept in `redis_client`'s Redis, where one is given.

    The copies' stores wait for a connection and try a request again as the
    transport does. A connection check (check-config, status KEY) gives
    `check_timeout`: a connection is waited for that many seconds at most and
    each request is tried once, so that it says at once what it met.
    """
    facts = Facts(store_name(endpoint), redis_client)
    throttle = Throttle.of(endpoint.max_requests_per_second)
    if transport_for(endpoint) is Transport.BOTO3:
        if check_timeout is None:
            return BotoStore(endpoint, facts, pool_size=pool_size, throttle=throttle)
        return BotoStore(endpoint, facts, pool_size=pool_size, max_attempts=0, connect_timeout=check_timeout,
                         throttle=throttle)  # fmt: skip
    if check_timeout is None:
        return HttpStore(endpoint, _wire(endpoint, throttle), facts)
    return HttpStore(endpoint, _wire(endpoint, throttle, connect_timeout=check_timeout, tries=1), facts)


def _wire(
    endpoint: Endpoint, throttle: Throttle, *, connect_timeout: float = CONNECT_TIMEOUT, tries: int = MAX_TRIES
) -> Wire:
    region = endpoint.region or "us-east-1"
    keys = Keys(endpoint.access_key, endpoint.secret_key or "", None) if endpoint.access_key else None
    if keys and endpoint.endpoint_url and endpoint.addressing_style != "virtual":
        # botocore addresses a configured endpoint path-style unless told "virtual" (botocore/args.py):
        # no need to build a boto3 client, most of boto3's start-up, to learn that.
        base = f"{endpoint.endpoint_url.rstrip('/')}/{endpoint.bucket}/"
        return Wire(base, region, keys, verify=verify(endpoint), connect_timeout=connect_timeout, tries=tries,
                    throttle=throttle)  # fmt: skip
    # AWS itself, virtual-hosted addressing, or the credential chain: botocore says where and who,
    # once, through a presigned URL of its own client.
    try:
        client = create_client(endpoint)
        params = {"Bucket": endpoint.bucket, "Key": _PROBE}
        url = client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
        credentials = keys or session_credentials(endpoint.profile)
    except Exception as e:  # a profile that does not exist, no credentials anywhere...
        raise boundary_error("Connect", e) from e
    if credentials is None:
        raise StoreError(f"[{endpoint.name}]: no credentials: give keys, a profile, or set up the AWS credential chain",
                         operation="Connect", code="NoCredentials")  # fmt: skip
    return Wire(url[: url.index(_PROBE)], client.meta.region_name, credentials, verify=verify(endpoint),
                connect_timeout=connect_timeout, tries=tries, throttle=throttle)  # fmt: skip
