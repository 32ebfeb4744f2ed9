"""Identities, tokens and revocations of a failover pair live in PostgreSQL (docs/DURABILITY.md
§12, "Identities, tokens and revocations").

The pair of test_failover.py (real PostgreSQL from postgres_server.py, two real musterd sharing
its journal), serving CURVE over tcp:// on loopback. Both daemons are given the same tcp://
ports (only the active one binds them: a standby binds nothing), so a worker or a client keeps
one address, as behind a moving virtual IP, and both have the same daemon key pair (the pair's
rule: a token names the daemon key, and peers check the daemon's key in the handshake). Real
C++ workers and the real `muster` CLI enroll with tokens over CURVE.

Each test also copies what the active daemon's data dir holds to the standby's before the
standby starts (the key pair, and identities.json/tokens.json if the daemon keeps files): what
an operator did when each daemon kept its own files. With the stores in PostgreSQL there are no
such files, and what counts is what the shard's tables hold when the standby takes over.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

from conftest import BUILD, read_log, spawn, stop, wait_for
from test_failover import cli, daemon, database, launch, postgres  # noqa: F401 (fixtures)
from test_security import free_ports


class Pair:
    """Two musterd of a pair on one journal, with the same tcp:// endpoints and key pair."""

    def __init__(self, tmp_path, postgres, database):
        self.tmp = tmp_path
        self.request, self.response, self.client, self.enroll = (f"tcp://127.0.0.1:{p}" for p in free_ports(4))
        uri = postgres.uri(database)
        self.flags = ["--request-address", self.request, "--response-address", self.response,
                      "--client-address", self.client, "--enrollment-address", self.enroll]
        self.a = launch(daemon(tmp_path / "a", uri, *self.flags))
        wait_for(lambda: "ready" in read_log(self.a.proc) or self.a.proc.poll() is not None, 15, "the first musterd")
        assert self.a.proc.poll() is None, read_log(self.a.proc)
        self.b = daemon(tmp_path / "b", uri, *self.flags)

    def start_standby(self):
        """Copies a's data dir files (key pair; identities.json, tokens.json where kept) to b and
        starts b, which waits as the standby."""
        self.b.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for f in self.a.data_dir.iterdir():
            if f.is_file() and not f.name.startswith("journal"):
                shutil.copy2(f, self.b.data_dir / f.name)
        launch(self.b)
        wait_for(lambda: "standby:" in read_log(self.b.proc) or self.b.proc.poll() is not None, 15, "the standby")
        assert self.b.proc.poll() is None, read_log(self.b.proc)

    def fail_over(self):
        """SIGKILL of the active daemon; returns once the standby took over and serves."""
        self.a.stop(signal.SIGKILL)
        wait_for(lambda: "ready" in read_log(self.b.proc) or self.b.proc.poll() is not None, 30,
                 "the standby to take over")
        assert self.b.proc.poll() is None, read_log(self.b.proc)

    def mint(self, d, *args) -> str:
        r = cli(d, "token", "create", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def worker(self, name: str, token: str):
        """A C++ worker on the pair's tcp:// endpoints, enrolling with `token` (its own data dir)."""
        env = dict(os.environ, MUSTER_ENROLLMENT_TOKEN=token, MUSTER_RUNTIME_DIR=str(self.tmp / "none"))
        return spawn([BUILD / "worker" / "muster-example-worker", "--worker-id", name,
                      "--request-address", self.request, "--response-address", self.response,
                      "--enrollment-address", self.enroll, "--data-dir", self.tmp / f"wd-{name}",
                      "--log-level", "debug"], env, self.tmp / f"worker-{name}.log")

    def remote(self, name: str, *args, token: str | None = None):
        """The `muster` CLI over CURVE tcp:// with its own data dir `name` (enrolling with `token`)."""
        env = dict(os.environ, MUSTER_RUNTIME_DIR=str(self.tmp / "none"))
        env.pop("MUSTER_ENROLLMENT_TOKEN", None)
        if token:
            env["MUSTER_ENROLLMENT_TOKEN"] = token
        return subprocess.run([str(BUILD / "tools" / "muster"), "--client-address", self.client,
                               "--enrollment-address", self.enroll, "--data-dir", str(self.tmp / f"cd-{name}"),
                               "--enroll-timeout-ms", "3000", *map(str, args)],
                              env=env, capture_output=True, text=True, timeout=60)

    def stop(self):
        for d in (self.a, self.b):
            if d.proc is not None and d.proc.poll() is None:
                d.stop()


def workers_of(d) -> dict:
    r = cli(d, "workers", "--json")
    return {w["worker_id"]: w for w in json.loads(r.stdout)} if r.returncode == 0 else {}


def test_a_key_revoked_on_the_active_daemon_is_refused_by_the_standby_after_failover(tmp_path, postgres, database):
    pair = Pair(tmp_path, postgres, database)
    try:
        a = pair.a
        w1 = pair.worker("w1", pair.mint(a, "--role", "worker"))
        w2 = pair.worker("w2", pair.mint(a, "--role", "worker"))
        wait_for(lambda: {"w1", "w2"} <= workers_of(a).keys(), 20, "both workers on the active daemon")
        pair.start_standby()
        revoked = workers_of(a)["w1"]["identity"]
        key = next(k["public_key"] for k in json.loads(cli(a, "keys", "list", "--json").stdout) if k["id"] == revoked)
        r = cli(a, "keys", "revoke", revoked)
        assert r.returncode == 0, r.stderr
        # The active daemon refuses it at once, as ever: its next message, or (a direct worker,
        # PROTOCOL.md §7.10, which gets not even pings once revoked) the handshake of the
        # reconnect that follows hearing none.
        wait_for(lambda: "revoked or not enrolled as a worker" in read_log(a.proc)
                 or "identity revoked" in read_log(a.proc), 10, "w1 refused by the active daemon")

        pair.fail_over()
        b = pair.b
        # The other worker re-attaches to the new active daemon; the revoked one is refused at
        # its handshake (the ZAP verdict), so it never attaches.
        wait_for(lambda: "w2" in workers_of(b), 30, "w2 on the new active daemon")
        wait_for(lambda: f"refused a CURVE handshake from 127.0.0.1 on muster.worker: identity revoked (key {key[:8]}…)"
                 in read_log(b.proc), 30, "w1's handshake refused by the new active daemon")
        assert "w1" not in workers_of(b)
        assert w1.poll() is None and w2.poll() is None  # w1 keeps trying; nothing crashed
        keys = {k["id"]: k for k in json.loads(cli(b, "keys", "list", "--json").stdout)}
        assert keys[revoked]["revoked"] is True
    finally:
        pair.stop()
        for w in (locals().get("w1"), locals().get("w2")):
            if w is not None:
                stop(w)


def test_a_token_minted_on_the_active_daemon_enrolls_on_the_standby_after_failover(tmp_path, postgres, database):
    pair = Pair(tmp_path, postgres, database)
    try:
        pair.start_standby()
        token = pair.mint(pair.a, "--role", "client", "--name", "after-failover")
        pair.fail_over()
        r = pair.remote("c1", "status", "--json", token=token)
        assert r.returncode == 0, r.stderr
        keys = json.loads(cli(pair.b, "keys", "list", "--json").stdout)
        assert [(k["name"], k["role"], k["revoked"]) for k in keys] == [("after-failover", "client", False)]
        tokens = json.loads(cli(pair.b, "token", "list", "--json").stdout)
        assert [(t["label"], t["uses_left"], t["state"]) for t in tokens] == [("after-failover", 0, "used-up")]
    finally:
        pair.stop()


def test_a_single_use_token_used_on_the_active_daemon_is_refused_by_the_standby(tmp_path, postgres, database):
    pair = Pair(tmp_path, postgres, database)
    try:
        token = pair.mint(pair.a, "--role", "client", "--uses", "1")
        pair.start_standby()  # (a standby that copied tokens.json would hold it unused)
        r = pair.remote("first", "status", "--json", token=token)
        assert r.returncode == 0, r.stderr
        pair.fail_over()
        # Its one use was taken on the old active daemon: another key cannot enroll with it ...
        r = pair.remote("second", "status", token=token)
        assert r.returncode == 5, r.stdout + r.stderr
        assert "this token has no uses left (it was minted for 1 use(s))" in r.stderr, r.stderr
        assert "enrollment from 127.0.0.1 refused (token-used-up)" in read_log(pair.b.proc)
        # ... while the key it enrolled is known to the new active daemon, without a token.
        r = pair.remote("first", "status", "--json")
        assert r.returncode == 0, r.stderr
    finally:
        pair.stop()


def test_the_files_of_a_daemon_that_ran_alone_are_imported_once_when_it_first_leads(tmp_path, postgres, database):
    """A daemon that kept identities.json/tokens.json (no PostgreSQL journal) is restarted on one:
    its identities, revocations and tokens are imported into the shard, the files renamed."""
    request, response, client, enroll = (f"tcp://127.0.0.1:{p}" for p in free_ports(4))
    flags = ["--request-address", request, "--response-address", response, "--client-address", client,
             "--enrollment-address", enroll]
    alone = launch(daemon(tmp_path / "a", "sqlite:" + str(tmp_path / "alone.db"), *flags))
    try:
        wait_for(lambda: "ready" in read_log(alone.proc) or alone.proc.poll() is not None, 15, "musterd alone")
        kept = cli(alone, "token", "create", "--role", "client", "--uses", "2").stdout.strip()
        env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_path / "none"), MUSTER_ENROLLMENT_TOKEN=kept)

        def remote(name, *args, env=env):
            return subprocess.run([str(BUILD / "tools" / "muster"), "--client-address", client,
                                   "--enrollment-address", enroll, "--data-dir", str(tmp_path / f"cd-{name}"),
                                   "--enroll-timeout-ms", "3000", *args], env=env, capture_output=True,
                                  text=True, timeout=60)
        assert remote("kept", "status").returncode == 0
        assert remote("gone", "status").returncode == 0  # the token's second use
        keys = json.loads(cli(alone, "keys", "list", "--json").stdout)  # oldest first
        assert len(keys) == 2
        gone = keys[1]["id"]
        assert cli(alone, "keys", "revoke", gone).returncode == 0
        assert alone.stop() == 0
        assert (alone.data_dir / "identities.json").exists()
    finally:
        stop(alone.proc)

    shared = daemon(tmp_path / "p", postgres.uri(database), *flags)
    shared.data_dir = alone.data_dir  # the same daemon, restarted on a PostgreSQL journal
    launch(shared)
    try:
        wait_for(lambda: "ready" in read_log(shared.proc) or shared.proc.poll() is not None, 15, "musterd on PostgreSQL")
        assert shared.proc.poll() is None, read_log(shared.proc)
        log = read_log(shared.proc)
        assert "2 identities added, 0 newly revoked, 1 tokens added, 0 updated; renamed to *.imported" in log, log
        assert sorted(p.name for p in shared.data_dir.glob("*.json*")) == ["identities.json.imported",
                                                                           "tokens.json.imported"]
        rows = postgres.psql("SELECT id, revoked FROM identities ORDER BY enrolled_ms, id", database)
        assert sorted(line.split("|") for line in rows.splitlines()) == sorted([[keys[0]["id"], "f"], [gone, "t"]])
        assert postgres.psql("SELECT uses_left FROM enrollment_tokens", database) == "0"
        # What was imported is what the daemon serves: the kept client works, the revoked one not.
        env.pop("MUSTER_ENROLLMENT_TOKEN")
        assert remote("kept", "status", env=env).returncode == 0
        r = remote("gone", "status", env=env)
        assert r.returncode == 3 and "UNAVAILABLE" in r.stderr, r.stderr
        # Restarted, it imports nothing more (the files were renamed).
        assert shared.stop() == 0
        launch(shared)
        wait_for(lambda: "ready" in read_log(shared.proc) or shared.proc.poll() is not None, 15, "musterd again")
        assert shared.proc.poll() is None, read_log(shared.proc)
        assert "renamed to *.imported" not in read_log(shared.proc)
    finally:
        stop(shared.proc)
