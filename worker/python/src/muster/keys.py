"""keys.py — the enrolling side's files and tokens, byte for byte as the C++ keys/ library
(keys/src/token.cpp, key_file.cpp, local_identity.cpp, token_source.cpp, secure_file.cpp)
reads and writes them, so a Python worker, a TypeScript worker and the C++ programs can share a
data directory.

Owns: strict parsing of enrollment tokens (``muster1.<id>.<secret>.<daemon key>``), the token
lookup order (MUSTER_ENROLLMENT_TOKEN, the token file option, $XDG_CONFIG_HOME/muster/
enrollment-token), CURVE key files (``<name>-curve.key`` 0600 with ``public=``/``secret=``
lines, ``<name>-curve.pub``), the saved identity (``<name>-identity.json``) and the
enroll-or-reuse decision (``plan_enrollment``), all without opening a socket.
Must never: put a token, a token secret or a secret key in an exception message or a log line;
read a secret key file that group or others can access; trust a daemon key other than the one
in the token or the saved identity; replace a saved daemon key silently.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import zmq

log = logging.getLogger("muster.keys")

TOKEN_TAG = "muster1"
TOKEN_ID_BYTES = 8
TOKEN_SECRET_BYTES = 32
CURVE_KEY_BYTES = 32
TOKEN_TEXT_LENGTH = 7 + 1 + 16 + 1 + 43 + 1 + 43  # 112
TOKEN_ENV_VAR = "MUSTER_ENROLLMENT_TOKEN"
ROLES = ("worker", "client", "admin")

_IDENTITY_FORMAT = "muster-local-identity"
_IDENTITY_VERSION = 1


# ---- errors ---------------------------------------------------------------------------------


class KeyFileError(RuntimeError):
    """A key file that is missing, malformed, or whose halves do not match (names the file)."""


class KeyPermissionError(RuntimeError):
    """A secret file or data directory that others could read or change; says how to fix it."""


class DaemonKeyMismatch(RuntimeError):
    """The daemon key of the token (or configuration) is not the one the saved identity was
    enrolled with. muster never re-trusts a daemon silently."""


class NotEnrolled(RuntimeError):
    """Not enrolled and no enrollment token found (lists the three token locations)."""


class TokenFormatError(ValueError):
    """A malformed token. ``kind`` names the rule it broke (as the C++ TokenFormatError:
    "Empty", "Whitespace", "BadCharacters", "WrongTag", "WrongLength", "WrongPartCount",
    "BadId", "BadSecret", "BadDaemonKey"); the message never quotes the input."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__("malformed token: " + message)


# ---- encodings ------------------------------------------------------------------------------

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_INDEX = {c: i for i, c in enumerate(_Z85)}


def z85_encode(data: bytes) -> str:
    if len(data) % 4:
        raise ValueError("Z85 encodes multiples of 4 bytes")
    out: List[str] = []
    for i in range(0, len(data), 4):
        v = int.from_bytes(data[i : i + 4], "big")
        chunk = []
        for _ in range(5):
            v, r = divmod(v, 85)
            chunk.append(_Z85[r])
        out.extend(reversed(chunk))
    return "".join(out)


def z85_decode_key(text: str) -> Optional[bytes]:
    """The 32 bytes of a 40-character Z85 key, or None. Strict: characters outside the
    alphabet and aliases (a group above 2^32-1) are refused, as keys/src/encoding.cpp does."""
    if not isinstance(text, str) or len(text) != 40:
        return None
    out = bytearray()
    for i in range(0, 40, 5):
        v = 0
        for c in text[i : i + 5]:
            d = _Z85_INDEX.get(c)
            if d is None:
                return None
            v = v * 85 + d
        if v > 0xFFFFFFFF:
            return None
        out += v.to_bytes(4, "big")
    key = bytes(out)
    if z85_encode(key) != text:
        return None
    return key


