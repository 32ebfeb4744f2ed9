"""musterd's config file (--config, --print-config) and its files: the real binary.

- the settings of a --config file are the ones musterd runs with, and flags win over it;
- --print-config prints TOML that --config reads back as the same settings;
- a bad file is refused before anything starts, naming the file, line and key;
- a musterd used only over ipc:// (a worker, calls, read-only admin commands) creates nothing in
  $HOME; minting a token creates the key pair.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import BUILD, Daemon, spawn, read_log, stop, wait_for

MUSTERD = BUILD / "broker" / "musterd"


def musterd(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(MUSTERD), *map(str, args)], capture_output=True, text=True,
                          timeout=30, env=env)


def test_config_file_settings_are_used_and_flags_win(tmp_base):
    config = tmp_base / "musterd.toml"
    config.write_text('ping-interval-ms = 250\nliveness = 5\nlog-level = "info"\n')
    runtime = tmp_base / "run"
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(runtime))
    proc = spawn([MUSTERD, "--config", config, "--liveness", "4", "--data-dir", tmp_base / "data"],
                 env, tmp_base / "musterd.log")
    line = wait_for(lambda: next((l for l in read_log(proc).splitlines() if " ready " in l), None)
                    or proc.poll() is not None, 10, "musterd to start")
    assert proc.poll() is None, read_log(proc)
    assert "ping every 250 ms, liveness 4" in line  # the file's interval, the flag's liveness
    assert stop(proc) == 0


def test_print_config_reads_back_as_the_same_settings(tmp_base):
    config = tmp_base / "musterd.toml"
    config.write_text('queue-limit = 17\nclient-address = ["ipc:///tmp/mst-x/client.sock"]\n'
                      'insecure = true\n')
    first = musterd("--config", config, "--max-attempts", "2", "--print-config")
    assert first.returncode == 0, first.stderr
    assert "\nqueue-limit = 17\n" in first.stdout
    assert "\nmax-attempts = 2\n" in first.stdout
    assert "\ninsecure = true\n" in first.stdout
    assert "client-address = ['ipc:///tmp/mst-x/client.sock']" in first.stdout
    assert "\nping-interval-ms = 1000\n" in first.stdout  # defaults are effective settings too
    printed = tmp_base / "printed.toml"
    printed.write_text(first.stdout)
    second = musterd("--config", printed, "--print-config")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert not (tmp_base / "run").exists()  # --print-config starts nothing


def test_a_bad_config_file_is_refused_naming_the_file_line_and_key(tmp_base):
    config = tmp_base / "musterd.toml"
    for text, error in [
        ("liveness = 3\nqueue-limt = 5\n", ":2: queue-limt: unknown setting"),
        ("\n\nping-interval-ms = \"1s\"\n", ":3: ping-interval-ms: expected a non-negative integer, got a string"),
        ("ping-interval-ms = 1\n", ":1: ping-interval-ms: Value 1 not in range 10 to 3600000"),
    ]:
        config.write_text(text)
        r = musterd("--config", config, "--data-dir", tmp_base / "data",
                    env=dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "run")))
        assert r.returncode != 0
        assert f"{config}{error}" in r.stderr
        assert not (tmp_base / "run").exists() and not (tmp_base / "data").exists()
    r = musterd("--config", tmp_base / "missing.toml")
    assert r.returncode != 0 and "missing.toml" in r.stderr


def test_an_ipc_only_daemon_creates_nothing_in_home(tmp_base):
    # Before: musterd wrote a CURVE key pair (daemon-curve.key/.pub) to ~/.local/share/muster
    # at every start, ipc:// only or not.
    home = tmp_base / "home"
    home.mkdir()
    runtime = tmp_base / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("MUSTER_DATA_DIR", "XDG_DATA_HOME")}
    env.update(HOME=str(home), MUSTER_RUNTIME_DIR=str(runtime))
    d = Daemon(runtime_dir=runtime, data_dir=home, args=[], env=env)
    d.proc = spawn([MUSTERD, "--ping-interval-ms", "200", "--log-level", "info"], env, tmp_base / "musterd.log")
    wait_for(lambda: "ready" in read_log(d.proc) or d.proc.poll() is not None, 10, "musterd to start")
    assert d.proc.poll() is None, read_log(d.proc)
    worker = spawn([BUILD / "worker" / "muster-example-worker", "--worker-id", "w-home"], env,
                   tmp_base / "worker.log")

    def called():
        r = subprocess.run([str(BUILD / "tools" / "muster"), "call", "hello", '{"name": "home"}'],
                           env=env, capture_output=True, text=True, timeout=30)
        return r.returncode == 0 and r
    r = wait_for(called, 10, "a call through the worker")
    assert "home" in json.loads(r.stdout)["greeting"]

    def cli(*args):
        return subprocess.run([str(BUILD / "tools" / "muster"), *args], env=env, capture_output=True,
                              text=True, timeout=30)
    # Read-only admin commands have nothing to read yet: they create nothing either.
    assert json.loads(cli("token", "list", "--json").stdout) == []
    assert json.loads(cli("keys", "list", "--json").stdout) == []
    revoke = cli("token", "revoke", "0" * 32)
    assert revoke.returncode != 0 and "no token with id" in revoke.stderr
    assert list(home.iterdir()) == [], [str(p) for p in home.rglob("*")]

    # Minting a token is what needs the key pair (tokens are for tcp:// enrollment).
    assert cli("token", "create", "--role", "worker").returncode == 0
    assert (home / ".local/share/muster/daemon-curve.key").exists()
    assert len(json.loads(cli("token", "list", "--json").stdout)) == 1
    assert stop(worker) == 0
    assert stop(d.proc) == 0
