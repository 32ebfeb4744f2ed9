#!/usr/bin/env python3
"""generate.py — writes the golden vectors of tests/vectors/ (format: README.md here).

    python tests/vectors/generate.py           rewrite every NAME.bin / NAME.json
    python tests/vectors/generate.py --check   exit 1 if a committed file differs

Uses the Python SDK (pip install ./worker/python). Valid vectors are encoded with the SDK and
their description is made by decoding the bytes again, so a .json always says what its .bin
holds. A few vectors are built by hand with the flatbuffers runtime to cover what the SDK never
writes (a nested payload without identifier, a field from a newer schema, an unknown value
kind, explicitly written defaults, an absent map-entry value) and the invalid ones.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Dict, List, Tuple

import flatbuffers

from muster import describe as d
from muster import messages as m
from muster import values as v
from muster.errors import ErrorCode
from muster.values import ErrorValue
from muster.wire import Entry as wEntry
from muster.wire import Value as wValue
from muster.wire import Values as wValues
from muster.wire import DaemonMessage as wDaemonMessage
from muster.wire import WorkRequest as wWorkRequest
from muster.wire import Ack as wAck
from muster.wire import WorkerMessage as wWorkerMessage
from muster.wire import Attach as wAttach
from muster.wire import ClientMessage as wClientMessage

HERE = os.path.dirname(os.path.abspath(__file__))
# The flatbuffers Python runtime that wrote the .bin files: another version may lay the same
# messages out differently (still valid, same descriptions), so --check compares .bin bytes
# only under the same runtime; descriptions are always compared.
STAMP = "generated-with.txt"
# The compiler of the Python bindings this script builds with (worker/python/regen.sh insists on
# it); the C++ and TypeScript bindings come from the same flatc.
BINDINGS_FLATC = "2.0.8"
try:
    from flatbuffers._version import __version__ as RUNTIME
except ImportError:  # older runtimes
    RUNTIME = "unknown"

# ---- shared pieces -----------------------------------------------------------------------

ALL_KINDS: Dict[str, object] = {
    "null": None,
    "bool_true": True,
    "bool_false": False,
    "int_zero": 0,
    "int_one": 1,
    "int_minus_one": -1,
    "int_min": -(2**63),
    "int_max": 2**63 - 1,
    "int_2_53_plus_1": 2**53 + 1,
    "float_zero": 0.0,
    "float_negative_zero": -0.0,
    "float_one": 1.0,
    "float_minus_half": -0.5,
    "float_third": 1 / 3,
    "float_small": 2.5e-7,
    "float_max": 1.7976931348623157e308,
    "float_min_subnormal": 5e-324,
    "float_2_63": 9.223372036854776e18,
    "string_empty": "",
    "string_ascii": "Ada Lovelace",
    "string_unicode": "héllo wörld ✓ 日本語 Ελληνικά",
    "string_emoji": "🎉👩‍💻",
    "string_escapes": "quote\" backslash\\ newline\n tab\t nul\u0000 end",
    "bytes_empty": b"",
    "bytes_one": b"\x00",
    "bytes_two": b"\xff\xfe",
    "bytes_all": bytes(range(256)),
    "list_empty": [],
    "list_mixed": [None, True, 7, 7.0, "seven", b"\x07", [], {}, ErrorValue("E", "m")],
    "list_nested": [[[[]]], [[1], [2, [3]]]],
    "map_empty": {},
    "map_order": {"zebra": 1, "apple": 2, "mango": 3, "banana": 4},
    "map_nested": {"a": {"b": {"c": {"d": "deep"}}}, "list": [{"x": 1}, {"y": [2]}]},
    "map_special_keys": {"": "empty key", "$bytes": 1, "$error": "not an error", "ключ": "unicode key"},
    "error": ErrorValue("QUOTA_EXCEEDED", "over quota by 3 requests"),
    "error_empty": ErrorValue("", ""),
}

HELLO_SPEC = m.NodeSpec(
    name="hello",
    description="Says hello",
    category="examples",
    version="1.0.0",
    inputs=[m.Port("name", "string", "who to greet", False, "")],
    outputs=[m.Port("greeting", "string", "Hello <name>"), m.Port("shout", "string", "HELLO <NAME>")],
    parameters=[],
    idempotent=True,
    default_timeout_ms=0,
)

FULL_SPEC = m.NodeSpec(
    name="py.stats:v2_beta-1",
    description="mean, median and stdev of numbers",
    category="math",
    version="2.0",
    inputs=[
        m.Port("values", "list", "numbers", True),
        m.Port("anything", "any"),
        m.Port("nothing", "null", default_value=None),
        m.Port("flag", "bool", default_value=False),
        m.Port("count", "int", default_value=-(2**63)),
        m.Port("ratio", "float", default_value=0.5),
        m.Port("blob", "bytes", default_value=b"\x01\x02"),
        m.Port("opts", "map", default_value={"k": [1, "two"]}),
        m.Port("err", "any", default_value=ErrorValue("C", "M")),
    ],
    outputs=[m.Port("mean", "float"), m.Port("median", "float"), m.Port("stdev", "float")],
    parameters=[m.Port("precision", "int", "digits", False, 6)],
    idempotent=False,
    default_timeout_ms=2**64 - 1,
)

BARE_SPEC = m.NodeSpec(name="x")

# A node whose every call is durable (docs/DURABILITY.md §1), whether or not the caller asks.
DURABLE_SPEC = m.NodeSpec(name="charge", description="charges a card once", idempotent=False, durable=True)

# Admin commands: a token in the real format (muster1.<id>.<secret>.<daemon key>) but with made-up
# bytes, and AdminReport documents shaped like keys/ to_json writes them.
TOKEN_ID = "0123456789abcdef"
TOKEN_TEXT = "muster1.{}.{}.{}".format(
    TOKEN_ID,
    base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode(),
    base64.urlsafe_b64encode(bytes(range(200, 232))).rstrip(b"=").decode(),
)
assert len(TOKEN_TEXT) == 112
IDENTITY_ID = "3f1c9b2e-8d4a-4b6e-9f10-2a3b4c5d6e7f"
TOKEN_LIST_JSON = json.dumps([
    {"id": TOKEN_ID, "role": "worker", "workspace": "default", "label": "gpu-box", "created_at": "2026-11-21T23:29:52.123Z",
     "expires_at": "2026-11-22T23:29:52.123Z", "uses_total": 1, "uses_left": 0, "revoked": False, "state": "used-up",
     "revoked_at": None, "last_used_at": "2026-11-21T23:30:01.000Z"},
    {"id": "fedcba9876543210", "role": "client", "workspace": "research", "label": "", "created_at": "2026-11-21T23:31:00.000Z",
     "expires_at": "2026-11-21T23:41:00.000Z", "uses_total": 3, "uses_left": 3, "revoked": True, "state": "revoked",
     "revoked_at": "2026-11-21T23:32:00.000Z", "last_used_at": None},
], indent=2, ensure_ascii=False)
KEY_JSON = json.dumps(
    {"id": IDENTITY_ID, "public_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "role": "worker", "workspace": "default",
     "name": "gpu-box ✓", "hostname": "gpu-box.lan", "enrolled_at": "2026-11-21T23:30:01.000Z", "token_id": TOKEN_ID,
     "revoked": True, "revoked_at": "2026-11-21T23:45:00.000Z"},
    indent=2, ensure_ascii=False,
)

JOB = (1 << 40) + 7  # a job id of daemon epoch 1 (DURABILITY.md §4: ids from epoch << 40)
CALLER = m.CallerContext("3f1c9b2e-identity", "ada", "research", "client", "trace-0001")
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def valid() -> List[Tuple[str, str, object]]:
    """(name, root, message) of every valid vector the SDK encodes."""
    W, D, C, R = m.WorkerMessage, m.DaemonMessage, m.ClientMessage, m.ClientReply
    return [
        # -- WorkerMessage ------------------------------------------------------------------
        ("worker_attach", "WorkerMessage", W("py-host-1", m.Attach("py-host-1", "host.local", "muster-python/0.1.0", 4242, "0123456789abcdef", 4, [HELLO_SPEC, FULL_SPEC, BARE_SPEC]))),
        ("worker_attach_minimal", "WorkerMessage", W(None, m.Attach("w", nodes=[BARE_SPEC]))),
        ("worker_attach_durable_node", "WorkerMessage", W("w1", m.Attach("w1", sdk="muster-python/0.1.0", capacity=2, nodes=[DURABLE_SPEC, HELLO_SPEC]))),
        ("worker_pong", "WorkerMessage", W("w1", m.Pong(17, "inst-7f3a", [1, 2, U64_MAX]))),
        ("worker_pong_idle", "WorkerMessage", W("w1", m.Pong(0, "inst-7f3a", []))),
        # PROTOCOL.md §7.7: a worker without per-answer Acks, and its Pong listing kept answers.
        ("worker_attach_no_answer_acks", "WorkerMessage", W("w1", m.Attach("w1", sdk="muster-cpp/0.1.0", capacity=128, nodes=[BARE_SPEC], payload_frames=True, no_answer_acks=True))),
        ("worker_pong_answered", "WorkerMessage", W("w1", m.Pong(17, "inst-7f3a", [5], [3, 4, U64_MAX]))),
        # PROTOCOL.md §7.3: a worker that may answer only every k-th ping while it holds nothing.
        ("worker_attach_idle_pongs", "WorkerMessage", W("w1", m.Attach("w1", sdk="muster-cpp/0.1.0", capacity=128, nodes=[BARE_SPEC], payload_frames=True, no_answer_acks=True, idle_pongs=True))),
        # PROTOCOL.md §7.10: a worker that asks for everything on its response connection (no SUB).
        ("worker_attach_direct", "WorkerMessage", W("w1", m.Attach("w1", sdk="muster-cpp/0.1.0", capacity=128, nodes=[BARE_SPEC], payload_frames=True, no_answer_acks=True, batches=True, idle_pongs=True, direct=True))),
        ("worker_progress", "WorkerMessage", W("w1", m.Progress(99, 3, 10, "step 3 of 10"))),
        ("worker_progress_unknown_total", "WorkerMessage", W("w1", m.Progress(U64_MAX, U64_MAX, 0, None))),
        ("worker_result", "WorkerMessage", W("w1", m.Result(99, {"greeting": "Hello Ada", "shout": "HELLO ADA"}))),
        ("worker_result_all_kinds", "WorkerMessage", W("w1", m.Result(100, ALL_KINDS))),
        ("worker_result_no_outputs", "WorkerMessage", W("w1", m.Result(101, None))),
        ("worker_failure", "WorkerMessage", W("w1", m.Failure(99, ErrorCode.WORKER_ERROR, "ValueError: name must not be empty"))),
        ("worker_failure_every_field_default", "WorkerMessage", W("w1", m.Failure(0, ErrorCode.INTERNAL, None))),
        ("worker_detach", "WorkerMessage", W("w1", m.Detach("SIGTERM"))),
        # -- DaemonMessage ------------------------------------------------------------------
        ("daemon_ping", "DaemonMessage", D(m.Ping(12345, "inst-7f3a"))),
        ("daemon_work_request", "DaemonMessage", D(m.WorkRequest(7, "hello", {"name": "Ada"}, {"loud": True, "times": 3}, 30000, 1, CALLER))),
        ("daemon_work_request_retry", "DaemonMessage", D(m.WorkRequest(U64_MAX, "py.stats:v2_beta-1", ALL_KINDS, {}, 1, U32_MAX, m.CallerContext(identity="local")))),
        ("daemon_work_request_minimal", "DaemonMessage", D(m.WorkRequest(0, "x"))),
        # to a worker that attached with payload_frames: the inputs are the frame before this one
        ("daemon_work_request_inputs_in_frame", "DaemonMessage", D(m.WorkRequest(8, "echo", None, {"loud": True}, 30000, 1, CALLER, inputs_in_frame=True))),
        ("daemon_abort", "DaemonMessage", D(m.Abort(7, ErrorCode.TIMEOUT, "deadline of 30000 ms passed"))),
        ("daemon_abort_cancelled", "DaemonMessage", D(m.Abort(8, ErrorCode.CANCELLED, None))),
        ("daemon_attached", "DaemonMessage", D(m.Attached("py-host-1", "inst-7f3a", "w:py-host-1:", "b:", 1000, 3, 16 * 1024 * 1024))),
        ("daemon_ack", "DaemonMessage", D(m.Ack(False))),
        ("daemon_ack_late", "DaemonMessage", D(m.Ack(True))),
        ("daemon_attached_no_answer_acks", "DaemonMessage", D(m.Attached("w1", "inst-7f3a", "w:local:w1:", "b:", 1000, 3, 16 * 1024 * 1024, True))),
        ("daemon_ack_pong_missing", "DaemonMessage", D(m.Ack(False, 17, [4]))),
        ("daemon_attached_idle_pong_every", "DaemonMessage", D(m.Attached("w1", "inst-7f3a", "w:local:w1:", "b:", 1000, 3, 16 * 1024 * 1024, True, 2))),
        ("daemon_attached_direct", "DaemonMessage", D(m.Attached("w1", "inst-7f3a", "w:local:w1:", "b:", 1000, 3, 16 * 1024 * 1024, True, True, 2, True))),
        ("daemon_rejected", "DaemonMessage", D(m.Rejected(ErrorCode.INVALID_REQUEST, "invalid node name 'a b'", False))),
        ("daemon_rejected_reattach", "DaemonMessage", D(m.Rejected(ErrorCode.BAD_MESSAGE, "unknown worker", True))),
        # -- ClientMessage ------------------------------------------------------------------
        ("client_submit", "ClientMessage", C(1, m.Submit("hello", {"name": "Ada"}, {"loud": False}, 5000, True, True, "trace-0001"))),
        ("client_submit_minimal", "ClientMessage", C(2, m.Submit("echo"))),
        ("client_submit_all_kinds", "ClientMessage", C(U64_MAX, m.Submit("echo", ALL_KINDS, None, U64_MAX))),
        # a gateway's Submit on behalf of user ada of workspace alpha (PROTOCOL.md §8.1)
        ("client_submit_on_behalf_of", "ClientMessage", C(21, m.Submit("hello", {"name": "Ada"}), m.OnBehalfOf("ada", "alpha", "call"))),
        ("client_submit_payload_frames", "ClientMessage", C(12, m.Submit("echo", {"blob": b"\x00\x01\x02"}, None, 5000, payload_frames=True))),
        # a durable call (docs/DURABILITY.md): journaled, survives a daemon restart
        ("client_submit_durable", "ClientMessage", C(13, m.Submit("echo", {"x": 1}, None, 5000, durable=True))),
        # resume, ack, get, list, cancel of durable calls (PROTOCOL.md §8, DURABILITY.md §6)
        ("client_job_resume", "ClientMessage", C(14, m.JobResume([m.JobRef(JOB, 15), m.JobRef(JOB + 1, 16), m.JobRef(U64_MAX, U64_MAX)]))),
        ("client_job_resume_empty", "ClientMessage", C(17, m.JobResume([]))),
        ("client_job_ack", "ClientMessage", C(18, m.JobAck([JOB, JOB + 1, U64_MAX]))),
        ("client_job_get", "ClientMessage", C(19, m.JobGet(JOB))),
        ("client_job_list", "ClientMessage", C(20, m.JobList())),
        # one page: at most 50 jobs, those after job JOB (the daemon lists at most 1000 at a time)
        ("client_job_list_page", "ClientMessage", C(22, m.JobList(50, JOB))),
        ("client_job_cancel", "ClientMessage", C(21, m.JobCancel(JOB + 1))),
        # a caller's reconnect (PROTOCOL.md §8.3): a resumable call, and binding two of them to a
        # new connection with what the caller had received of each
        ("client_submit_resumable", "ClientMessage", C(23, m.Submit("echo", {"x": 1}, None, 5000, chunk_window_bytes=4 << 20, resumable=True))),
        ("client_call_resume", "ClientMessage", C(24, m.CallResume([m.CallRef(0x9E3779B97F4A7C15, 25, 0, [m.StreamOffset(2, 3 << 20), m.StreamOffset(4, 0)]), m.CallRef(U64_MAX, U64_MAX, U64_MAX, [])]))),
        ("client_call_resume_minimal", "ClientMessage", C(26, m.CallResume([m.CallRef(1, 27)]))),
        ("client_cancel", "ClientMessage", C(1, m.Cancel())),
        ("client_list_nodes", "ClientMessage", C(3, m.ListNodes())),
        ("client_list_workers", "ClientMessage", C(4, m.ListWorkers())),
        ("client_get_status", "ClientMessage", C(5, m.GetStatus())),
        ("client_get_node_stats", "ClientMessage", C(12, m.GetNodeStats())),
        ("client_token_create", "ClientMessage", C(6, m.TokenCreate("client", 3_600_000, 5, "research", "Ada's laptop"))),
        ("client_token_create_defaults", "ClientMessage", C(7, m.TokenCreate())),
        ("client_token_create_limits", "ClientMessage", C(U64_MAX, m.TokenCreate("admin", U64_MAX, U32_MAX, "", ""))),
        ("client_token_list", "ClientMessage", C(8, m.TokenList())),
        ("client_token_revoke", "ClientMessage", C(9, m.TokenRevoke(TOKEN_ID))),
        ("client_key_list", "ClientMessage", C(10, m.KeyList())),
        ("client_key_revoke", "ClientMessage", C(11, m.KeyRevoke(IDENTITY_ID))),
        # -- ClientReply --------------------------------------------------------------------
        ("reply_accepted", "ClientReply", R(1, m.Accepted(False))),
        ("reply_accepted_queued", "ClientReply", R(1, m.Accepted(True))),
        ("reply_accepted_durable", "ClientReply", R(13, m.Accepted(True, (1 << 40) + 7))),
        ("reply_accepted_resumable", "ClientReply", R(23, m.Accepted(False, 0, 0x9E3779B97F4A7C15))),
        ("reply_progress", "ClientReply", R(1, m.Progress(1, 50, 100, "half way"))),
        # a durable call's terminal replies carry its job id (acknowledged with JobAck)
        ("reply_result_durable", "ClientReply", R(15, m.Result(15, {"x": 1}, job_id=JOB))),
        ("reply_failure_durable", "ClientReply", R(16, m.Failure(16, ErrorCode.WORKER_LOST, "worker 'w1' was lost and the node is not idempotent", JOB + 1))),
        ("reply_failure_no_such_job", "ClientReply", R(17, m.Failure(17, ErrorCode.INVALID_REQUEST, "no such job (expired or acknowledged)"))),
        ("reply_job_info", "ClientReply", R(19, m.JobInfo(JOB, m.JobState.RUNNING, "echo", "default", 1796554041123, "py-host-1", 1, ErrorCode.NONE, 0))),
        ("reply_job_info_cancelled", "ClientReply", R(21, m.JobInfo(JOB + 1, m.JobState.FINISHED, "charge", "research", 1796554041123, None, 2, ErrorCode.CANCELLED, 1796554042500))),
        ("reply_job_info_list", "ClientReply", R(20, m.JobInfoList([
            m.JobInfo(JOB, m.JobState.QUEUED, "echo", "default", 1796554041123),
            m.JobInfo(JOB + 1, m.JobState.RUNNING, "echo", "default", 1796554041124, "py-host-1", 1),
            m.JobInfo(JOB + 2, m.JobState.RECOVERING, "charge", "default", 1796554041125, "cpp-1", 1),
            m.JobInfo(U64_MAX, m.JobState.FINISHED, "charge", "default", U64_MAX, None, U32_MAX, ErrorCode.NONE, U64_MAX),
        ]))),
        ("reply_job_info_list_empty", "ClientReply", R(20, m.JobInfoList([]))),
        ("reply_job_info_list_more", "ClientReply", R(22, m.JobInfoList([
            m.JobInfo(JOB + 1, m.JobState.RUNNING, "echo", "default", 1796554041124, "py-host-1", 1),
        ], True))),
        ("reply_result", "ClientReply", R(1, m.Result(1, {"greeting": "Hello Ada", "shout": "HELLO ADA"}))),
        ("reply_result_all_kinds", "ClientReply", R(2, m.Result(2, ALL_KINDS))),
        ("reply_failure", "ClientReply", R(1, m.Failure(1, ErrorCode.NO_WORKER, "no worker serves node 'nope'"))),
        ("reply_failure_bad_message", "ClientReply", R(0, m.Failure(0, ErrorCode.BAD_MESSAGE, "not a ClientMessage"))),
        *[
            (f"reply_failure_{c.name.lower()}", "ClientReply", R(10 + c.value, m.Failure(10 + c.value, c, f"{c.name} message")))
            for c in ErrorCode
            if c not in (ErrorCode.NO_WORKER, ErrorCode.BAD_MESSAGE)
        ],
        ("reply_node_list", "ClientReply", R(3, m.NodeList([m.NodeInfo(HELLO_SPEC, "default", 2, 8, 1, 0), m.NodeInfo(FULL_SPEC, "research", 1, U32_MAX, U32_MAX, U32_MAX)]))),
        ("reply_node_list_empty", "ClientReply", R(3, m.NodeList([]))),
        ("reply_worker_list", "ClientReply", R(4, m.WorkerList([
            m.WorkerInfo("py-host-1", "host.local", "muster-python/0.1.0", 4242, "ready", 4, 1, ["hello", "echo"], "default", "local", 120000, 150),
            m.WorkerInfo("cpp-1", None, None, 0, "confirming", 1, 0, [], None, None, 0, 0),
        ]))),
        # a worker attached with Attach.direct: one connection, no SUB (PROTOCOL.md §7.10)
        ("reply_worker_list_direct", "ClientReply", R(4, m.WorkerList([
            m.WorkerInfo("cpp-2", "box", "muster-cpp/0.1.0", 77, "ready", 2, 0, ["hello"], "default", "local", 5000, 12, True),
        ]))),
        ("reply_status_report", "ClientReply", R(5, m.StatusReport(
            "0.1.0", "inst-7f3a", 3_600_000, 3, 5, 2, 7, 1000, 950, 43,
            [m.CodeCount(ErrorCode.TIMEOUT, 40), m.CodeCount(ErrorCode.WORKER_ERROR, 3)], 4, 12.5,
        ))),
        ("reply_status_report_empty", "ClientReply", R(6, m.StatusReport())),
        # durable calls restored after a restart, waiting for their worker (DURABILITY.md §5)
        ("reply_status_report_recovering", "ClientReply", R(7, m.StatusReport(
            "0.1.0", "inst-7f3a", 1_200, 1, 1, 3, 0, 0, 0, 0, [], 0, 0.0, 2,
        ))),
        ("reply_node_stats_report", "ClientReply", R(12, m.NodeStatsReport(
            [m.NodeStats("default", "hello", 2, 1, 3, 950, 43, [m.CodeCount(ErrorCode.TIMEOUT, 40), m.CodeCount(ErrorCode.CANCELLED, 3)], 12.5,
                         m.LatencyHistogram([32, 48, 64], [5, 0, 2, 1], 8, 1_000_250, 40, 64, 64),
                         m.LatencyHistogram([32, 48, 64], [0, 1, 1, 6], 8, U64_MAX, 64, 64, 64)),
             m.NodeStats("research", "py.stats:v2_beta-1", U32_MAX, 0, 0, U64_MAX, 0, [], 0.0, m.LatencyHistogram(), None)],
            [m.RecentFailure("default", "hello", ErrorCode.TIMEOUT, "timed out after 5000 ms; worker 'w1' was told to abort", 1500),
             m.RecentFailure("default", "", ErrorCode.INVALID_REQUEST, "invalid node name 'a b'", U64_MAX)],
        ))),
        ("reply_node_stats_report_empty", "ClientReply", R(12, m.NodeStatsReport())),
        ("reply_token_created", "ClientReply", R(6, m.TokenCreated(TOKEN_TEXT, TOKEN_ID, "2026-11-22T23:29:52.123Z"))),
        ("reply_token_created_empty", "ClientReply", R(6, m.TokenCreated())),
        ("reply_admin_report_tokens", "ClientReply", R(8, m.AdminReport(TOKEN_LIST_JSON))),
        ("reply_admin_report_key", "ClientReply", R(11, m.AdminReport(KEY_JSON))),
        ("reply_admin_report_empty_list", "ClientReply", R(10, m.AdminReport("[]"))),
        # -- Enrollment ---------------------------------------------------------------------
        ("enroll_request", "EnrollRequest", m.EnrollRequest("mst1.token-id.secret", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "worker", "gpu-box", "gpu-box.lan")),
        ("enroll_request_minimal", "EnrollRequest", m.EnrollRequest("t", "k")),
        ("enroll_response_ok", "EnrollResponse", m.EnrollResponse(True, "3f1c9b2e-identity", "worker", "research", "gpu-box", ErrorCode.NONE, None)),
        ("enroll_response_error", "EnrollResponse", m.EnrollResponse(False, None, None, None, None, ErrorCode.PERMISSION_DENIED, "token expired")),
        # -- Values -------------------------------------------------------------------------
        ("values_all_kinds", "Values", ALL_KINDS),
        ("values_empty", "Values", {}),
        ("values_deep", "Values", {"deep": _nest(80)}),  # 123 tables deep: top-level limit is 128
        # -- Batches (PROTOCOL.md §2.2): the opt-ins of a worker, the daemon and a client ----
        ("worker_attach_batches", "WorkerMessage", W("w1", m.Attach("w1", sdk="muster-cpp/0.1.0", capacity=128, nodes=[BARE_SPEC], payload_frames=True, no_answer_acks=True, batches=True))),
        ("daemon_attached_batches", "DaemonMessage", D(m.Attached("w1", "inst-7f3a", "w:local:w1:", "b:", 1000, 3, 16 * 1024 * 1024, True, True))),
        ("client_submit_batch_replies", "ClientMessage", C(14, m.Submit("echo", {"x": 1}, None, 5000, payload_frames=True, batch_replies=True))),
        # the envelope: each item holds the bytes of the vector named in the comment
        ("worker_batch", "WorkerMessage", W("w1", m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            W("w1", m.Result(99, {"greeting": "Hello Ada", "shout": "HELLO ADA"})),  # worker_result
            W("w1", m.Failure(99, ErrorCode.WORKER_ERROR, "ValueError: name must not be empty")),  # worker_failure
            W("w1", m.Progress(99, 3, 10, "step 3 of 10")),  # worker_progress
        )]))),
        ("daemon_batch", "DaemonMessage", D(m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            D(m.WorkRequest(7, "hello", {"name": "Ada"}, {"loud": True, "times": 3}, 30000, 1, CALLER)),  # daemon_work_request
            D(m.Abort(7, ErrorCode.TIMEOUT, "deadline of 30000 ms passed")),  # daemon_abort
        )]))),
        ("client_batch", "ClientMessage", C(0, m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            C(1, m.Submit("hello", {"name": "Ada"}, {"loud": False}, 5000, True, True, "trace-0001")),  # client_submit
            C(2, m.Submit("echo")),  # client_submit_minimal
            C(1, m.Cancel()),  # client_cancel
        )]))),
        ("reply_batch", "ClientReply", R(0, m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            R(1, m.Accepted(False)),  # reply_accepted
            R(1, m.Result(1, {"greeting": "Hello Ada", "shout": "HELLO ADA"})),  # reply_result
        )]))),
        # -- pushed events (PROTOCOL.md §8.2): a Watch, its snapshot, each kind of delta -------
        ("client_watch", "ClientMessage", C(30, m.Watch(True, True, True))),
        ("client_watch_nodes", "ClientMessage", C(31, m.Watch(nodes=True), m.OnBehalfOf("ada", "alpha", "read"))),
        ("reply_event_snapshot", "ClientReply", R(30, m.Event(1, m.EventKind.SNAPSHOT,
            [m.NodeInfo(HELLO_SPEC, "default", 2, 8, 1, 0)],
            [m.WorkerInfo("py-host-1", "host.local", "muster-python/0.1.0", 4242, "ready", 4, 1, ["hello"], "default", "local", 120000, 150)],
            [m.CallInfo(7, 0, "hello", m.JobState.RUNNING, "py-host-1", 1, ErrorCode.NONE, "inst-7f3a-7")]))),
        ("reply_event_snapshot_empty", "ClientReply", R(31, m.Event(1, m.EventKind.SNAPSHOT, [], []))),
        ("reply_event_node_added", "ClientReply", R(30, m.Event(2, m.EventKind.NODE_ADDED, node=m.NodeInfo(FULL_SPEC, "default", 1, 2, 0, 0)))),
        ("reply_event_node_changed", "ClientReply", R(30, m.Event(3, m.EventKind.NODE_CHANGED, node=m.NodeInfo(HELLO_SPEC, "default", 3, 12, 0, 0)))),
        ("reply_event_node_removed", "ClientReply", R(30, m.Event(4, m.EventKind.NODE_REMOVED, node=m.NodeInfo(BARE_SPEC, "default", 0, 0, 0, 0)))),
        ("reply_event_worker_joined", "ClientReply", R(30, m.Event(5, m.EventKind.WORKER_JOINED, worker=m.WorkerInfo("cpp-1", "box", "muster-cpp/0.1.0", 77, "confirming", 2, 0, ["hello"], "default", "local", 0, 0)))),
        ("reply_event_worker_changed", "ClientReply", R(30, m.Event(6, m.EventKind.WORKER_CHANGED, worker=m.WorkerInfo("cpp-1", "box", "muster-cpp/0.1.0", 77, "ready", 2, 0, ["hello"], "default", "local", 100, 0)))),
        ("reply_event_worker_left", "ClientReply", R(30, m.Event(7, m.EventKind.WORKER_LEFT, worker=m.WorkerInfo("cpp-1", "box", "muster-cpp/0.1.0", 77, "ready", 2, 0, ["hello"], "default", "local", 5000, 3000)))),
        ("reply_event_call_state", "ClientReply", R(30, m.Event(8, m.EventKind.CALL_STATE, call=m.CallInfo(9, JOB, "charge", m.JobState.FINISHED, None, 2, ErrorCode.WORKER_LOST, "trace-0001")))),
        ("reply_event_overflow", "ClientReply", R(30, m.Event(U64_MAX, m.EventKind.OVERFLOW))),
        # -- Streams: items and credit (PROTOCOL.md §7.8, docs/STREAMS.md §1-§2) ------------
        ("client_submit_stream", "ClientMessage", C(30, m.Submit("count", {"n": 3}, None, 5000, stream_window_items=64, stream_window_bytes=4 * 1024 * 1024))),
        ("daemon_work_request_stream", "DaemonMessage", D(m.WorkRequest(31, "count", {"n": 3}, None, 5000, 1, CALLER, stream_window_items=64, stream_window_bytes=4 * 1024 * 1024))),
        ("worker_item", "WorkerMessage", W("w1", m.Item(31, 0, {"i": 0, "label": "first"}))),
        ("worker_item_all_kinds", "WorkerMessage", W("w1", m.Item(31, U64_MAX - 1, ALL_KINDS))),
        ("worker_item_no_values", "WorkerMessage", W("w1", m.Item(31, 1, None))),
        ("reply_item", "ClientReply", R(30, m.Item(30, 0, {"i": 0, "label": "first"}))),
        ("client_credit", "ClientMessage", C(30, m.Credit(30, 0, 128, 8 * 1024 * 1024))),
        ("client_credit_limits", "ClientMessage", C(U64_MAX, m.Credit(U64_MAX, U32_MAX, U64_MAX, U64_MAX))),
        ("daemon_credit", "DaemonMessage", D(m.Credit(31, 0, 128, 8 * 1024 * 1024))),
        ("worker_batch_items", "WorkerMessage", W("w1", m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            W("w1", m.Item(31, 0, {"i": 0, "label": "first"})),  # worker_item
            W("w1", m.Item(31, 1, None)),  # worker_item_no_values
            W("w1", m.Result(31, None)),
        )]))),
        # -- Chunked values (PROTOCOL.md §7.9, docs/STREAMS.md §3) ----------------------------
        ("values_chunked", "Values", {"data": CHUNKED_IN, "small": b"inline", "last": CHUNKED_LIMITS}),
        ("client_submit_chunked", "ClientMessage", C(40, m.Submit("echo", {"data": CHUNKED_IN}, None, 60000, chunk_window_bytes=4 * 1024 * 1024))),
        ("daemon_work_request_chunked", "DaemonMessage", D(m.WorkRequest(41, "echo", {"data": CHUNKED_IN}, None, 60000, 1, CALLER, chunk_window_bytes=4 * 1024 * 1024))),
        ("worker_credit_chunk", "WorkerMessage", W("w1", m.Credit(41, 1, 0, 4 * 1024 * 1024))),
        ("reply_credit_chunk", "ClientReply", R(40, m.Credit(40, 1, 0, 4 * 1024 * 1024))),
        ("client_credit_chunk", "ClientMessage", C(40, m.Credit(40, 2, 0, 8 * 1024 * 1024))),
        ("client_credit_chunk_limits", "ClientMessage", C(U64_MAX, m.Credit(U64_MAX, U32_MAX, U64_MAX, U64_MAX, U64_MAX))),
        ("client_chunk", "ClientMessage", C(40, m.Chunk(40, 1, 0, CHUNK_DATA))),
        ("client_chunk_limits", "ClientMessage", C(U64_MAX, m.Chunk(U64_MAX, U32_MAX, U64_MAX - 1, b"\xff"))),
        ("daemon_chunk", "DaemonMessage", D(m.Chunk(41, 1, 1024 * 1024, CHUNK_DATA))),
        ("worker_chunk", "WorkerMessage", W("w1", m.Chunk(41, 2, 0, CHUNK_DATA))),
        ("reply_chunk", "ClientReply", R(40, m.Chunk(40, 2, 3 * 1024 * 1024, CHUNK_DATA))),
        ("worker_result_chunked", "WorkerMessage", W("w1", m.Result(41, {"data": CHUNKED_OUT}))),
        ("reply_result_chunked", "ClientReply", R(40, m.Result(40, {"data": CHUNKED_OUT}))),
        ("worker_batch_chunks", "WorkerMessage", W("w1", m.Batch([m.BatchItem(_bytes_of(x)) for x in (
            W("w1", m.Credit(41, 1, 0, 4 * 1024 * 1024)),  # worker_credit_chunk
            W("w1", m.Chunk(41, 2, 0, CHUNK_DATA)),  # worker_chunk
            W("w1", m.Result(41, {"data": CHUNKED_OUT})),  # worker_result_chunked
        )]))),
        # -- Resumption of a chunked stream (PROTOCOL.md §7.9 "Resumption") -------------------
        # The worker lost input chunks: it has 3 MiB of stream 1 and grants 7 MiB in total.
        ("worker_credit_resume", "WorkerMessage", W("w1", m.Credit(41, 1, 0, 7 * 1024 * 1024, 3 * 1024 * 1024, True))),
        # ... or none of stream 3 yet (a resume from offset 0).
        ("worker_credit_resume_zero", "WorkerMessage", W("w1", m.Credit(41, 3, 0, 4 * 1024 * 1024, 0, True))),
        ("reply_credit_resume", "ClientReply", R(40, m.Credit(40, 1, 0, 7 * 1024 * 1024, 3 * 1024 * 1024, True))),
        # The caller lost output chunks of stream 2: it has 5 MiB; the daemon tells the worker.
        ("client_credit_resume", "ClientMessage", C(40, m.Credit(40, 2, 0, 13 * 1024 * 1024, 5 * 1024 * 1024, True))),
        ("daemon_credit_resume", "DaemonMessage", D(m.Credit(41, 2, 0, 13 * 1024 * 1024, 5 * 1024 * 1024, True))),
    ]


# A 256 MiB input on the caller's stream 1 (its sha256 is the sha256 of 256 MiB of zeros), an
# output on the worker's stream 2, and the extremes of a chunked value's fields.
CHUNKED_IN = v.ChunkedValue(1, 256 * 1024 * 1024, bytes.fromhex("a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484"))
CHUNKED_OUT = v.ChunkedValue(2, 5, bytes.fromhex("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"))
CHUNKED_LIMITS = v.ChunkedValue(U32_MAX, U64_MAX, bytes(range(32)))
CHUNK_DATA = bytes(range(256)) * 4  # 1 KiB


def _bytes_of(message) -> bytes:
    return m.encode(message)


def _nest(n: int):
    x: object = "bottom"
    for i in range(n):
        x = [x] if i % 2 else {"k": x}
    return x


# ---- hand-built buffers --------------------------------------------------------------------


def _values_no_identifier() -> bytes:
    b = flatbuffers.Builder(64)
    k = b.CreateString("name")
    s = b.CreateString("Ada")
    wValue.Start(b)
    wValue.AddKind(b, v.STRING)
    wValue.AddStringValue(b, s)
    val = wValue.End(b)
    wEntry.Start(b)
    wEntry.AddKey(b, k)
    wEntry.AddValue(b, val)
    e = wEntry.End(b)
    wValues.StartEntriesVector(b, 1)
    b.PrependUOffsetTRelative(e)
    vec = b.EndVector()
    wValues.Start(b)
    wValues.AddEntries(b, vec)
    b.Finish(wValues.End(b))  # no file identifier
    return bytes(b.Output())


def daemon_work_request_nested_no_identifier() -> bytes:
    nested = _values_no_identifier()
    b = flatbuffers.Builder(128)
    node = b.CreateString("hello")
    inputs = m.nested_vector(b, nested)
    wWorkRequest.Start(b)
    wWorkRequest.AddRequestId(b, 11)
    wWorkRequest.AddNode(b, node)
    wWorkRequest.AddInputs(b, inputs)
    wr = wWorkRequest.End(b)
    wDaemonMessage.Start(b)
    wDaemonMessage.AddBodyType(b, 2)
    wDaemonMessage.AddBody(b, wr)
    b.Finish(wDaemonMessage.End(b), file_identifier=b"MSDM")
    return bytes(b.Output())


def daemon_ping_future_field() -> bytes:
    """A Ping from a newer schema with two more fields (slots 2 and 3): ignored by readers."""
    b = flatbuffers.Builder(64)
    inst = b.CreateString("inst-new")
    extra = b.CreateString("a field this schema does not have")
    b.StartObject(4)
    b.PrependUint64Slot(0, 5, 0)
    b.PrependUOffsetTRelativeSlot(1, inst, 0)
    b.PrependUOffsetTRelativeSlot(2, extra, 0)
    b.PrependUint32Slot(3, 77, 0)
    ping = b.EndObject()
    wDaemonMessage.Start(b)
    wDaemonMessage.AddBodyType(b, 1)
    wDaemonMessage.AddBody(b, ping)
    b.Finish(wDaemonMessage.End(b), file_identifier=b"MSDM")
    return bytes(b.Output())


def daemon_ack_forced_defaults() -> bytes:
    """Ack with `late: false` written explicitly (force_defaults): same as absent."""
    b = flatbuffers.Builder(64)
    b.ForceDefaults(True)
    wAck.Start(b)
    wAck.AddLate(b, False)
    ack = wAck.End(b)
    wDaemonMessage.Start(b)
    wDaemonMessage.AddBodyType(b, 5)
    wDaemonMessage.AddBody(b, ack)
    b.Finish(wDaemonMessage.End(b), file_identifier=b"MSDM")
    return bytes(b.Output())


def values_unknown_kind_and_absent_entry_value() -> bytes:
    """{"future": <kind 200 from a newer writer: reads as null>, "absent": <Entry without
    value: null>, "kind_mismatch": <kind Int with only string_value set: reads as 0>}."""
    b = flatbuffers.Builder(128)
    keys = [b.CreateString(k) for k in ("future", "absent", "kind_mismatch")]
    s = b.CreateString("ignored")
    wValue.Start(b)
    wValue.AddKind(b, 200)
    wValue.AddStringValue(b, s)
    future = wValue.End(b)
    s2 = b.CreateString("also ignored")
    wValue.Start(b)
    wValue.AddKind(b, v.INT)
    wValue.AddStringValue(b, s2)
    mismatch = wValue.End(b)
    entries = []
    for k, val in zip(keys, (future, None, mismatch)):
        wEntry.Start(b)
        wEntry.AddKey(b, k)
        if val is not None:
            wEntry.AddValue(b, val)
        entries.append(wEntry.End(b))
    wValues.StartEntriesVector(b, len(entries))
    for e in reversed(entries):
        b.PrependUOffsetTRelative(e)
    vec = b.EndVector()
    wValues.Start(b)
    wValues.AddEntries(b, vec)
    b.Finish(wValues.End(b), file_identifier=b"MSVL")
    return bytes(b.Output())


def handmade_valid() -> List[Tuple[str, str, bytes]]:
    return [
        ("daemon_work_request_nested_no_identifier", "DaemonMessage", daemon_work_request_nested_no_identifier()),
        ("daemon_ping_future_field", "DaemonMessage", daemon_ping_future_field()),
        ("daemon_ack_forced_defaults", "DaemonMessage", daemon_ack_forced_defaults()),
        ("values_unknown_kind_and_absent_entry_value", "Values", values_unknown_kind_and_absent_entry_value()),
    ]


# ---- invalid buffers -----------------------------------------------------------------------


def _attach_without_worker_id() -> bytes:
    b = flatbuffers.Builder(64)
    sdk = b.CreateString("muster-python/0.1.0")
    wAttach.Start(b)
    wAttach.AddSdk(b, sdk)
    wAttach.AddCapacity(b, 2)
    att = wAttach.End(b)
    wWorkerMessage.Start(b)
    wWorkerMessage.AddBodyType(b, 1)
    wWorkerMessage.AddBody(b, att)
    b.Finish(wWorkerMessage.End(b), file_identifier=b"MSWK")
    return bytes(b.Output())


def _worker_message_with_body_type(body_type: int) -> bytes:
    """A WorkerMessage whose body table is absent, with the given body_type."""
    b = flatbuffers.Builder(64)
    wid = b.CreateString("w1")
    wWorkerMessage.Start(b)
    wWorkerMessage.AddWorkerId(b, wid)
    wWorkerMessage.AddBodyType(b, body_type)
    b.Finish(wWorkerMessage.End(b), file_identifier=b"MSWK")
    return bytes(b.Output())


def _client_message_with_empty_table(body_type: int) -> bytes:
    """A ClientMessage whose body is an empty table of member ``body_type`` (for a member with a
    required field, such as TokenRevoke or KeyRevoke, that is a missing required field)."""
    b = flatbuffers.Builder(64)
    b.StartObject(1)
    body = b.EndObject()
    wClientMessage.Start(b)
    wClientMessage.AddRequestId(b, 1)
    wClientMessage.AddBodyType(b, body_type)
    wClientMessage.AddBody(b, body)
    b.Finish(wClientMessage.End(b), file_identifier=b"MSCL")
    return bytes(b.Output())


def _patch(data: bytes, old: bytes, new: bytes) -> bytes:
    i = data.index(old)
    return data[:i] + new + data[i + len(old) :]


def invalid() -> List[Tuple[str, str, bytes, str]]:
    """(name, root, bytes, why) of buffers every reader must refuse."""
    ping = m.encode(m.DaemonMessage(m.Ping(1, "inst")))
    attach = m.encode(m.WorkerMessage("w1", m.Attach("w1", nodes=[HELLO_SPEC])))
    pong = m.encode(m.WorkerMessage("w1", m.Pong(1, "inst", [0x0102030405060708])))
    at = pong.index(bytes.fromhex("0807060504030201")) - 4  # the vector's length field
    pong_too_long = pong[:at] + b"\xff\xff\x00\x00" + pong[at + 4 :]
    submit = m.encode(m.ClientMessage(1, m.Submit("hello", {"name": "Ada"})))
    not_values = b"\x10\x00\x00\x00MSVL" + b"\xee" * 16
    return [
        ("invalid_empty", "WorkerMessage", b"", "zero bytes"),
        ("invalid_too_short", "DaemonMessage", ping[:7], "shorter than a root offset and an identifier"),
        ("invalid_wrong_identifier", "WorkerMessage", ping, "a DaemonMessage (MSDM) where a WorkerMessage (MSWK) is expected"),
        ("invalid_identifier_only", "ClientMessage", b"\x08\x00\x00\x00MSCL\x00\x00\x00\x00", "identifier right, root offset points at the identifier"),
        ("invalid_truncated", "WorkerMessage", attach[: len(attach) // 2], "an Attach cut in half"),
        ("invalid_root_offset_out_of_range", "DaemonMessage", b"\xff\xff\x00\x00" + ping[4:], "root offset beyond the end"),
        ("invalid_string_not_terminated", "DaemonMessage", _patch(ping, b"inst\x00", b"instX"), "Ping.instance loses its zero terminator"),
        ("invalid_vector_too_long", "WorkerMessage", pong_too_long, "Pong.in_flight claims 65535 elements"),
        ("invalid_missing_required", "WorkerMessage", _attach_without_worker_id(), "Attach without its required worker_id"),
        ("invalid_nested_values", "DaemonMessage", m.encode(m.DaemonMessage(m.WorkRequest(3, "hello", not_values))), "WorkRequest.inputs is not a Values buffer"),
        ("invalid_nested_values_empty", "ClientMessage", m.encode(m.ClientMessage(1, m.Submit("hello", b""))), "Submit.inputs is a present but empty vector: the C++ Verifier requires a nested buffer of at least 12 bytes"),
        ("invalid_nested_too_deep", "ClientMessage", m.encode(m.ClientMessage(1, m.Submit("x", {"d": _list_nest(62)}))), "nested Values 65 tables deep (nested buffers are verified with depth 64)"),
        ("invalid_truncated_submit", "ClientMessage", submit[:-9], "a Submit missing its last bytes"),
        ("invalid_token_revoke_missing_id", "ClientMessage", _client_message_with_empty_table(8), "TokenRevoke without its required id"),
        ("invalid_key_revoke_missing_id", "ClientMessage", _client_message_with_empty_table(10), "KeyRevoke without its required id"),
        ("invalid_body_none", "WorkerMessage", _worker_message_with_body_type(0), "body_type NONE: verifiable, but a BadMessage (PROTOCOL.md §3 rule 4)"),
        ("invalid_body_missing", "WorkerMessage", _worker_message_with_body_type(1), "body_type Attach with no body table: verifiable, but a BadMessage"),
    ]


def _list_nest(n: int):
    x: list = []
    for _ in range(n):
        x = [x]
    return x


# ---- writing -------------------------------------------------------------------------------


def build() -> Dict[str, bytes]:
    """file name -> content for every vector."""
    files: Dict[str, bytes] = {}

    def add(name: str, data: bytes, desc: dict) -> None:
        assert name not in {n.rsplit(".", 1)[0] for n in files}, name
        files[name + ".bin"] = data
        files[name + ".json"] = d.dumps(desc).encode("utf-8")

    for name, root, msg in valid():
        data = v.encode_values(msg) if root == "Values" else m.encode(msg)
        desc = d.describe_bytes(data, root)
        # The description must be what was meant to be written.
        assert d.same(desc, d.describe(root, msg)), name
        add(name, data, desc)
    for name, root, data in handmade_valid():
        add(name, data, d.describe_bytes(data, root))
    for name, root, data, why in invalid():
        add(name, data, {"root": root, "valid": False, "why": why})
    return files


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    p.add_argument("--dir", default=HERE, help="where the vectors live (default: this directory)")
    args = p.parse_args(argv)
    files = build()
    files[STAMP] = (f"flatbuffers {RUNTIME}\n"
                    f"# the Python flatbuffers runtime above wrote the .bin files, with bindings\n"
                    f"# generated by flatc {BINDINGS_FLATC} (worker/python/src/muster/wire)\n").encode()
    existing = {f for f in os.listdir(args.dir) if f.endswith((".bin", ".json")) or f == STAMP}
    if args.check:
        stamp_path = os.path.join(args.dir, STAMP)
        same_runtime = os.path.exists(stamp_path) and open(stamp_path, "rb").read() == files[STAMP]
        bad = []
        for name, content in sorted(files.items()):
            path = os.path.join(args.dir, name)
            if not os.path.exists(path):
                bad.append(name)
            elif open(path, "rb").read() != content and name != STAMP:
                if name.endswith(".bin") and not same_runtime:
                    continue  # another runtime may lay the same message out differently
                bad.append(name)
        bad += sorted(existing - set(files))
        for name in bad:
            print(f"out of date: {name}", file=sys.stderr)
        if bad:
            print("run: python tests/vectors/generate.py", file=sys.stderr)
        return 1 if bad else 0
    for stale in existing - set(files):
        os.remove(os.path.join(args.dir, stale))
    for name, content in files.items():
        with open(os.path.join(args.dir, name), "wb") as f:
            f.write(content)
    print(f"wrote {len(files) // 2} vectors to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