def is_z85_key(text: str) -> bool:
    return z85_decode_key(text) is not None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def base64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def base64url_decode(text: str, expected_bytes: int) -> Optional[bytes]:
    """Strict base64url without padding of exactly ``expected_bytes`` bytes; canonical
    spelling only (the unused low bits of the last character must be zero)."""
    if len(text) != (expected_bytes * 4 + 2) // 3 or any(c not in _B64URL for c in text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
    if len(data) != expected_bytes or base64url_encode(data) != text:
        return None
    return data


def _hex_lower(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdef" for c in text)


# ---- tokens ---------------------------------------------------------------------------------

_SHAPE = "a muster token looks like muster1.<16 hex>.<43 chars>.<43 chars>"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Token:
    """A parsed enrollment token. ``repr`` never shows the secret."""

    id: str  # 16 lowercase hex digits
    secret: bytes  # 32 bytes
    daemon_public_key: bytes  # 32 bytes

    @property
    def daemon_public_key_z85(self) -> str:
        """For ZMQ_CURVE_SERVERKEY."""
        return z85_encode(self.daemon_public_key)

    def to_string(self) -> str:
        return f"{TOKEN_TAG}.{self.id}.{base64url_encode(self.secret)}.{base64url_encode(self.daemon_public_key)}"

    def __repr__(self) -> str:
        return f"Token(id={self.id!r}, daemon_public_key={self.daemon_public_key_z85!r}, secret=<hidden>)"

    __str__ = __repr__


def parse_token(text: str) -> Token:
    """Strict: exactly ``muster1.<16 hex>.<43 base64url>.<43 base64url>``, nothing trimmed.
    Raises TokenFormatError with the same kinds and messages as keys/src/token.cpp."""
    if not isinstance(text, str):
        raise TokenFormatError("BadCharacters", f"it is not text ({_SHAPE})")
    if not text:
        raise TokenFormatError("Empty", "it is empty")
    if any(c in " \t\n\r" for c in text):
        raise TokenFormatError(
            "Whitespace",
            "it contains spaces or line breaks (copy exactly the one line printed by `muster token create`)",
        )
    if any(c not in _TOKEN_CHARS for c in text):
        raise TokenFormatError(
            "BadCharacters", f"it contains characters other than letters, digits, '.', '-' and '_' ({_SHAPE})"
        )
    if text[: len(TOKEN_TAG) + 1] != TOKEN_TAG + ".":
        raise TokenFormatError("WrongTag", f"it does not start with '{TOKEN_TAG}.' ({_SHAPE})")
    if len(text) != TOKEN_TEXT_LENGTH:
        raise TokenFormatError(
            "WrongLength",
            f"it has {len(text)} characters, a token has {TOKEN_TEXT_LENGTH} (truncated or extended?)",
        )
    parts = text.split(".")
    if len(parts) > 4:
        raise TokenFormatError("WrongPartCount", f"more than four '.'-separated parts ({_SHAPE})")
    if len(parts) != 4:
        raise TokenFormatError("WrongPartCount", f"{len(parts)} '.'-separated parts instead of 4 ({_SHAPE})")
    if len(parts[1]) != 2 * TOKEN_ID_BYTES or not _hex_lower(parts[1]):
        raise TokenFormatError("BadId", "the id (second part) is not 16 lowercase hex digits")
    secret = base64url_decode(parts[2], TOKEN_SECRET_BYTES)
    if secret is None:
        raise TokenFormatError(
            "BadSecret", "the secret (third part) is not 43 base64url characters encoding 32 bytes"
        )
    key = base64url_decode(parts[3], CURVE_KEY_BYTES)
    if key is None:
        raise TokenFormatError(
            "BadDaemonKey", "the daemon key (fourth part) is not 43 base64url characters encoding 32 bytes"
        )
    return Token(parts[1], secret, key)


# ---- where the token comes from -------------------------------------------------------------


@dataclass(frozen=True)
class FoundToken:
    token: str  # trimmed text, not yet parsed
    source: str  # "MUSTER_ENROLLMENT_TOKEN" or "file /path" (for messages; not secret)

    def __repr__(self) -> str:
        return f"FoundToken(source={self.source!r}, token=<hidden>)"


def _trim(s: str) -> str:
    return s.strip(" \t\n\r")


def default_token_file(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """$XDG_CONFIG_HOME/muster/enrollment-token (if XDG_CONFIG_HOME is absolute), else
    ~/.config/muster/enrollment-token; None if neither is known."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "muster", "enrollment-token")
    home = env.get("HOME")
    if home:
        return os.path.join(home, ".config", "muster", "enrollment-token")
    return None


def _read_token_file(path: str, must_exist: bool) -> Optional[FoundToken]:
    text = read_file(path)
    if text is None:
        if must_exist:
            raise RuntimeError(f"enrollment token file {path} does not exist")
        return None
    try:
        if os.stat(path).st_mode & 0o077:
            log.warning("enrollment token file %s can be read by other users; consider: chmod 600 %s", path, path)
    except OSError:
        pass
    tok = _trim(text.decode("utf-8", errors="replace"))
    if not tok:
        if must_exist:
            raise RuntimeError(f"enrollment token file {path} is empty")
        return None
    return FoundToken(tok, f"file {path}")


def find_enrollment_token(
    token_file: Optional[str] = None, env: Optional[Mapping[str, str]] = None
) -> Optional[FoundToken]:
    """The token, in this order: $MUSTER_ENROLLMENT_TOKEN (if non-empty), ``token_file`` (which
    must then exist and hold a token), the default file (used only if it exists). Surrounding
    whitespace is trimmed. None if none of them has one."""
    env = os.environ if env is None else env
    v = env.get(TOKEN_ENV_VAR)
    if v is not None:
        tok = _trim(v)
        if tok:
            return FoundToken(tok, TOKEN_ENV_VAR)
    if token_file:
        return _read_token_file(os.fspath(token_file), True)
    default = default_token_file(env)
    if default:
        return _read_token_file(default, False)
    return None


# ---- files ----------------------------------------------------------------------------------


def read_file(path: str) -> Optional[bytes]:
    """The whole file, or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RuntimeError(f"cannot open {path}: {e.strerror}") from None


def read_private_file(path: str) -> Optional[bytes]:
    """Like read_file, but refuses (KeyPermissionError) a file that grants any permission to
    group or others; the check is made on the open descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RuntimeError(f"cannot open {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyPermissionError(
                f"{path} holds a secret but is accessible by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); refusing to use it. Fix: chmod 600 {path}"
            )
        return f.read()


def write_file_atomic(path: str, content: bytes, mode: int = 0o600) -> None:
    """Temp file in the same directory (created 0600), chmod ``mode``, write, fsync, rename over
    ``path``, fsync the directory. The temp file is removed on any failure."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=d)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(content)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def ensure_data_dir(path: str) -> None:
    """Creates ``path`` (mode 0700, parents as needed) if missing; refuses a directory that
    group or others can write (KeyPermissionError)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.normpath(path))
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{path} is not a directory")
    if st.st_mode & 0o022:
        raise KeyPermissionError(
            f"data directory {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}), "
            f"so they could replace keys or identities; refusing to use it. Fix: chmod 700 {path}"
        )


# ---- CURVE key files ------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    public_key: str  # Z85
    secret_key: str  # Z85

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key!r}, secret_key=<hidden>)"

    __str__ = __repr__


def generate_key_pair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public.decode("ascii"), secret.decode("ascii"))


def derive_public_key(secret_z85: str) -> str:
    if not is_z85_key(secret_z85):
        raise ValueError("secret key is not a 40-character Z85 key")
    return zmq.curve_public(secret_z85.encode("ascii")).decode("ascii")


def key_pair_matches(pair: KeyPair) -> bool:
    if not is_z85_key(pair.public_key) or not is_z85_key(pair.secret_key):
        return False
    return derive_public_key(pair.secret_key) == pair.public_key


def format_secret_key_file(pair: KeyPair) -> str:
    return (
        "# muster CURVE key pair. Secret: keep this file private (chmod 600).\n"
        f"public={pair.public_key}\nsecret={pair.secret_key}\n"
    )


def format_public_key_file(public_z85: str) -> str:
    return f"# muster CURVE public key. Safe to share.\npublic={public_z85}\n"


def _key_lines(text: str, source: str) -> Tuple[Optional[str], Optional[str]]:
    found: Dict[str, Optional[str]] = {"public": None, "secret": None}
    lineno = 0
    rest = text
    while rest:
        nl = rest.find("\n")
        line, rest = (rest, "") if nl < 0 else (rest[:nl], rest[nl + 1 :])
        lineno += 1
        line = line.lstrip(" \t").rstrip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise KeyFileError(f"{source}: line {lineno}: expected `public=<z85>` or `secret=<z85>`")
        name, value = line.split("=", 1)
        name = name.lstrip(" \t").rstrip(" \t\r")
        value = value.lstrip(" \t").rstrip(" \t\r")
        if name not in found:
            raise KeyFileError(f"{source}: line {lineno}: unknown field `{name}` (expected public or secret)")
        if found[name] is not None:
            raise KeyFileError(f"{source}: line {lineno}: `{name}` given twice")
        if not is_z85_key(value):
            raise KeyFileError(f"{source}: line {lineno}: `{name}` is not a 40-character Z85 key")
        found[name] = value
    return found["public"], found["secret"]


def parse_secret_key_file(text: str, source: str) -> KeyPair:
    pub, sec = _key_lines(text, source)
    if sec is None:
        raise KeyFileError(f"{source}: no `secret=` line: not a secret key file")
    if pub is None:
        raise KeyFileError(f"{source}: no `public=` line")
    pair = KeyPair(pub, sec)
    if not key_pair_matches(pair):
        raise KeyFileError(f"{source}: the public key does not belong to the secret key (file damaged or edited)")
    return pair


def parse_public_key_file(text: str, source: str) -> str:
    pub, sec = _key_lines(text, source)
    if sec is not None:
        raise KeyFileError(
            f"{source} contains a secret key; a public key file must contain only `public=`. Do not share this file."
        )
    if pub is None:
        raise KeyFileError(f"{source}: no `public=` line")
    return pub


def _text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{source}: not a text file") from None


def load_secret_key_file(path: str) -> KeyPair:
    data = read_private_file(path)
    if data is None:
        raise KeyFileError(f"secret key file {path} does not exist")
    return parse_secret_key_file(_text(data, path), path)


def load_public_key_file(path: str) -> str:
    data = read_file(path)
    if data is None:
        raise KeyFileError(f"public key file {path} does not exist")
    return parse_public_key_file(_text(data, path), path)


def write_secret_key_file(path: str, pair: KeyPair) -> None:
    if not key_pair_matches(pair):
        raise ValueError("refusing to write a key pair whose halves do not match")
    write_file_atomic(path, format_secret_key_file(pair).encode("ascii"), 0o600)


def write_public_key_file(path: str, public_z85: str) -> None:
    if not is_z85_key(public_z85):
        raise ValueError("not a 40-character Z85 public key")
    write_file_atomic(path, format_public_key_file(public_z85).encode("ascii"), 0o644)


def load_or_create_key_pair(secret_path: str, public_path: str) -> Tuple[KeyPair, bool]:
    """(pair, created): loads the pair from ``secret_path`` or generates one and writes both
    files (public first). A missing or stale public file is rewritten from the secret file."""
    if not os.path.exists(secret_path):
        pair = generate_key_pair()
        write_public_key_file(public_path, pair.public_key)
        write_secret_key_file(secret_path, pair)
        log.info("created CURVE key pair %s (public key %s)", secret_path, pair.public_key)
        return pair, True
    pair = load_secret_key_file(secret_path)
    pub: Optional[str] = None
    try:
        data = read_file(public_path)
        if data is not None:
            pub = parse_public_key_file(_text(data, public_path), public_path)
    except KeyFileError as e:
        log.warning("%s; rewriting it from %s", e, secret_path)
    if pub != pair.public_key:
        if pub is not None:
            log.warning("%s does not match %s; rewriting it", public_path, secret_path)
        write_public_key_file(public_path, pair.public_key)
    return pair, False


# ---- the saved identity ---------------------------------------------------------------------


def is_valid_file_stem(s: str) -> bool:
    """[A-Za-z0-9_.-]{1,64}, not starting with '.' or '-' (keys/src/names.cpp)."""
    ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
    return isinstance(s, str) and 0 < len(s) <= 64 and s[0] not in ".-" and all(c in ok for c in s)


def is_valid_label(s: str) -> bool:
    """0..128 bytes without control characters."""
    b = s.encode("utf-8")
    return len(b) <= 128 and all(c >= 0x20 and c != 0x7F for c in b)


def is_valid_hostname(s: str) -> bool:
    ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
    return len(s) <= 255 and all(c in ok for c in s)


@dataclass(frozen=True)
class LocalIdentityPaths:
    secret_key: str  # <name>-curve.key
    public_key: str  # <name>-curve.pub
    identity: str  # <name>-identity.json


def local_identity_paths(data_dir: str, name: str) -> LocalIdentityPaths:
    if not is_valid_file_stem(name):
        shown = name if isinstance(name, str) and is_valid_label(name) else "<unprintable>"
        raise ValueError(
            f"invalid identity name '{shown}': use 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)"
        )
    d = os.fspath(data_dir)
    return LocalIdentityPaths(
        os.path.join(d, f"{name}-curve.key"),
        os.path.join(d, f"{name}-curve.pub"),
        os.path.join(d, f"{name}-identity.json"),
    )


def format_timestamp(t: _dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds), as keys/src/timestamp.cpp."""
    t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> Optional[_dt.datetime]:
    """``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` or None."""
    if not isinstance(text, str) or len(text) not in (20, 24):
        return None

    def num(pos: int, n: int) -> Optional[int]:
        part = text[pos : pos + n]
        return int(part) if len(part) == n and all("0" <= c <= "9" for c in part) else None

    y, mo, d, h, mi, s = num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
    if y is None or mo is None or d is None or h is None or mi is None or s is None:
        return None
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return None
    ms = 0
    if len(text) == 24:
        m3 = num(20, 3)
        if text[19] != "." or m3 is None or text[23] != "Z":
            return None
        ms = m3
    elif text[19] != "Z":
        return None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        return None
    try:
        base = _dt.datetime(y, mo, 1, h, mi, tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    # timegm normalises day 31 of a short month and second 60, like the C++ reader
    return base + _dt.timedelta(days=d - 1, seconds=s, milliseconds=ms)


@dataclass(frozen=True)
class LocalIdentity:
    identity_id: str
    role: str  # "worker", "client", "admin"
    workspace: str
    name: str
    public_key: str  # Z85: this peer's key, as enrolled
    daemon_public_key: str  # Z85: the daemon it enrolled with
    enrolled_at: _dt.datetime


def load_local_identity(data_dir: str, name: str) -> Optional[LocalIdentity]:
    """``<name>-identity.json``, or None if it does not exist; RuntimeError naming the file if it
    is malformed."""
    paths = local_identity_paths(data_dir, name)
    data = read_file(paths.identity)
    if data is None:
        return None
    try:
        try:
            j = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"not JSON ({e})") from None
        if not isinstance(j, dict):
            raise ValueError("not a JSON object")
        if j.get("format", "") != _IDENTITY_FORMAT or j.get("version", 0) != _IDENTITY_VERSION:
            raise ValueError("not a muster identity file (format/version)")

        def s(key: str, default: Optional[str] = None) -> str:
            if key not in j:
                if default is not None:
                    return default
                raise ValueError(f"missing {key}")
            v = j[key]
            if not isinstance(v, str):
                raise ValueError(f"{key} is not a string")
            return v

        role = s("role")
        if role not in ROLES:
            raise ValueError("bad role")
        ident = LocalIdentity(
            identity_id=s("identity_id"),
            role=role,
            workspace=s("workspace"),
            name=s("name", ""),
            public_key=s("public_key"),
            daemon_public_key=s("daemon_public_key"),
            enrolled_at=_dt.datetime.fromtimestamp(0, _dt.timezone.utc),
        )
        if not is_z85_key(ident.public_key) or not is_z85_key(ident.daemon_public_key):
            raise ValueError("public_key or daemon_public_key is not a Z85 key")
        at = parse_timestamp(s("enrolled_at"))
        if at is None:
            raise ValueError("bad enrolled_at")
        return LocalIdentity(**{**ident.__dict__, "enrolled_at": at})
    except ValueError as e:
        raise RuntimeError(f"{paths.identity} is not a valid identity file: {e} (delete it to enroll again)") from None


def format_local_identity(ident: LocalIdentity) -> str:
    """The file's text, exactly as the C++ save_local_identity writes it (nlohmann::json
    ``dump(2)``: keys sorted, two-space indent, UTF-8 as is) plus a newline."""
    j = {
        "format": _IDENTITY_FORMAT,
        "version": _IDENTITY_VERSION,
        "identity_id": ident.identity_id,
        "role": ident.role,
        "workspace": ident.workspace,
        "name": ident.name,
        "public_key": ident.public_key,
        "daemon_public_key": ident.daemon_public_key,
        "enrolled_at": format_timestamp(ident.enrolled_at),
    }
    return json.dumps(j, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def save_local_identity(data_dir: str, name: str, ident: LocalIdentity) -> None:
    """Writes ``<name>-identity.json`` atomically, mode 0600."""
    paths = local_identity_paths(data_dir, name)
    write_file_atomic(paths.identity, format_local_identity(ident).encode("utf-8"), 0o600)


def load_or_create_local_keys(data_dir: str, name: str) -> Tuple[KeyPair, bool]:
    paths = local_identity_paths(data_dir, name)
    ensure_data_dir(os.fspath(data_dir))
    return load_or_create_key_pair(paths.secret_key, paths.public_key)


@dataclass(frozen=True)
class EnrollmentPlan:
    keys: KeyPair  # this peer's pair: ZMQ_CURVE_PUBLICKEY / ZMQ_CURVE_SECRETKEY
    daemon_public_key: str  # ZMQ_CURVE_SERVERKEY, for enrollment and every socket
    identity: Optional[LocalIdentity]  # set: already enrolled
    token: Optional[str]  # set: enroll first, sending this token text

    @property
    def needs_enrollment(self) -> bool:
        return self.identity is None

    def __repr__(self) -> str:
        return (
            f"EnrollmentPlan(keys={self.keys!r}, daemon_public_key={self.daemon_public_key!r}, "
            f"identity={self.identity!r}, token={'<hidden>' if self.token else None})"
        )


def plan_enrollment(
    data_dir: str, name: str, token_text: Optional[str], configured_daemon_key: Optional[str] = None
) -> EnrollmentPlan:
    """The enroll-or-reuse decision of keys/src/local_identity.cpp ``plan_enrollment``:

    - a saved identity: reuse it; a token or configured daemon key naming another daemon key →
      DaemonKeyMismatch; a saved identity for another public key than ``<name>-curve.key``
      holds → RuntimeError;
    - no saved identity: a token is required (else NotEnrolled) and must parse (else
      TokenFormatError); the daemon key is the token's.

    Creates the key pair on first use. Opens no socket."""
    paths = local_identity_paths(data_dir, name)
    if configured_daemon_key is not None and not is_z85_key(configured_daemon_key):
        raise ValueError("the configured daemon public key is not a 40-character Z85 key")
    keys, _created = load_or_create_local_keys(data_dir, name)
    token: Optional[Token] = parse_token(token_text) if token_text is not None else None

    saved = load_local_identity(data_dir, name)
    if saved is not None:
        if saved.public_key != keys.public_key:
            raise RuntimeError(
                f"{paths.identity} was enrolled for public key {saved.public_key}, but {paths.secret_key} "
                f"holds key {keys.public_key}; the key file was replaced. Restore the old key file, or "
                f"delete {paths.identity} and enroll this key with a new token"
            )
        if configured_daemon_key is not None and configured_daemon_key != saved.daemon_public_key:
            raise DaemonKeyMismatch(
                f"the configured daemon key {configured_daemon_key} is not the key {saved.daemon_public_key} "
                f"that {paths.identity} was enrolled with. muster never re-trusts a daemon silently: fix "
                f"the configuration, or, if the daemon's key was rotated on purpose, delete {paths.identity} "
                "and enroll again with a new token"
            )
        if token is not None and token.daemon_public_key_z85 != saved.daemon_public_key:
            raise DaemonKeyMismatch(
                f"the enrollment token is for daemon key {token.daemon_public_key_z85}, but {paths.identity} "
                f"was enrolled with daemon key {saved.daemon_public_key}. muster never re-trusts a daemon "
                f"silently: if the daemon's key was rotated on purpose, delete {paths.identity} and run "
                "again to enroll with the new token; otherwise remove the token"
            )
        return EnrollmentPlan(keys, saved.daemon_public_key, saved, None)

    if token is None:
        raise NotEnrolled(
            f"not enrolled yet ({paths.identity} does not exist) and no enrollment token found: set "
            "MUSTER_ENROLLMENT_TOKEN, pass --enrollment-token-file FILE, or put the token in "
            "$XDG_CONFIG_HOME/muster/enrollment-token (default ~/.config/muster/enrollment-token)"
        )
    daemon_key = token.daemon_public_key_z85
    if configured_daemon_key is not None and configured_daemon_key != daemon_key:
        raise DaemonKeyMismatch(
            f"the enrollment token is for daemon key {daemon_key}, but the configured daemon key is "
            f"{configured_daemon_key}; refusing to enroll with either. Get a token from the daemon you mean"
        )
    return EnrollmentPlan(keys, daemon_key, None, token_text)


def record_enrollment(
    data_dir: str,
    name: str,
    plan: EnrollmentPlan,
    identity_id: str,
    role: str,
    workspace: str,
    enrolled_name: str,
    now: Optional[_dt.datetime] = None,
) -> LocalIdentity:
    """After an ok EnrollResponse: saves and returns the identity."""
    if role not in ROLES:
        raise ValueError("the daemon answered with an unknown role")
    if not identity_id:
        raise ValueError("the daemon answered without an identity id")
    saved = load_local_identity(data_dir, name)
    if saved is not None and saved.daemon_public_key != plan.daemon_public_key:
        raise DaemonKeyMismatch(
            f"{local_identity_paths(data_dir, name).identity} already holds an identity for another daemon key"
        )
    ident = LocalIdentity(
        identity_id=identity_id,
        role=role,
        workspace=workspace,
        name=enrolled_name,
        public_key=plan.keys.public_key,
        daemon_public_key=plan.daemon_public_key,
        enrolled_at=now or _dt.datetime.now(_dt.timezone.utc),
    )
    save_local_identity(data_dir, name, ident)
    return ident


def default_data_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """Where a peer keeps its keys and identity when no data_dir is given: $MUSTER_DATA_DIR,
    else $XDG_DATA_HOME/muster, else ~/.local/share/muster (musterd's default data directory
    too; the file names do not collide)."""
    env = os.environ if env is None else env
    d = env.get("MUSTER_DATA_DIR")
    if d:
        return d
    x = env.get("XDG_DATA_HOME")
    if x:
        return os.path.join(x, "muster")
    h = env.get("HOME")
    if h:
        return os.path.join(h, ".local", "share", "muster")
    from .endpoints import runtime_dir

    return os.path.join(runtime_dir(), "data")


__all__ = [
    "Token",
    "TokenFormatError",
    "parse_token",
    "FoundToken",
    "find_enrollment_token",
    "default_token_file",
    "KeyPair",
    "KeyFileError",
    "KeyPermissionError",
    "DaemonKeyMismatch",
    "NotEnrolled",
    "LocalIdentity",
    "LocalIdentityPaths",
    "EnrollmentPlan",
    "local_identity_paths",
    "load_local_identity",
    "save_local_identity",
    "format_local_identity",
    "load_or_create_local_keys",
    "load_or_create_key_pair",
    "plan_enrollment",
    "record_enrollment",
    "default_data_dir",
    "z85_encode",
    "z85_decode_key",
    "is_z85_key",
    "base64url_encode",
    "base64url_decode",
    "format_timestamp",
    "parse_timestamp",
]
