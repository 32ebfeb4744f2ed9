"""Seeing what the broker does (issue 14, items 1-3), with real processes: per-node statistics
through the protocol (`muster nodes --stats`, `muster status`), musterd's and the gateway's
Prometheus /metrics checked by `promtool check metrics`, a real Prometheus server scraping
musterd, and the common log formats of musterd, muster-bridge and muster-gateway.

Prometheus and promtool come from Debian's `prometheus` package (tools/lib/setup.sh); every
Prometheus started here has its own config, storage dir and loopback port, and is stopped at
the end of its test.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import BUILD, read_log, spawn, stop, wait_for

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (TRACE|DEBUG|INFO |WARN |ERROR|CRIT ) "
                       r"\[[a-z-]+\] .*$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_url(daemon) -> str:
    m = wait_for(lambda: re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", daemon.log), 10,
                 "musterd to serve /metrics")
    return m.group(1)


def http_get(url: str, timeout: float = 10) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)
    except OSError as e:  # not listening (yet)
        return 0, str(e), {}


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool_check(text: str):
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"promtool check metrics failed:\n{out.stdout}\n{out.stderr}"


def call(run_cli, daemon, node: str, inputs: str = "{}") -> subprocess.CompletedProcess:
    return run_cli(daemon, "call", node, inputs)


# ---- per-node statistics through the protocol ----------------------------------------------------

def test_nodes_stats_counts_outcomes_and_latencies_per_node(daemon, start_worker, run_cli):
    start_worker(daemon).wait_ready()
    for _ in range(3):
        assert call(run_cli, daemon, "hello", '{"name": "Ada"}').returncode == 0
    assert call(run_cli, daemon, "fail").returncode == 1
    assert call(run_cli, daemon, "sleep", '{"ms": 1, "steps": 1}').returncode == 0
    assert call(run_cli, daemon, "nope").returncode == 1  # NO_WORKER: no node entry, a recent failure

    out = run_cli(daemon, "nodes", "--stats", "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    nodes = {n["node"]: n for n in stats["nodes"]}
    assert "nope" not in nodes
    hello = nodes["hello"]
    assert (hello["workspace"], hello["completed"], hello["failed"], hello["workers"]) == ("default", 3, 0, 1)
    assert hello["service"]["count"] == 3 and hello["queue_wait"]["count"] == 3
    assert 0 < hello["service"]["p50_us"] <= hello["service"]["p90_us"] <= hello["service"]["p99_us"]
    assert len(hello["service"]["counts"]) == len(hello["service"]["upper_bounds_us"]) + 1
    assert sum(hello["service"]["counts"]) == 3
    assert hello["rate_1m"] > 0
    fail = nodes["fail"]
    assert (fail["completed"], fail["failed"], fail["failures"]) == (0, 1, {"WORKER_ERROR": 1})
    recent = stats["recent_failures"]
    assert [(f["node"], f["code"]) for f in recent] == [("nope", "NO_WORKER"), ("fail", "WORKER_ERROR")]
    assert recent[1]["message"] == "failed on purpose" and recent[1]["age_ms"] >= recent[0]["age_ms"]

    table = run_cli(daemon, "nodes", "--stats")
    assert table.returncode == 0, table.stderr
    assert re.search(r"^NODE\s+CALLS\s+ERRORS\s+P50\s+P90\s+P99\s+RATE/s", table.stdout, re.M)
    assert re.search(r"^hello\s+3\s+0\s+\S+s\s+\S+s\s+\S+s\s+\d+\.\d\d", table.stdout, re.M), table.stdout
    assert re.search(r"^fail\s+1\s+1\s", table.stdout, re.M), table.stdout
    assert "WORKER_ERROR" in table.stdout and "failed on purpose" in table.stdout

    status = run_cli(daemon, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^\s+hello\s+3 calls\s+0 errors\s+p50\s+\S+\s+p99\s+\S+", status.stdout, re.M), status.stdout


# ---- Prometheus -----------------------------------------------------------------------------------

@needs_promtool
def test_musterd_metrics_pass_promtool_and_count_calls(start_daemon, start_worker, run_cli):
    d = start_daemon("--metrics-address", "127.0.0.1:0")
    start_worker(d).wait_ready()
    for _ in range(2):
        assert call(run_cli, d, "hello", '{"name": "Ada"}').returncode == 0
    assert call(run_cli, d, "fail").returncode == 1
    token = run_cli(d, "token", "create", "--role", "client")
    assert token.returncode == 0, token.stderr
    token_id = re.search(r"token (\S+) \(", token.stderr).group(1)
    assert run_cli(d, "token", "revoke", token_id).returncode == 0
    assert run_cli(d, "token", "revoke", "no-such-token").returncode != 0  # not counted
    url = metrics_url(d)
    status, text, headers = http_get(url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    promtool_check(text)
    s = samples(text)
    assert s['muster_node_requests_total{workspace="default",node="hello",outcome="completed"}'] == 2
    assert s['muster_node_requests_total{workspace="default",node="fail",outcome="worker_error"}'] == 1
    assert s['muster_node_service_seconds_count{workspace="default",node="hello"}'] == 2
    assert s['muster_node_service_seconds_bucket{workspace="default",node="hello",le="+Inf"}'] == 2
    assert s['muster_workers{workspace="default"}'] == 1
    assert s['muster_node_workers{workspace="default",node="hello"}'] == 1
    assert s["muster_open_requests"] == 0
    assert s['muster_revocations_total{kind="token"}'] == 1
    assert s['muster_revocations_total{kind="identity"}'] == 0
    assert s['muster_enrollments_total{result="ok"}'] == 0
    assert s["process_resident_memory_bytes"] > 0 and s["process_open_fds"] > 0
    assert s["process_start_time_seconds"] > 1.7e9
    assert http_get(url.replace("/metrics", "/other"))[0] == 404


def test_metrics_address_must_be_loopback_unless_allowed(build_dir, tmp_base):
    runtime = tmp_base / "run"
    env = {"MUSTER_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([build_dir / "broker" / "musterd", "--data-dir", tmp_base / "data", "--metrics-address",
                          "0.0.0.0:0"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "not a loopback address" in out.stderr and "--metrics-allow-remote" in out.stderr


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)")
def test_a_real_prometheus_scrapes_musterd(start_daemon, start_worker, run_cli, tmp_base):
    d = start_daemon("--metrics-address", "127.0.0.1:0")
    start_worker(d).wait_ready()
    target = metrics_url(d).removeprefix("http://").removesuffix("/metrics")
    prom_dir = tmp_base / "prometheus"
    (prom_dir / "data").mkdir(parents=True)
    config = prom_dir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: musterd\n    scrape_interval: 1s\n"
                      f"    static_configs:\n      - targets: ['{target}']\n")
    port = free_port()
    prom = spawn([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={prom_dir / 'data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], d.env, prom_dir / "prometheus.log")
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: prom.poll() is not None or http_get(f"{api}/-/ready", 2)[0] == 200, 60,
                 "Prometheus to be ready")
        assert prom.poll() is None, read_log(prom)

        def query(expr: str) -> float | None:
            status, body, _ = http_get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), 5)
            assert status == 200, body
            result = json.loads(body)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        # Calls spread over several scrapes, so that rate() sees the counter grow.
        end = time.monotonic() + 30
        rate = None
        while time.monotonic() < end:
            assert call(run_cli, d, "hello", '{"name": "Ada"}').returncode == 0
            rate = query('sum(rate(muster_node_requests_total{node="hello",outcome="completed"}[5s]))')
            if rate and rate > 0:
                break
            time.sleep(0.2)
        assert rate and rate > 0, f"rate() of the request counter never rose above 0:\n{read_log(prom)}"
        p90 = wait_for(lambda: query('histogram_quantile(0.9, sum by (le) '
                                     '(rate(muster_node_service_seconds_bucket{node="hello"}[30s])))'),
                       30, "a service-time quantile from Prometheus")
        assert 0 < p90 < 1, p90
        up = query('up{job="musterd"}')
        assert up == 1
    finally:
        stop(prom)


# ---- the gateway's /metrics ----------------------------------------------------------------------

@needs_promtool
def test_gateway_metrics_pass_promtool_and_count_calls(daemon, start_worker, tmp_base):
    gateway_mod = pytest.importorskip("test_gateway")
    start_worker(daemon, worker_id="cpp-1").wait_ready()
    gw = gateway_mod.Gateway(daemon, tmp_base)
    gateway_mod.add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    token = gw.login()
    status, body, _ = gw.request("POST", "/api/nodes/hello/call", {"inputs": {"name": "Ada"}}, token=token)
    assert status == 200, body
    with gw.ws(token) as ws:
        ws.send("execution.start", {"node": "hello", "inputs": {"name": "Bo"}, "client_ref": "c1"})
        ws.wait("execution.updated", lambda p: p.get("status") == "completed")
    status, text, headers = http_get(f"http://127.0.0.1:{gw.port}/metrics")
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    promtool_check(text)
    s = samples(text)
    assert s['muster_gateway_calls_total{outcome="completed"}'] == 2
    assert s["muster_gateway_call_seconds_count"] == 2
    assert s["muster_gateway_websocket_connections_total"] >= 1
    assert s["muster_gateway_websocket_messages_received_total"] >= 1
    assert s["muster_gateway_websocket_messages_sent_total"] >= 1
    assert s["muster_gateway_http_requests_total"] >= 2
    assert "muster_gateway_uploads_total" in text


OPERATIONS_MD = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"


def documented_families(section: str) -> dict[str, str]:
    """name -> type of every series in the table under `### {section}` of docs/OPERATIONS.md."""
    text = OPERATIONS_MD.read_text()
    m = re.search(rf"^### {re.escape(section)}\n(.*?)(?=^#{{1,3}} )", text, re.S | re.M)
    assert m, f"no section '### {section}' in {OPERATIONS_MD}"
    out = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 2:
            continue
        for name in re.findall(r"`([a-z_:][a-z0-9_:]*)`", cells[0]):
            out[name] = cells[1]
    assert out, f"no series table under '### {section}'"
    return out


def scraped_families(text: str) -> dict[str, str]:
    """name -> type of every `# TYPE` line of a /metrics answer."""
    return {name: kind for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def test_every_series_served_is_documented_in_operations_md_and_back(start_daemon, start_worker, run_cli,
                                                                      tmp_base):
    """docs/OPERATIONS.md lists every metric family musterd and the gateway serve, with its type,
    and nothing they do not serve."""
    gateway_mod = pytest.importorskip("test_gateway")
    d = start_daemon("--metrics-address", "127.0.0.1:0")
    start_worker(d, worker_id="cpp-1").wait_ready()
    assert call(run_cli, d, "hello", '{"name": "Ada"}').returncode == 0
    assert call(run_cli, d, "fail").returncode == 1
    gw = gateway_mod.Gateway(d, tmp_base)
    gateway_mod.add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    status, body, _ = gw.request("POST", "/api/nodes/hello/call", {"inputs": {"name": "Ada"}}, token=gw.login())
    assert status == 200, body

    for section, url in (("musterd", metrics_url(d)), ("muster-gateway", f"http://127.0.0.1:{gw.port}/metrics")):
        status, text, _ = http_get(url)
        assert status == 200, text
        served, documented = scraped_families(text), documented_families(section)
        assert sorted(set(served) - set(documented)) == [], f"served by {section}, missing from OPERATIONS.md"
        assert sorted(set(documented) - set(served)) == [], f"in OPERATIONS.md, not served by {section}"
        assert {n: documented[n] for n in served} == served, f"types of {section}'s series differ from the doc"


# ---- logs -----------------------------------------------------------------------------------------

def check_json_log(text: str, component: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no log lines"
    objects = []
    for line in lines:
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict), line
        assert TIME.match(obj["time"]), line
        assert obj["level"] in ("trace", "debug", "info", "warn", "error", "critical"), line
        assert obj["component"] == component, line
        assert isinstance(obj["message"], str) and obj["message"], line
        objects.append(obj)
    return objects


def test_musterd_logs_json_with_fields(start_daemon, start_worker, run_cli):
    d = start_daemon("--log-format", "json")
    w = start_worker(d).wait_ready()
    assert call(run_cli, d, "hello", '{"name": "Ada"}').returncode == 0
    stop(w.proc)
    wait_for(lambda: "worker detached" in d.log or "worker is gone" in d.log, 10, "the worker to leave")
    d.stop()
    logs = check_json_log(d.log, "musterd")
    attached = [o for o in logs if o["message"] == "worker attached"]
    assert attached and attached[0]["worker_id"] == w.worker_id and attached[0]["nodes"] >= 1
    assert any(o["message"].startswith("musterd") and "ready" in o["message"] for o in logs)


def test_musterd_text_log_lines_follow_the_common_format(daemon, start_worker):
    start_worker(daemon).wait_ready()
    daemon.stop()
    lines = [line for line in daemon.log.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert TEXT_LINE.match(line), line
    assert any(re.search(r" INFO  \[musterd\] worker attached worker_id=\S+ ", line) for line in lines)


def test_bridge_and_gateway_log_json(daemon, tmp_base):
    bridge = BUILD / "bridge" / "muster-bridge"
    gateway = BUILD / "gateway" / "muster-gateway"
    if not bridge.exists() or not gateway.exists():
        pytest.skip("muster-bridge or muster-gateway is not built")
    tokens = tmp_base / "tokens"
    tokens.write_text("tok-w alice write\n")
    port = free_port()
    b = spawn([bridge, "--log-format", "json", "--log-level", "debug", "host", "--listen", f"127.0.0.1:{port}",
               "--tokens-file", tokens], daemon.env, tmp_base / "bridge.log")
    wait_for(lambda: "listening on" in read_log(b) or b.poll() is not None, 10, "the bridge to listen")
    gw_data = tmp_base / "gw-data"
    out = subprocess.run([gateway, "user", "add", "alice", "--data-dir", gw_data, "--workspace", "default",
                          "--role", "call"], input="alice-pw\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    g = spawn([gateway, "--log-format", "json", "--log-level", "debug", "serve", "--data-dir", gw_data,
               "--listen", "127.0.0.1:0"], daemon.env, tmp_base / "gateway.log")
    wait_for(lambda: "listening on" in read_log(g) or g.poll() is not None, 10, "the gateway to listen")
    assert b.poll() is None and g.poll() is None
    stop(b)
    stop(g)
    check_json_log(read_log(b), "bridge")
    check_json_log(read_log(g), "gateway")
    # A bad format is refused before anything starts.
    bad = subprocess.run([gateway, "--log-format", "xml", "serve"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "xml" in bad.stderr


def test_bridge_logs_calls_with_node_and_event_fields(daemon, start_worker, tmp_base):
    """The uplink's log lines about a Hurozo event carry node= and event= (and code= for a
    failure), lifted into fields by --log-format json, whatever bytes the event id holds."""
    bridge_mod = pytest.importorskip("test_bridge")
    start_worker(daemon).wait_ready()
    fake = bridge_mod.FakeHurozo("tok-w")
    try:
        env = dict(daemon.env, HUROZO_TOKEN="tok-w", HUROZO_API_URL=fake.url)
        env.pop("HUROZO_API_TOKEN", None)
        uplink = spawn([bridge_mod.bridge_bin(), "--log-format", "json", "--log-level", "debug", "uplink",
                        "--node", "sleep", "--reconnect-max", "1", "--watch-interval", "0.5"], env,
                       tmp_base / "uplink.log")
        ws = fake.connections.get(timeout=20)
        uuid = 'u-2 "odd" id'
        ws.send_json({"node": "sleep", "inputs": {"ms": -5}, "uuid": uuid})
        assert ws.recv_json() == {"node": "sleep", "outputs": {"slept_ms": None}, "uuid": uuid}
        stop(uplink)
        logs = check_json_log(read_log(uplink), "bridge")
        (failed,) = [o for o in logs if o["message"].startswith("event ") and "failed" in o["message"]]
        assert (failed["node"], failed["event"], failed["code"]) == ("sleep", "u-2 'odd' id", "INVALID_REQUEST")
        assert failed["level"] == "warn"
    finally:
        fake.close()


def test_gateway_pushes_per_node_stats_and_recent_failures(daemon, start_worker, tmp_base):
    gateway_mod = pytest.importorskip("test_gateway")
    start_worker(daemon, worker_id="cpp-1").wait_ready()
    gw = gateway_mod.Gateway(daemon, tmp_base)
    gateway_mod.add_user(gw.data_dir, "alice", "default", "call")
    gw.start()
    with gw.ws() as ws:
        ws.send("execution.start", {"node": "hello", "inputs": {"name": "Ada"}})
        ws.wait("execution.updated", lambda p: p.get("status") == "completed")
        ws.send("execution.start", {"node": "fail", "inputs": {"message": "boom"}})
        ws.wait("execution.updated", lambda p: p.get("status") == "failed")

        def hello_stats(p):
            for s in p.get("services", []):
                if s["name"] == "hello" and s["stats"]["completed"] >= 1:
                    return True
            return False
        services = ws.wait("services.updated", hello_stats)["payload"]["services"]
        stats = next(s["stats"] for s in services if s["name"] == "hello")
        assert set(stats) == {"completed", "failed", "rate_per_s", "p50_ms", "p90_ms", "p99_ms", "queue_wait_p50_ms"}
        assert stats["completed"] == 1 and stats["failed"] == 0
        assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] and stats["rate_per_s"] > 0
        status = ws.wait("node.status", lambda p: any(f["node"] == "fail" for f in p.get("recent_failures", [])))
        failure = next(f for f in status["payload"]["recent_failures"] if f["node"] == "fail")
        assert failure["code"] == "WORKER_ERROR" and "boom" in failure["message"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", failure["time"])


@needs_promtool
def test_enrollments_are_counted_by_result(start_daemon, run_cli):
    zmq = pytest.importorskip("zmq")
    from muster import messages as m

    port = free_port()
    d = start_daemon("--metrics-address", "127.0.0.1:0", "--enrollment-address", f"tcp://127.0.0.1:{port}")
    out = run_cli(d, "token", "create", "--role", "client", "--uses", "1")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    from muster import keys
    daemon_key = keys.parse_token(token).daemon_public_key_z85

    def enroll() -> bool:
        public, secret = zmq.curve_keypair()
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        try:
            s.setsockopt(zmq.LINGER, 0)
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = daemon_key.encode(), public, secret
            s.connect(f"tcp://127.0.0.1:{port}")
            s.send(m.encode(m.EnrollRequest(token, public.decode(), "client", "probe", "probe-host")))
            assert s.poll(10000), "no answer from the enrollment endpoint"
            return m.decode_enroll_response(s.recv_multipart()[-1]).ok
        finally:
            s.close(0)
            ctx.term()

    assert enroll() is True
    assert enroll() is False  # the token had one use
    text = http_get(metrics_url(d))[1]
    promtool_check(text)
    s = samples(text)
    assert s['muster_enrollments_total{result="ok"}'] == 1
    assert s['muster_enrollments_total{result="refused"}'] == 1
