"""Private redis-servers on free loopback ports, in temp dirs, that tests may kill and restart: one server,
a master with a replica watched by three Sentinels, or a Redis Cluster."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.servers.base import free_port, stop_process, wait_for_port


@dataclass
class RedisServer:
    """One redis-server process; `url` for clients, `stop()`/`start()` to kill and bring it back."""

    workdir: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    extra_args: tuple[str, ...] = ()  # appended to the defaults, e.g. ("--appendonly", "yes") for persistence

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--logfile", f"{self.workdir}/redis.log",
             *self.extra_args],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout=10, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server goes at once, with whatever it had not yet sent its replicas."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def sentinel_binary() -> list[str]:
    """How to start a Sentinel: Debian's redis-sentinel, or redis-server in sentinel mode."""
    binary = shutil.which("redis-sentinel")
    if binary is not None:
        return [binary]
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-sentinel is not installed: `make test` installs it (apt-get install redis-sentinel)")
    return [server, "--sentinel"]


@dataclass
class SentinelGroup:
    """A master, a replica, and three Sentinels watching them (quorum 2), on free loopback ports.

    `kill_master()` SIGKILLs the master; the Sentinels see it down after a
    second and promote the replica. `stop()` stops every process.
    """

    workdir: str
    name: str = "s3s3test"
    servers: list[RedisServer] = field(default_factory=list)  # the first started as master, then its replica
    sentinels: list[tuple[int, subprocess.Popen]] = field(default_factory=list)

    @property
    def option(self) -> str:
        """`[pubsub] sentinels` for these Sentinels."""
        return ", ".join(f"127.0.0.1:{port}" for port, _ in self.sentinels)

    def start(self) -> SentinelGroup:
        master = RedisServer(_subdir(self.workdir, "master")).start()
        replica = RedisServer(_subdir(self.workdir, "replica"),
                              extra_args=("--replicaof", "127.0.0.1", str(master.port))).start()  # fmt: skip
        self.servers = [master, replica]
        for i in range(3):
            port, where = free_port(), _subdir(self.workdir, f"sentinel{i}")
            conf = Path(where) / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {where}\nlogfile {where}/sentinel.log\n"
                f"sentinel monitor {self.name} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.name} 1000\n"
                f"sentinel failover-timeout {self.name} 10000\n"
            )
            proc = subprocess.Popen([*sentinel_binary(), str(conf)], stdout=subprocess.DEVNULL, start_new_session=True)
            self.sentinels.append((port, proc))
            wait_for_port(port, timeout=10, proc=proc)
        self._wait_until_ready()
        return self

    def master_port(self) -> int:
        """The master's port, as the first Sentinel that answers names it."""
        for port, _ in self.sentinels:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port, socket_timeout=2) as sentinel:
                address = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                if address:
                    return int(address[1])
        raise RuntimeError("no Sentinel answers")

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def kill_master(self) -> RedisServer:
        """SIGKILL the master now; returns it (stopped)."""
        master = self.master()
        master.kill()
        return master

    def promoted(self, old: RedisServer) -> bool:
        """True once every Sentinel names another master than `old`, and it answers as a master."""
        ports = set()
        for port, _ in self.sentinels:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port, socket_timeout=2) as sentinel:
                address = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                ports.add(int(address[1]))
        if len(ports) != 1 or old.port in ports:
            return False
        with contextlib.suppress(redis.RedisError), redis.Redis(port=ports.pop(), socket_timeout=2) as new:
            return bool(new.info("replication")["role"] == "master")
        return False

    def rejoin(self, old: RedisServer, timeout: float = 30.0) -> None:
        """Start the killed master again, and wait until the Sentinels made it the new master's replica, in sync."""
        old.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=self.master_port()) as master:
                replication = master.info("replication")
                if replication.get("connected_slaves") == 1 and replication["slave0"]["state"] == "online":
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the old master did not rejoin as a replica within {timeout}s")

    def stop(self) -> None:
        for _, proc in self.sentinels:
            stop_process(proc)
        self.sentinels = []
        for server in self.servers:
            server.stop()

    def _wait_until_ready(self, timeout: float = 30.0) -> None:
        """Until the replica is in sync and every Sentinel knows it and the two other Sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinels did not see the master, its replica and each other within {timeout}s")

    def _ready(self) -> bool:
        with redis.Redis(port=self.servers[0].port) as master:
            replication = master.info("replication")
            if replication.get("connected_slaves") != 1 or replication["slave0"]["state"] != "online":
                return False
        for port, _ in self.sentinels:
            with redis.Redis(port=port, decode_responses=True) as sentinel:
                state = sentinel.execute_command("SENTINEL", "MASTER", self.name)
                fields = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
                if int(fields["num-slaves"]) != 1 or int(fields["num-other-sentinels"]) != 2:
                    return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too, as Redis Cluster needs."""
    while True:
        port = free_port()
        if port <= 55535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@dataclass
class ClusterNodes:
    """A Redis Cluster of 3 masters (and `replicas` replicas each) on loopback; a node is failed over in 2 s."""

    workdir: str
    replicas: int = 0
    servers: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL of one node, from which redis-py finds the others."""
        return self.servers[0].url

    def start(self) -> ClusterNodes:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli is not installed: `make test` installs redis-server, which brings it")
        for i in range(3 * (1 + self.replicas)):
            where = _subdir(self.workdir, f"node{i}")
            self.servers.append(RedisServer(where, port=cluster_port(), extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", f"{where}/nodes.conf",
                "--cluster-node-timeout", "2000"),
            ).start())  # fmt: skip
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says the cluster is ok and (with replicas) every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(s) for s in self.servers if s.proc is not None):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster is not ok within {timeout}s")

    def master_of(self, key: str) -> RedisServer:
        """The node that serves `key` now."""
        running = next(s for s in self.servers if s.proc is not None)
        with redis.RedisCluster.from_url(running.url) as cluster:
            node = cluster.get_node_from_key(key)
        return next(s for s in self.servers if s.port == node.port)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    @staticmethod
    def _ok(server: RedisServer) -> bool:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=server.port, socket_timeout=2) as node:
            info = node.execute_command("CLUSTER", "INFO", NEVER_DECODE=True)
            replication = node.info("replication")
            synced = replication["role"] == "master" or replication.get("master_link_status") == "up"
            return b"cluster_state:ok" in info and synced
        return False


def _subdir(workdir: str, name: str) -> str:
    path = Path(workdir) / name
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
