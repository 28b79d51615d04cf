"""A throw-away CA and server certificate for 127.0.0.1, so a test store can speak HTTPS.

Made with the `openssl` CLI rather than the `cryptography` package so the
harness needs nothing the stores' own packages do not already pull in.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# The names a client may use to reach a loopback store.
SERVER_NAMES = "subjectAltName=IP:127.0.0.1,DNS:localhost"


def _openssl(*args: str, cwd: str) -> None:
    """Run one openssl command in `cwd`, raising with its stderr when it fails."""
    proc = subprocess.run(["openssl", *args], check=False, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_self_signed_ca(workdir: str) -> tuple[str, str, str]:
    """Create a CA and a server cert it signed; return (ca_pem, cert_pem, key_pem) paths.

    A separate CA (rather than one self-signed leaf) is what clients meet in
    real deployments: `verify=ca_pem` must succeed and `verify=True` must fail.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found: apt-get install -y openssl")
    tls_dir = os.path.join(workdir, "tls")
    os.makedirs(tls_dir, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", "/CN=s3s3 test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=tls_dir,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=tls_dir,
    )  # fmt: skip
    with open(os.path.join(tls_dir, "server.ext"), "w") as f:
        f.write(f"{SERVER_NAMES}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "server.ext", "-out", "server.pem",
        cwd=tls_dir,
    )  # fmt: skip
    ca_pem, cert_pem, key_pem = (os.path.join(tls_dir, n) for n in ("ca.pem", "server.pem", "server.key"))
    return ca_pem, cert_pem, key_pem
