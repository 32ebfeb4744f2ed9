"""The failover fault run, short (docs/DURABILITY.md §12, tools/fault/failover.py): a musterd pair
on a real PostgreSQL, the counting workers of the three SDKs and a durable caller, each role in a
network namespace of its own; the active daemon SIGKILLed, SIGSTOPped and partitioned from
PostgreSQL in turn (one each in about 20 s of load). No accepted durable call lost, none
duplicated, no non-idempotent call run twice, every failover completed, each paused or
partitioned old leader stopped by itself, and no namespace left behind.

The long run is the same command with a longer --duration (its figures: DURABILITY.md §12).
Skipped, saying why, where network namespaces cannot be made (not root, no CAP_SYS_ADMIN) or
PostgreSQL is not installed.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import BUILD, REPO

FAULT = REPO / "tools" / "fault"
sys.path.insert(0, str(FAULT))
import failover  # noqa: E402
from postgres_server import absent_reason  # noqa: E402


def test_durable_calls_across_sigkill_sigstop_and_partition_failovers_in_network_namespaces(tmp_path):
    why = failover.namespaces_unavailable() or absent_reason()
    if why:
        pytest.skip(f"the fault run needs network namespaces and PostgreSQL: {why}")
    report_path = tmp_path / "report.json"
    r = subprocess.run([sys.executable, FAULT / "muster_fault.py", "failover", "--build", BUILD,
                        "--duration", "20", "--fault-every", "5", "--first-fault", "2", "--max-seconds", "200",
                        "--json", report_path],  # its work dir: /tmp (the PostgreSQL user must reach it)
                       capture_output=True, text=True, timeout=280)
    out = r.stdout + r.stderr
    assert report_path.exists(), out
    report = json.loads(report_path.read_text())
    assert report["skipped"] == [] or report["skipped"] == ["typescript"], out
    assert report["faults_applied"] == {"sigkill": 1, "sigstop": 1, "partition": 1}, out
    assert report["accepted"] > 0 and report["finished_ok"] > 0, out
    assert (report["lost"], report["duplicated"], report["non_idempotent_run_twice"]) == (0, 0, 0), out
    assert all(e["failover_ms"] is not None for e in report["events"]), out
    assert report["old_leaders_stopped_by_themselves"] == 2, out  # the SIGSTOPped one and the partitioned one
    assert report["problems"] == [], out
    assert r.returncode == 0, out
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert not set(report["namespaces"]) & set(left), left
