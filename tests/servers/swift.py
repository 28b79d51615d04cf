"""A single-node OpenStack Swift with s3api + tempauth on loopback, for tests and benchmarks.

memcached plus the account, container, object and proxy servers, each
`workers = 0` on 127.0.0.1, rings with one replica and one device, data in
`workdir`. Swift runs on Debian's /usr/bin/python3 (python3-swift), never on
the virtualenv's Python.

Swift reads /etc/swift/swift.conf at import time. Rather than touch /etc, each
server is started through LAUNCHER, which points swift at `workdir/etc` with
`utils.set_swift_dir()` and reloads the storage policies and constraints
(set_swift_dir alone re-reads only the hash prefix/suffix) before `run_wsgi`.

Measured on a 2-core Debian bookworm box, Swift 2.30.1: start_swift() returns
(first signed S3 request answered) in 3.8-5.9 s, usually ~4.3 s; stop() takes
0.1-0.3 s. Start-up is CPU-bound: each server alone needs ~1.8 s (eventlet,
pkg_resources and paste imports) and four of them share two cores.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time

from tests.servers.base import Server, free_port, serve, wait_for_port

ACCESS_KEY = "test:tester"  # tempauth's S3 access key is `account:user`
SECRET_KEY = "testing"  # ... and the secret is that user's password
PYTHON = "/usr/bin/python3"
PACKAGES = ["swift", "swift-proxy", "swift-account", "swift-container", "swift-object", "memcached"]
SERVERS = ("account", "container", "object", "proxy")
# The stock proxy pipeline with s3api in front of tempauth, as a Swift cluster serving S3 runs it.
PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth"
    " copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server"
)

# Run with PYTHON as `LAUNCHER swift_dir CONF SECTION [ACCOUNT CONTAINER OBJECT ports]`:
# runs one server in the foreground; given the three backend ports it first
# builds the rings (one device, one replica each). Only the proxy reads the
# rings, and building them in its process saves a Python start-up.
LAUNCHER = """\
import os, sys
from swift.common import constraints, storage_policy, utils
swift_dir, conf, section = sys.argv[1:4]
utils.set_swift_dir(swift_dir)
storage_policy.reload_storage_policies()
constraints.reload_constraints()
if sys.argv[4:]:
    from swift.common.ring import RingBuilder
    for name, port in zip(("account", "container", "object"), sys.argv[4:7]):
        builder = RingBuilder(8, 1, 1)
        builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                         "port": int(port), "device": "d1", "weight": 100, "meta": ""})
        builder.rebalance()
        builder.get_ring().save(os.path.join(swift_dir, name + ".ring.gz"))
from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(conf, section, verbose=True))
"""

SWIFT_CONF = """\
[swift-hash]
swift_hash_path_prefix = s3s3-test-prefix
swift_hash_path_suffix = s3s3-test-suffix

[storage-policy:0]
name = Policy-0
default = yes
"""

DEFAULT = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {swift_dir}
devices = {devices}
mount_check = false
disable_fallocate = true
# INFO would log every request (twice, via proxy-logging): noise and cost in benchmarks.
log_level = WARNING
"""

BACKEND = """\
[pipeline:main]
pipeline = {name}-server

[app:{name}-server]
use = egg:swift#{name}
"""

PROXY = """\
[pipeline:main]
pipeline = {pipeline}

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
"""


def ensure_swift_installed() -> None:
    """Install Swift and memcached with apt when missing; without root, say what to install."""
    binaries = ["memcached", PYTHON, *(f"swift-{name}-server" for name in SERVERS)]
    if all(shutil.which(b) for b in binaries):
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if os.geteuid() != 0:
        raise RuntimeError(f"Swift is not installed; run as root: apt-get update && {' '.join(install)}")
    if subprocess.run(install, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)


def _spawn(cmd: list[str], log_path: str) -> subprocess.Popen:
    """Start one process in its own session (so killpg reaches it alone), output to a log file."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def _write_confs(workdir: str, ports: dict[str, int]) -> str:
    """Write swift.conf and the four server configs into workdir/etc; return that dir."""
    swift_dir = os.path.join(workdir, "etc")
    devices = os.path.join(workdir, "node")
    os.makedirs(swift_dir, exist_ok=True)
    os.makedirs(os.path.join(devices, "d1"), exist_ok=True)
    os.makedirs(os.path.join(workdir, "log"), exist_ok=True)
    with open(os.path.join(swift_dir, "swift.conf"), "w") as f:
        f.write(SWIFT_CONF)
    for name in SERVERS:
        body = (
            PROXY.format(pipeline=PIPELINE, memcached_port=ports["memcached"])
            if name == "proxy"
            else BACKEND.format(name=name)
        )
        default = DEFAULT.format(port=ports[name], user=getpass.getuser(), swift_dir=swift_dir, devices=devices)
        with open(os.path.join(swift_dir, f"{name}-server.conf"), "w") as f:
            f.write(default + "\n" + body)
    return swift_dir


def _wait_for_s3(server: Server, procs: dict[str, subprocess.Popen], timeout: float = 60.0) -> None:
    """Wait until a signed request succeeds: tempauth needs memcached and the account autocreated."""
    client = server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        dead = [name for name, proc in procs.items() if proc.poll() is not None]
        if dead:
            raise RuntimeError(f"swift process exited early: {dead}; see {server.workdir}/log")
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_swift(workdir: str) -> Server:
    """Start memcached and the four Swift servers in `workdir`; return the s3api endpoint."""
    ensure_swift_installed()
    workdir = os.path.abspath(workdir)
    ports = {name: free_port() for name in ("memcached", *SERVERS)}
    swift_dir = _write_confs(workdir, ports)
    log_dir = os.path.join(workdir, "log")
    server = Server(
        name="swift",
        endpoint_url=f"http://127.0.0.1:{ports['proxy']}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        workdir=workdir,
    )
    try:
        memcached = ["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            memcached += ["-u", "root"]  # memcached refuses to run as root without -u
        server.procs.append(_spawn(memcached, os.path.join(log_dir, "memcached.log")))
        for name in SERVERS:
            conf = os.path.join(swift_dir, f"{name}-server.conf")
            cmd = [PYTHON, "-c", LAUNCHER, swift_dir, conf, f"{name}-server"]
            if name == "proxy":
                cmd += [str(ports[backend]) for backend in SERVERS[:3]]
            server.procs.append(_spawn(cmd, os.path.join(log_dir, f"{name}-server.log")))
        procs = dict(zip(("memcached", *SERVERS), server.procs, strict=True))
        for name, proc in procs.items():
            wait_for_port(ports[name], timeout=60, proc=proc)
        _wait_for_s3(server, procs)
    except BaseException:
        server.stop()
        raise
    return server



def main() -> int:
    """Start one in a temp dir, print `NAME endpoint access secret`, run until SIGTERM/SIGINT."""
    return serve(start_swift, "s3s3-swift-")


if __name__ == "__main__":
    sys.exit(main())
