"""A one-OSD Ceph cluster with a RADOS Gateway on loopback, for tests and benchmarks.

Bookworm's Ceph 16.2 has no SQLite `dbstore`, so RGW needs real RADOS: one
ceph-mon, one ceph-osd on `memstore` (data in RAM), no mgr, cephx off, then
radosgw with the beast frontend. Everything lives in `workdir` and takes one
`-c workdir/ceph.conf`; nothing reads or writes /etc/ceph.

Measured on a 2-core Debian bookworm box, Ceph 16.2.15: start_ceph() returns
(user created, first signed S3 request answered) in 1.1-1.7 s, 1.5-2.0 s with
tls=True (openssl key generation); stop() takes ~0.5 s. RSS idle: mon 35 MB,
osd 50 MB, radosgw 55 MB; the memstore OSD grows ~2.1x the data stored (1.1 GB
for 512 MB of objects), and memstore reports 8 GiB of capacity (CONF below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

from tests.servers.base import Server, free_port, serve, wait_for_port
from tests.servers.tls import make_self_signed_ca

ACCESS_KEY = "S3S3CEPHACCESSKEY000"
SECRET_KEY = "s3s3cephsecretkey0000000000000000000000"
PACKAGES = ["ceph-mon", "ceph-osd", "radosgw"]
BINARIES = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"]

CONF = """\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = {workdir}/run
admin socket = {workdir}/run/$name.asok
pid file = {workdir}/run/$name.pid
log file = {workdir}/log/$name.log
log to stderr = false
err to stderr = true
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# Paxos defaults batch proposals for a second or more; cutting them takes the
# start from ~14 s to ~2.5 s (pools, OSD boot and PG creation all go through paxos).
paxos propose interval = 0.05
paxos min wait = 0.01

[mon.a]
mon data = {workdir}/mon.a

[osd.0]
osd data = {workdir}/osd.0
osd objectstore = memstore
# memstore only reports this size as capacity; RAM is used as data arrives.
memstore device bytes = 8589934592

[client]
# radosgw's built-in default is `secure`, which cannot work with auth none: it
# loops on "get_initial_auth_request returned -13".
ms mon client mode = crc secure
rgw data = {workdir}/rgw
rgw frontends = {frontends}
# Do NOT set rgw zone / rgw zonegroup: on a fresh cluster RGW then fails with
# "failed reading zonegroup info: ret -2"; left alone it creates the defaults.
"""


def ensure_ceph_installed() -> None:
    """Install the Ceph daemons with apt when missing; without root, say what to install."""
    if all(shutil.which(b) for b in BINARIES):
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if os.geteuid() != 0:
        raise RuntimeError(f"Ceph is not installed; run as root: apt-get update && {' '.join(install)}")
    if subprocess.run(install, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)


def _run(workdir: str, *args: str, timeout: float = 60.0) -> str:
    """Run one Ceph tool against this cluster and return its stdout."""
    cmd = [args[0], "-c", os.path.join(workdir, "ceph.conf"), *args[1:]]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _daemon(workdir: str, *args: str) -> subprocess.Popen:
    """Start one daemon in the foreground, in its own session so killpg reaches it alone."""
    with open(os.path.join(workdir, "log", f"{args[0]}.stderr"), "ab") as log:
        return subprocess.Popen(
            [args[0], "-c", os.path.join(workdir, "ceph.conf"), "-f", *args[1:]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def _wait_for_s3(server: Server, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until a signed request succeeds: the port opens before the user is usable."""
    client = server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"radosgw exited with code {proc.returncode}")
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_ceph(workdir: str, *, tls: bool = False) -> Server:
    """Start mon, memstore OSD and radosgw in `workdir`; return the S3 endpoint with a user."""
    ensure_ceph_installed()
    workdir = os.path.abspath(workdir)
    for sub in ("run", "log", "mon.a", "osd.0", "rgw"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    mon_port, rgw_port = free_port(), free_port()
    ca_bundle = None
    if tls:
        ca_bundle, cert, key = make_self_signed_ca(workdir)
        frontends = f"beast ssl_endpoint=127.0.0.1:{rgw_port} ssl_certificate={cert} ssl_private_key={key}"
    else:
        frontends = f"beast endpoint=127.0.0.1:{rgw_port}"
    fsid = str(uuid.uuid4())
    with open(os.path.join(workdir, "ceph.conf"), "w") as f:
        f.write(CONF.format(fsid=fsid, mon_port=mon_port, workdir=workdir, frontends=frontends))

    server = Server(
        name="ceph",
        endpoint_url=f"{'https' if tls else 'http'}://127.0.0.1:{rgw_port}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        ca_bundle=ca_bundle,
        workdir=workdir,
    )
    try:
        monmap = os.path.join(workdir, "monmap")
        addr = f"[v2:127.0.0.1:{mon_port}]"
        subprocess.run(
            ["monmaptool", "--create", "--fsid", fsid, "--addv", "a", addr, monmap], check=True, capture_output=True
        )
        _run(workdir, "ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        server.procs.append(_daemon(workdir, "ceph-mon", "-i", "a"))
        wait_for_port(mon_port, proc=server.procs[-1])

        osd_uuid = str(uuid.uuid4())
        osd_id = _run(workdir, "ceph", "osd", "new", osd_uuid).strip()
        _run(workdir, "ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        server.procs.append(_daemon(workdir, "ceph-osd", "-i", osd_id))

        server.procs.append(_daemon(workdir, "radosgw", "-n", "client.rgw"))
        wait_for_port(rgw_port, timeout=60, proc=server.procs[-1])
        _run(
            workdir, "radosgw-admin", "user", "create", "--uid", "tester", "--display-name", "tester",
            "--access-key", ACCESS_KEY, "--secret", SECRET_KEY,
        )  # fmt: skip
        _wait_for_s3(server, server.procs[-1])
    except BaseException:
        server.stop()
        raise
    return server



def main() -> int:
    """Start one in a temp dir, print `NAME endpoint access secret`, run until SIGTERM/SIGINT."""
    return serve(lambda workdir: start_ceph(workdir, tls="--tls" in sys.argv[1:]), "s3s3-ceph-")


if __name__ == "__main__":
    sys.exit(main())
