"""Tokens, key files, the saved identity and enrollment (muster.keys, muster.enrollment), checked
against the fixtures the C++ keys library wrote (tests/vectors/keys: tokens.json with the C++
parse result of every malformed spelling, and a peer data directory written by
save_local_identity / load_or_create_key_pair), and against a fake enrollment endpoint that
speaks CURVE."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85 as zmq_z85

import muster
from muster import enrollment as en
from muster import keys as k
from muster import messages as m
from muster.errors import ErrorCode

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "keys"
TOKENS = json.loads((FIXTURES / "tokens.json").read_text(encoding="utf-8"))
FIXTURE_TOKEN = TOKENS["valid"][0]


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch, tmp_path):
    """No token from the environment or the real ~/.config, unless a test puts one there."""
    monkeypatch.delenv("MUSTER_ENROLLMENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def make_token(daemon_public: str, token_id: str = "00112233445566ff", secret: bytes = bytes(range(32))) -> str:
    key = k.z85_decode_key(daemon_public)
    assert key is not None
    return f"muster1.{token_id}.{base64.urlsafe_b64encode(secret).rstrip(b'=').decode()}.{base64.urlsafe_b64encode(key).rstrip(b'=').decode()}"


def private_copy(tmp_path: Path) -> Path:
    """The C++-written peer data directory, with the modes it has in real life (git keeps 0644)."""
    d = tmp_path / "peer"
    d.mkdir(mode=0o700)
    for f in ("worker-curve.key", "worker-curve.pub", "worker-identity.json"):
        shutil.copyfile(FIXTURES / "data" / f, d / f)
        os.chmod(d / f, 0o600)
    return d


# ---- tokens ----------------------------------------------------------------------------------


def test_the_cpp_token_parses_the_same():
    for v in TOKENS["valid"]:
        t = k.parse_token(v["text"])
        assert t.id == v["id"]
        assert t.secret.hex() == v["secret_hex"]
        assert t.daemon_public_key_z85 == v["daemon_public_key"]
        assert t.to_string() == v["text"]
        assert v["text"][30:60] not in repr(t)  # the secret never shows


@pytest.mark.parametrize("case", TOKENS["invalid"], ids=[c["what"] for c in TOKENS["invalid"]])
def test_malformed_tokens_fail_as_in_cpp(case):
    with pytest.raises(k.TokenFormatError) as e:
        k.parse_token(case["text"])
    assert e.value.kind == case["error"]
    assert str(e.value) == case["message"]
    if len(case["text"]) > 20:
        assert case["text"][25:45] not in str(e.value)  # never quotes the input


def test_token_round_trip_and_z85_agree_with_libzmq():
    for _ in range(50):
        pub, _sec = zmq.curve_keypair()
        raw = zmq_z85.decode(pub)
        assert k.z85_encode(raw) == pub.decode()
        assert k.z85_decode_key(pub.decode()) == raw
        tok = make_token(pub.decode(), os.urandom(8).hex(), os.urandom(32))
        assert k.parse_token(tok).to_string() == tok
        assert k.parse_token(tok).daemon_public_key_z85 == pub.decode()
    assert k.z85_decode_key("#" * 40) is None  # a group above 2^32-1
    assert k.z85_decode_key("~" * 40) is None  # not in the alphabet
    assert k.z85_decode_key("0" * 39) is None


# ---- where the token comes from ----------------------------------------------------------------


def test_token_lookup_order(tmp_path):
    flag = tmp_path / "flag-token"
    flag.write_text("  flag-token\n")
    xdg = tmp_path / "xdg"
    (xdg / "muster").mkdir(parents=True)
    (xdg / "muster" / "enrollment-token").write_text("xdg-token\n")
    env = {"MUSTER_ENROLLMENT_TOKEN": " env-token \n", "XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)}
    assert k.find_enrollment_token(str(flag), env) == k.FoundToken("env-token", "MUSTER_ENROLLMENT_TOKEN")
    env["MUSTER_ENROLLMENT_TOKEN"] = "  "  # blank: ignored
    assert k.find_enrollment_token(str(flag), env) == k.FoundToken("flag-token", f"file {flag}")
    assert k.find_enrollment_token(None, env) == k.FoundToken("xdg-token", f"file {xdg}/muster/enrollment-token")
    # A relative XDG_CONFIG_HOME is ignored: ~/.config instead, and a missing default is no token.
    env["XDG_CONFIG_HOME"] = "relative"
    assert k.find_enrollment_token(None, env) is None
    (tmp_path / ".config" / "muster").mkdir(parents=True)
    (tmp_path / ".config" / "muster" / "enrollment-token").write_text("home-token")
    assert k.find_enrollment_token(None, env).token == "home-token"
    # The flag's file must exist and hold something.
    with pytest.raises(RuntimeError, match="does not exist"):
        k.find_enrollment_token(str(tmp_path / "missing"), env)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(RuntimeError, match="is empty"):
        k.find_enrollment_token(str(tmp_path / "empty"), env)
    assert k.find_enrollment_token(None, {}) is None


# ---- key files and the saved identity ----------------------------------------------------------


def test_cpp_written_identity_files_read_and_write_identically(tmp_path):
    d = private_copy(tmp_path)
    plan = k.plan_enrollment(str(d), "worker", FIXTURE_TOKEN["text"])
    assert not plan.needs_enrollment
    assert plan.daemon_public_key == FIXTURE_TOKEN["daemon_public_key"]
    ident = plan.identity
    assert ident.identity_id == "3f1c9b2e-8d4a-4b6e-9f10-2a3b4c5d6e7f"
    assert (ident.role, ident.workspace, ident.name) == ("worker", "research", "gpu-box ✓")
    assert k.format_timestamp(ident.enrolled_at) == "2026-11-21T23:30:01.042Z"
    assert k.format_secret_key_file(plan.keys) == (FIXTURES / "data" / "worker-curve.key").read_text()
    assert k.format_public_key_file(plan.keys.public_key) == (FIXTURES / "data" / "worker-curve.pub").read_text()
    # What Python writes is byte for byte what C++ wrote.
    k.save_local_identity(str(d), "copy", ident)
    assert (d / "copy-identity.json").read_bytes() == (FIXTURES / "data" / "worker-identity.json").read_bytes()
    assert stat.S_IMODE((d / "copy-identity.json").stat().st_mode) == 0o600
    # Loading did not rewrite anything.
    for f in ("worker-curve.key", "worker-curve.pub", "worker-identity.json"):
        assert (d / f).read_bytes() == (FIXTURES / "data" / f).read_bytes()


def test_new_key_files_have_the_cpp_format_and_modes(tmp_path):
    d = tmp_path / "new" / "data"
    pair, created = k.load_or_create_local_keys(str(d), "client")
    assert created
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    key, pub = d / "client-curve.key", d / "client-curve.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert key.read_text() == (
        "# muster CURVE key pair. Secret: keep this file private (chmod 600).\n"
        f"public={pair.public_key}\nsecret={pair.secret_key}\n"
    )
    assert zmq.curve_public(pair.secret_key.encode()).decode() == pair.public_key
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []  # no temp files left
    again, created = k.load_or_create_local_keys(str(d), "client")
    assert not created and again == pair
    # A stale public file is rewritten from the secret one.
    pub.write_text("public=" + zmq.curve_keypair()[0].decode() + "\n")
    k.load_or_create_local_keys(str(d), "client")
    assert pub.read_text() == k.format_public_key_file(pair.public_key)
    assert pair.secret_key not in repr(pair)


def test_files_others_can_touch_are_refused(tmp_path):
    d = private_copy(tmp_path)
    os.chmod(d / "worker-curve.key", 0o640)
    with pytest.raises(k.KeyPermissionError, match=r"mode 0640\); refusing to use it. Fix: chmod 600 .*worker-curve.key"):
        k.plan_enrollment(str(d), "worker", None)
    os.chmod(d / "worker-curve.key", 0o600)
    os.chmod(d, 0o777)
    with pytest.raises(k.KeyPermissionError, match="Fix: chmod 700"):
        k.plan_enrollment(str(d), "worker", None)
    os.chmod(d, 0o700)
    assert k.plan_enrollment(str(d), "worker", None).identity is not None


def test_bad_key_files(tmp_path):
    pub, sec = (x.decode() for x in zmq.curve_keypair())
    other_pub = zmq.curve_keypair()[0].decode()
    with pytest.raises(k.KeyFileError, match="does not belong"):
        k.parse_secret_key_file(f"public={other_pub}\nsecret={sec}\n", "f")
    with pytest.raises(k.KeyFileError, match="line 2: `public` given twice"):
        k.parse_secret_key_file(f"public={pub}\npublic={pub}\n", "f")
    with pytest.raises(k.KeyFileError, match="unknown field `x`"):
        k.parse_secret_key_file("x=1\n", "f")
    with pytest.raises(k.KeyFileError, match="not a 40-character Z85 key"):
        k.parse_secret_key_file("secret=abc\n", "f")
    with pytest.raises(k.KeyFileError, match="contains a secret key"):
        k.parse_public_key_file(f"public={pub}\nsecret={sec}\n", "f")
    # comments, blank lines, CRLF and spaces around '=' are fine
    assert k.parse_secret_key_file(f"# c\r\n\r\n  public = {pub}\r\nsecret=\t{sec}  \r\n", "f") == k.KeyPair(pub, sec)


def test_plan_enrollment_decisions(tmp_path):
    d = private_copy(tmp_path)
    saved_daemon = FIXTURE_TOKEN["daemon_public_key"]
    other_daemon = zmq.curve_keypair()[0].decode()
    # A token of another daemon while enrolled: refused, never re-trusted.
    with pytest.raises(k.DaemonKeyMismatch, match="never re-trusts a daemon silently"):
        k.plan_enrollment(str(d), "worker", make_token(other_daemon))
    with pytest.raises(k.DaemonKeyMismatch, match="configured daemon key"):
        k.plan_enrollment(str(d), "worker", None, other_daemon)
    assert k.plan_enrollment(str(d), "worker", None, saved_daemon).identity is not None
    # A malformed token is refused even when enrolled (as in C++).
    with pytest.raises(k.TokenFormatError):
        k.plan_enrollment(str(d), "worker", "muster1.nope")
    # The key file was replaced under a saved identity.
    (d / "worker-curve.key").unlink()
    with pytest.raises(RuntimeError, match="the key file was replaced"):
        k.plan_enrollment(str(d), "worker", None)
    # Not enrolled: a token is needed, and then its daemon key is the one to use.
    fresh = tmp_path / "fresh"
    with pytest.raises(k.NotEnrolled, match="MUSTER_ENROLLMENT_TOKEN"):
        k.plan_enrollment(str(fresh), "worker", None)
    plan = k.plan_enrollment(str(fresh), "worker", make_token(other_daemon))
    assert plan.needs_enrollment and plan.daemon_public_key == other_daemon
    assert "0011" not in repr(plan) or "<hidden>" in repr(plan)
    with pytest.raises(ValueError, match="invalid identity name"):
        k.plan_enrollment(str(fresh), "../worker", None)
    # A broken identity file names itself and the fix.
    (d / "worker-identity.json").write_text("{}")
    with pytest.raises(RuntimeError, match="worker-identity.json is not a valid identity file.*delete it"):
        k.load_local_identity(str(d), "worker")


def test_timestamps():
    t = k.parse_timestamp("2026-11-21T23:30:01.042Z")
    assert k.format_timestamp(t) == "2026-11-21T23:30:01.042Z"
    assert k.format_timestamp(k.parse_timestamp("2026-11-21T23:30:01Z")) == "2026-11-21T23:30:01.000Z"
    for bad in ("2026-11-21 23:30:01Z", "2026-13-01T00:00:00Z", "2026-11-21T23:30:01.04Z", ""):
        assert k.parse_timestamp(bad) is None


# ---- enrollment against a fake CURVE endpoint ---------------------------------------------------


class FakeEnrollment:
    """A CURVE server ROUTER that answers EnrollRequests with ``answer(request)``."""

    def __init__(self, answer):
        self.ctx = zmq.Context()
        self.public, self.secret = (x.decode() for x in zmq.curve_keypair())
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.curve_server = True
        self.sock.curve_secretkey = self.secret.encode()
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.answer = answer
        self.requests = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            peer, data = self.sock.recv_multipart()
            req = m.decode_enroll_request(data)
            self.requests.append(req)
            self.sock.send_multipart([peer, m.encode(self.answer(req))])

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close(0)
        self.ctx.term()


def test_enroll_saves_the_identity_and_reuses_it(tmp_path, monkeypatch):
    fake = FakeEnrollment(lambda req: m.EnrollResponse(True, "id-1", req.role, "research", "gpu-box"))
    data = tmp_path / "data"
    kw = dict(role="worker", name="worker", data_dir=str(data), enrollment_address=fake.address,
              hostname="my host!", timeout=5)
    try:
        with pytest.raises(muster.EnrollmentError, match="no enrollment token found") as e:
            en.prepare_curve(["tcp://127.0.0.1:1"], **kw)
        assert e.value.code == ErrorCode.PERMISSION_DENIED
        tok = make_token(fake.public)
        monkeypatch.setenv("MUSTER_ENROLLMENT_TOKEN", tok)
        curve = en.prepare_curve(["tcp://127.0.0.1:1"], **kw)
        (req,) = fake.requests
        assert (req.token, req.role, req.name, req.hostname) == (tok, "worker", "", "my-host-")
        pair = k.load_secret_key_file(str(data / "worker-curve.key"))
        assert req.public_key == pair.public_key
        assert curve == muster.Curve(fake.public, pair.public_key, pair.secret_key)
        saved = json.loads((data / "worker-identity.json").read_text())
        assert saved["identity_id"] == "id-1" and saved["daemon_public_key"] == fake.public
        assert saved["workspace"] == "research" and saved["name"] == "gpu-box"
        assert list(saved) == sorted(saved)
        # Next run, even without a token: no request, the saved identity is used.
        monkeypatch.delenv("MUSTER_ENROLLMENT_TOKEN")
        again = en.prepare_curve(["tcp://127.0.0.1:1"], role="worker", name="worker", data_dir=str(data), timeout=5)
        assert again == curve and len(fake.requests) == 1
    finally:
        fake.close()


def test_enroll_refused_or_unanswered(tmp_path, monkeypatch):
    fake = FakeEnrollment(lambda req: m.EnrollResponse(False, code=ErrorCode.PERMISSION_DENIED, error="unknown token"))
    try:
        monkeypatch.setenv("MUSTER_ENROLLMENT_TOKEN", make_token(fake.public))
        with pytest.raises(muster.EnrollmentError, match="enrollment refused by the daemon at .*: unknown token") as e:
            en.prepare_curve(["tcp://127.0.0.1:1"], role="client", name="client", data_dir=str(tmp_path / "a"),
                             enrollment_address=fake.address, timeout=5)
        assert e.value.code == ErrorCode.PERMISSION_DENIED
        assert not (tmp_path / "a" / "client-identity.json").exists()
        # A token for another daemon key: the CURVE handshake never completes, no answer.
        monkeypatch.setenv("MUSTER_ENROLLMENT_TOKEN", make_token(zmq.curve_keypair()[0].decode()))
        with pytest.raises(muster.EnrollmentError, match="no answer from the daemon .* not the one in the token") as e:
            en.prepare_curve(["tcp://127.0.0.1:1"], role="client", name="client", data_dir=str(tmp_path / "b"),
                             enrollment_address=fake.address, timeout=0.5)
        assert e.value.code == ErrorCode.UNAVAILABLE
        assert len(fake.requests) == 1
        # A malformed token says where it came from, not what it was.
        monkeypatch.setenv("MUSTER_ENROLLMENT_TOKEN", "muster1.secret-stuff")
        with pytest.raises(muster.EnrollmentError, match=r"malformed token: .*\(from MUSTER_ENROLLMENT_TOKEN\)") as e:
            en.prepare_curve(["tcp://127.0.0.1:1"], role="client", name="client", data_dir=str(tmp_path / "c"))
        assert "secret-stuff" not in str(e.value)
        assert e.value.code == ErrorCode.INVALID_REQUEST
    finally:
        fake.close()


def test_client_enrolls_then_talks_curve(tmp_path, monkeypatch):
    """The Client enrolls, then its DEALER is a CURVE client of the daemon key from the token."""
    fake = FakeEnrollment(lambda req: m.EnrollResponse(True, "id-c", "client", "default", ""))
    router = fake.ctx.socket(zmq.ROUTER)
    router.curve_server = True
    router.curve_secretkey = fake.secret.encode()
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        monkeypatch.setenv("MUSTER_ENROLLMENT_TOKEN", make_token(fake.public))
        with muster.Client(f"tcp://127.0.0.1:{port}", data_dir=str(tmp_path / "d"), enrollment_address=fake.address,
                           list_timeout=10) as c:
            result = {}

            def serve():
                assert router.poll(10000)
                peer, data = router.recv_multipart()
                msg = m.decode_client_message(data)
                result["body"] = msg.body
                router.send_multipart([peer, m.encode(m.ClientReply(msg.request_id, m.TokenCreated("tok", "id", "x")))])

            t = threading.Thread(target=serve)
            t.start()
            assert c.token_create("worker", 60_000, 2, "research", "box") == "tok"
            t.join(10)
            assert result["body"] == m.TokenCreate("worker", 60_000, 2, "research", "box")
        assert (tmp_path / "d" / "client-identity.json").exists()
        assert [r.role for r in fake.requests] == ["client"]
    finally:
        router.close(0)
        fake.close()
