"""The short fault run (docs/RELIABILITY.md): tools/fault/muster_fault.py against a private
musterd for about 20 s of load while it SIGKILLs workers every 3 s (idempotent and
non-idempotent nodes), SIGKILLs and restarts musterd, runs a worker in a network namespace
behind loss and delay and partitions it for 10 s (skipped, with the reason in the report, where
namespaces cannot be created), runs a worker that never answers work, kills a client with
requests in flight, and ends with SIGTERM while requests are in flight.

Only counts are asserted, never timings: no request lost, none answered twice, no echo result
delivered to the wrong request, the client library and the Python SDK end a call open at a
daemon crash with UNAVAILABLE (no hang), and every request open at SIGTERM gets its reply.
Extra driver arguments can be passed in MUSTER_FAULT_ARGS (e.g. "--grace 20" under TSan).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from conftest import REPO


def test_no_request_is_lost_or_duplicated_under_faults(build_dir, tmp_path):
    report_path = tmp_path / "fault-report.json"
    args = [sys.executable, str(REPO / "tools" / "fault" / "muster_fault.py"), "run",
            "--build", str(build_dir), "--duration", "20", "--json", str(report_path),
            *shlex.split(os.environ.get("MUSTER_FAULT_ARGS", ""))]
    r = subprocess.run(args, capture_output=True, text=True, timeout=240)
    print(r.stdout)
    print(r.stderr[-4000:])
    assert report_path.exists(), f"the driver wrote no report (exit {r.returncode})"
    report = json.loads(report_path.read_text())
    summary = {k: report[k] for k in ("submitted", "completed", "failed", "unavailable", "lost",
                                      "duplicated", "mismatched", "faults", "skipped")}
    assert report["submitted"] > 0, summary
    assert report["lost"] == 0, (summary, report["lost_examples"])
    assert report["duplicated"] == 0, (summary, report["dup_examples"])
    assert report["mismatched"] == 0, summary
    assert report["unsolicited"] == {}, report["unsolicited"]
    assert report["faults"].get("worker SIGKILLs", 0) > 0, summary
    assert report["faults"].get("daemon SIGKILLs", 0) == 1, summary
    for probe in report["probes"]:
        assert probe["ok"], probe  # UNAVAILABLE, not a hang, for a call open at the crash
    assert report["shutdown"]["ok"], report["shutdown"]
    assert report["daemon_check"]["ok"], report["daemon_check"]
    assert not report["chaos_errors"], report["chaos_errors"]
    assert r.returncode == 0, report["problems"]
