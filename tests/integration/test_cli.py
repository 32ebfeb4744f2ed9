"""The `muster` CLI as a tool people script (README "The muster CLI"): exit statuses by class,
durations, help, shell completion, connection contexts, node info, check, progress, tables and
the man page — against a real musterd."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import BUILD, muster_cli

MUSTER = str(BUILD / "tools" / "muster")


def run(env, *args, timeout=60, input=None):
    return subprocess.run([MUSTER, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, input=input)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(daemon, start_worker):
    start_worker(daemon, worker_id="cli-w").wait_ready()
    return daemon


@pytest.fixture
def no_daemon_env(tmp_base):
    env = dict(os.environ, MUSTER_RUNTIME_DIR=str(tmp_base / "nobody-here"),
               XDG_CONFIG_HOME=str(tmp_base / "cfg-none"))
    env.pop("MUSTER_CONTEXT", None)
    return env


def test_exit_status_by_class(served, no_daemon_env):
    d = served
    assert muster_cli(d, "call", "echo", '{"a": 1}').returncode == 0
    r = muster_cli(d, "call", "fail", '{"message": "boom"}')
    assert (r.returncode, r.stderr.strip()) == (1, "error: WORKER_ERROR: boom")
    r = muster_cli(d, "call", "no-such-node")
    assert r.returncode == 1 and "NO_WORKER" in r.stderr
    r = muster_cli(d, "call", "sleep", '{"ms": "x"}')  # refused by musterd: the call failed
    assert r.returncode == 1 and "INVALID_REQUEST" in r.stderr
    # usage: 2, whatever CLI11 would have said (it used to exit 104-109)
    for args in (["--bogus", "nodes"], ["nodes", "--bogus"], ["call"], [], ["frobnicate"],
                 ["call", "echo", "{not json"], ["call", "echo", "[1]"],
                 ["call", "echo", "--timeout", "5q"], ["call", "echo", "--timeout", "10"]):
        r = muster_cli(d, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
    r = muster_cli(d, "call", "sleep", '{"ms": 5000}', "--timeout", "300ms")
    assert r.returncode == 4 and r.stderr.startswith("error: TIMEOUT: "), r.stderr
    r = run(no_daemon_env, "nodes")
    assert r.returncode == 3 and "error: UNAVAILABLE: cannot reach musterd" in r.stderr
    r = run(no_daemon_env, "call", "echo", "{}")
    assert r.returncode == 3
    r = muster_cli(d, "--version")
    assert r.returncode == 0 and r.stdout.strip()


def test_permission_denied_has_its_own_exit_status(start_daemon, tmp_base):
    cport, eport = free_port(), free_port()
    d = start_daemon("--client-address", f"tcp://127.0.0.1:{cport}",
                     "--enrollment-address", f"tcp://127.0.0.1:{eport}")
    token = muster_cli(d, "token", "create", "--role", "client", "--ttl", "10m").stdout.strip()
    assert token.startswith("muster1.")

    def remote(data, *args, token=token):
        env = dict(d.env, MUSTER_RUNTIME_DIR=str(tmp_base / "none"), MUSTER_ENROLLMENT_TOKEN=token,
                   XDG_CONFIG_HOME=str(tmp_base / "cfg-remote"))
        if not token:
            env.pop("MUSTER_ENROLLMENT_TOKEN")
        return run(env, "--client-address", f"tcp://127.0.0.1:{cport}", "--enrollment-address",
                   f"tcp://127.0.0.1:{eport}", "--data-dir", tmp_base / data, "--enroll-timeout", "5s", *args)

    parts = token.split(".")
    forged = ".".join([parts[0], parts[1], ("A" if parts[2][0] != "A" else "B") + parts[2][1:], parts[3]])
    r = remote("forged", "status", token=forged)
    assert r.returncode == 5 and "PERMISSION_DENIED" in r.stderr, r.stderr
    r = remote("client", "status")  # enrolls as a client: fine
    assert r.returncode == 0, r.stderr
    r = remote("client", "token", "list")  # a client is no admin
    assert r.returncode == 5 and r.stderr.startswith("error: PERMISSION_DENIED: "), r.stderr
    # `check` over tcp:// looks at the CURVE identity too
    r = remote("client", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^identity\s+ok\s+'client' \(client in workspace default\), enrolled", r.stdout, re.M), r.stdout
    assert re.search(r"^key age\s+ok\s+.*client-curve\.key is \S+ old$", r.stdout, re.M), r.stdout
    assert re.search(r"^tokens\s+skip\s+not an admin", r.stdout, re.M), r.stdout
    r = remote("never-enrolled", "check", token="")
    assert r.returncode == 3, r.stdout + r.stderr
    assert re.search(r"^identity\s+FAIL\s+'client' is not enrolled", r.stdout, re.M), r.stdout


def test_durations_are_accepted_wherever_a_time_is(served):
    d = served
    for t in ("2s", "1500ms", "1m", "1m30s"):
        r = muster_cli(d, "call", "sleep", '{"ms": 10}', "--timeout", t)
        assert r.returncode == 0, (t, r.stderr)
    r = muster_cli(d, "call", "sleep", '{"ms": 10}', "--timeout-ms", "20000")  # the old spelling: plain ms
    assert r.returncode == 0, r.stderr
    r = muster_cli(d, "--enroll-timeout", "3s", "status")
    assert r.returncode == 0, r.stderr
    r = muster_cli(d, "token", "create", "--ttl", "90s", "--name", "short")
    assert r.returncode == 0, r.stderr
    r = muster_cli(d, "token", "create", "--ttl", "1x")
    assert r.returncode == 2 and "invalid duration '1x'" in r.stderr, r.stderr


def test_help_subcommand(served):
    d = served
    r = muster_cli(d, "help")
    assert r.returncode == 0
    for cmd in ("call", "job", "nodes", "node", "workers", "status", "watch", "token", "keys", "check", "context",
                "completion", "man", "help"):
        assert re.search(rf"^\s+{cmd}\b", r.stdout, re.M), cmd
    r = muster_cli(d, "help", "call")
    assert r.returncode == 0 and "--timeout" in r.stdout and "--progress" in r.stdout
    r = muster_cli(d, "help", "token", "create")
    assert r.returncode == 0 and "--ttl" in r.stdout
    r = muster_cli(d, "help", "exit-codes")
    assert r.returncode == 0
    for code, name in ((0, "ok"), (1, "failed"), (2, "usage"), (3, "unavailable"), (4, "timeout"),
                       (5, "permission"), (6, "pending"), (130, "cancelled")):
        assert re.search(rf"^\s*{code}\s+{name}\s", r.stdout, re.M), (code, r.stdout)
    r = muster_cli(d, "help", "nope")
    assert r.returncode == 2 and "no help topic 'nope'" in r.stderr


def test_bash_completion_loads_and_completes(served):
    r = subprocess.run(["bash", "-c", f"source <('{MUSTER}' completion bash) && complete -p muster"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "-F _muster muster" in r.stdout

    def complete(*words):
        line = " ".join(f"'{w}'" for w in words)
        script = (f"source <('{MUSTER}' completion bash); COMP_WORDS=(muster {line}); "
                  f"COMP_CWORD={len(words)}; _muster; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert complete("tok") == ["token"]
    assert set(complete("token", "")) >= {"create", "list", "revoke"}
    assert "--timeout" in complete("call", "echo", "--t")
    assert complete("context", "r") == ["remove"]
    assert complete("help", "exit") == ["exit-codes"]
    assert set(complete("--client-address", "ipc:///x", "nod")) == {"node", "nodes"}


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion(served, shell):
    r = muster_cli(served, "completion", shell)
    assert r.returncode == 0
    for cmd in ("call", "nodes", "token", "context", "check"):
        assert cmd in r.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (tools/lib/setup.sh installs it): generated, not loaded")
    env = dict(served.env, PATH=f"{BUILD / 'tools'}:{os.environ['PATH']}")
    if shell == "zsh":
        # _describe is compsys's; a stand-in prints the candidates _muster offers
        script = ("source <(muster completion zsh) && (( $+functions[_muster] )) || exit 3; "
                  "_describe() { print -l -- \"${(@P)${@[-1]}}\"; }; ")
        def complete(*words):
            w = " ".join(f"'{x}'" for x in ("muster", *words))
            out = subprocess.run(["zsh", "-c", script + f"words=({w}); CURRENT={len(words) + 1}; _muster"],
                                 env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            return [line.split(":")[0].replace("\\", "") for line in out.stdout.splitlines()]
    else:
        def complete(*words):
            line = " ".join(("muster", *words))
            out = subprocess.run(["fish", "-c", f"muster completion fish | source; complete -C '{line}'"],
                                 env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            return [entry.split("\t")[0] for entry in out.stdout.splitlines()]
    assert set(complete("token", "")) >= {"create", "list", "revoke"}
    assert "--timeout" in complete("--context", "x", "call", "echo", "--t" if shell == "fish" else "")
    assert "exit-codes" in complete("help", "")


def test_contexts_add_use_list_remove(served, tmp_base):
    d = served
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_base / "cfg"),
               MUSTER_RUNTIME_DIR=str(tmp_base / "elsewhere"))  # only a context finds the daemon
    env.pop("MUSTER_CONTEXT", None)
    assert run(env, "nodes").returncode == 3
    r = run(env, "context", "add", "here", "--client-address", d.client_address, "--description", "the test daemon")
    assert r.returncode == 0, r.stderr
    r = run(env, "context", "add", "gone", "--client-address", f"ipc://{tmp_base}/gone.sock")
    assert r.returncode == 0, r.stderr
    path = tmp_base / "cfg" / "muster" / "contexts.json"
    saved = json.loads(path.read_text())
    assert saved["current"] == "here" and set(saved["contexts"]) == {"here", "gone"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    r = run(env, "nodes", "--json")  # the first context added is the current one
    assert r.returncode == 0, r.stderr
    assert {n["name"] for n in json.loads(r.stdout)} >= {"echo", "sleep"}
    lines = run(env, "context", "list").stdout.splitlines()
    assert re.match(r"^\*\s+here\s", lines[1]) or re.match(r"^\*\s+here\s", lines[2]), lines
    assert run(env, "--context", "gone", "nodes").returncode == 3
    assert run(dict(env, MUSTER_CONTEXT="gone"), "nodes").returncode == 3
    assert run(env, "context", "use", "gone").returncode == 0
    assert run(env, "nodes").returncode == 3
    # a flag beats the context
    assert run(env, "--client-address", d.client_address, "nodes").returncode == 0
    r = run(env, "context", "show")
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "gone"
    assert run(env, "context", "remove", "gone").returncode == 0
    assert json.loads(path.read_text()).get("current") is None
    r = run(env, "--context", "gone", "nodes")
    assert r.returncode == 2 and "context 'gone' (--context) is not defined" in r.stderr
    r = run(env, "context", "use", "nope")
    assert r.returncode == 2
    r = run(env, "context", "add", "bad name", "--client-address", "ipc:///x")
    assert r.returncode == 2 and "invalid context name" in r.stderr


def test_node_info_shows_the_spec_and_its_workers(served):
    d = served
    r = muster_cli(d, "node", "info", "sleep")
    assert r.returncode == 0, r.stderr
    assert "node        sleep" in r.stdout
    inputs = r.stdout.split("inputs:")[1].split("outputs:")[0]
    assert re.search(r"^\s+ms\s+int\s+yes\s+-", inputs, re.M), inputs
    assert re.search(r"^\s+cli-w\s+ready\s+muster-cpp", r.stdout, re.M), r.stdout
    j = json.loads(muster_cli(d, "node", "info", "hello", "--json").stdout)
    assert j["inputs"][0]["name"] == "name" and j["inputs"][0]["type"] == "string"
    assert [w["worker_id"] for w in j["served_by"]] == ["cli-w"]
    r = muster_cli(d, "node", "info", "nope")
    assert r.returncode == 1 and "no worker serves node 'nope'" in r.stderr


def test_check_reports_health_and_exits_by_result(served, no_daemon_env):
    r = muster_cli(served, "check")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines()[1:]}
    assert rows["daemon"] == "ok" and rows["endpoint"] == "ok" and rows["tokens"] == "ok"
    assert rows["identity"] == "skip"  # ipc:// needs no CURVE identity
    j = json.loads(muster_cli(served, "check", "--json").stdout)
    assert {c["check"] for c in j} >= {"context", "endpoint", "identity", "daemon", "tokens"}
    # a token that expires within a day is a warning, not a failure
    assert muster_cli(served, "token", "create", "--ttl", "1h").returncode == 0
    r = muster_cli(served, "check")
    assert r.returncode == 0 and re.search(r"^tokens\s+warn\s+1 active", r.stdout, re.M), r.stdout
    r = run(no_daemon_env, "check")
    assert r.returncode == 3
    assert re.search(r"^daemon\s+FAIL\s+UNAVAILABLE", r.stdout, re.M), r.stdout
    assert re.search(r"^endpoint\s+FAIL\s", r.stdout, re.M), r.stdout


def test_piped_progress_is_plain_lines(served):
    r = muster_cli(served, "call", "sleep", '{"ms": 200}', "--progress")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines == [f"progress: {i}/10 slept {i}/10" for i in range(1, 11)], lines
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    assert json.loads(r.stdout)["slept_ms"] >= 200


def test_progress_bar_on_a_terminal(served):
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` is not installed")
    out = subprocess.run(["script", "-qec", f"'{MUSTER}' call sleep '{{\"ms\": 200}}' --progress", "/dev/null"],
                         env=dict(served.env, TERM="xterm"), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    # one line redrawn in place (carriage return, erase line), not a line per report
    assert b"\r\x1b[K[" in out.stdout and b"100% 10/10" in out.stdout, out.stdout
    assert b"progress: 1/10" not in out.stdout


def test_listings_are_aligned_tables(served):
    r = muster_cli(served, "nodes")
    lines = r.stdout.splitlines()
    header = lines[0]
    assert header.split() == ["NODE", "WORKERS", "CAPACITY", "IN-FLIGHT", "QUEUED", "INPUTS", "OUTPUTS"]
    # right-aligned numbers end under their header; text columns start under theirs
    workers_end = header.index("WORKERS") + len("WORKERS")
    inputs_at = header.index("INPUTS")
    for line in lines[1:]:
        assert line[workers_end - 1] == "1" and line[workers_end] == " ", line
        assert line[inputs_at - 1] == " " and line[inputs_at] != " ", line
    r = muster_cli(served, "workers")
    header, row = r.stdout.splitlines()[:2]
    assert row.index("ready") == header.index("STATE")


def test_man_page_is_generated_from_the_help(served, tmp_base):
    r = muster_cli(served, "man")
    assert r.returncode == 0
    page = r.stdout
    assert page.startswith(".TH MUSTER 1 ")
    for section in (".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH COMMANDS", ".SH EXIT STATUS", ".SH FILES"):
        assert section in page
    for usage in ("muster call NODE [INPUTS]", "muster node info NODE", "muster token create",
                  "muster context add NAME", "muster check", "muster completion SHELL"):
        assert f'.SS "{usage}"' in page, usage
    assert r"\fB\-\-timeout\fR \fIDURATION\fR" in page
    out = tmp_base / "muster.1"
    assert muster_cli(served, "man", "--output", out).returncode == 0
    assert out.read_text() == page
    if shutil.which("man"):
        shown = subprocess.run(["man", "-l", str(out)], capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
        assert shown.returncode == 0 and "EXIT STATUS" in shown.stdout
