// keys.ts — the enrolling side's files and tokens, byte for byte as the C++ keys/ library
// (keys/src/token.cpp, key_file.cpp, local_identity.cpp, token_source.cpp, secure_file.cpp)
// reads and writes them, so TypeScript, Python and C++ peers can share a data directory.
// Owns: strict parsing of enrollment tokens (muster1.<id>.<secret>.<daemon key>), the token
// lookup order (MUSTER_ENROLLMENT_TOKEN, the token file option,
// $XDG_CONFIG_HOME/muster/enrollment-token), CURVE key files (<name>-curve.key 0600 with
// public=/secret= lines, <name>-curve.pub), the saved identity (<name>-identity.json) and the
// enroll-or-reuse decision (planEnrollment), without opening a socket.
// Must never: put a token, a token secret or a secret key into an error message or a log line;
// read a secret key file that group or others can access; trust a daemon key other than the
// token's or the saved identity's; replace a saved daemon key silently.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as zmq from 'zeromq';

import { runtimeDir } from './endpoints';

export const TOKEN_TAG = 'muster1';
export const TOKEN_TEXT_LENGTH = 7 + 1 + 16 + 1 + 43 + 1 + 43; // 112
export const TOKEN_ENV_VAR = 'MUSTER_ENROLLMENT_TOKEN';
export const ROLES = ['worker', 'client', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const IDENTITY_FORMAT = 'muster-local-identity';
const IDENTITY_VERSION = 1;

// ---- errors ---------------------------------------------------------------------------------

/** A key file that is missing, malformed, or whose halves do not match (names the file). */
export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

/** A secret file or data directory that others could read or change; says how to fix it. */
export class KeyPermissionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyPermissionError';
  }
}

/** The token's (or configured) daemon key is not the one the saved identity was enrolled with. */
export class DaemonKeyMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonKeyMismatch';
  }
}

/** Not enrolled and no enrollment token found. */
export class NotEnrolled extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotEnrolled';
  }
}

export type TokenFormatErrorKind =
  | 'Empty'
  | 'Whitespace'
  | 'BadCharacters'
  | 'WrongTag'
  | 'WrongLength'
  | 'WrongPartCount'
  | 'BadId'
  | 'BadSecret'
  | 'BadDaemonKey';

/** A malformed token; `kind` as the C++ TokenFormatError. The message never quotes the input. */
export class TokenFormatError extends Error {
  readonly kind: TokenFormatErrorKind;
  constructor(kind: TokenFormatErrorKind, message: string) {
    super(`malformed token: ${message}`);
    this.name = 'TokenFormatError';
    this.kind = kind;
  }
}

// ---- encodings ------------------------------------------------------------------------------

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_INDEX = new Map<string, number>([...Z85].map((c, i) => [c, i]));

export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) throw new RangeError('Z85 encodes multiples of 4 bytes');
  let out = '';
  for (let i = 0; i < data.length; i += 4) {
    let v = ((data[i]! << 24) >>> 0) + (data[i + 1]! << 16) + (data[i + 2]! << 8) + data[i + 3]!;
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.push(Z85[v % 85]!);
      v = Math.floor(v / 85);
    }
    out += chunk.reverse().join('');
  }
  return out;
}

/** The 32 bytes of a 40-character Z85 key, or null (strict: no aliases, no foreign characters). */
export function z85DecodeKey(text: string): Uint8Array | null {
  if (typeof text !== 'string' || text.length !== 40) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const d = Z85_INDEX.get(text[i * 5 + j]!);
      if (d === undefined) return null;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return null;
    out[i * 4] = (v >>> 24) & 0xff;
    out[i * 4 + 1] = (v >>> 16) & 0xff;
    out[i * 4 + 2] = (v >>> 8) & 0xff;
    out[i * 4 + 3] = v & 0xff;
  }
  return z85Encode(out) === text ? out : null;
}

export function isZ85Key(text: string): boolean {
  return z85DecodeKey(text) !== null;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

export function base64urlEncode(data: Uint8Array): string {
  return Buffer.from(data).toString('base64url');
}

/** Strict base64url without padding of exactly `expectedBytes` bytes, canonical spelling only. */
export function base64urlDecode(text: string, expectedBytes: number): Uint8Array | null {
  if (text.length !== Math.floor((expectedBytes * 4 + 2) / 3) || !B64URL.test(text)) return null;
  const data = Buffer.from(text, 'base64url');
  if (data.length !== expectedBytes || data.toString('base64url') !== text) return null;
  return new Uint8Array(data);
}

function hexEncode(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

// ---- tokens ---------------------------------------------------------------------------------

const SHAPE = 'a muster token looks like muster1.<16 hex>.<43 chars>.<43 chars>';
const TOKEN_CHARS = /^[A-Za-z0-9._-]*$/;

/** A parsed enrollment token. */
export class Token {
  constructor(
    /** 16 lowercase hex digits. */
    readonly id: string,
    /** 32 bytes. */
    readonly secret: Uint8Array,
    /** 32 bytes. */
    readonly daemonPublicKey: Uint8Array,
  ) {}
  /** The daemon key as Z85, for ZMQ_CURVE_SERVERKEY. */
  get daemonPublicKeyZ85(): string {
    return z85Encode(this.daemonPublicKey);
  }
  get secretHex(): string {
    return hexEncode(this.secret);
  }
  toString(): string {
    return `${TOKEN_TAG}.${this.id}.${base64urlEncode(this.secret)}.${base64urlEncode(this.daemonPublicKey)}`;
  }
  toJSON(): object {
    return { id: this.id, daemonPublicKey: this.daemonPublicKeyZ85, secret: '<hidden>' };
  }
}

/** Strict, nothing trimmed; throws TokenFormatError with the C++ kinds and messages. */
export function parseToken(text: string): Token {
  if (typeof text !== 'string') throw new TokenFormatError('BadCharacters', `it is not text (${SHAPE})`);
  if (text.length === 0) throw new TokenFormatError('Empty', 'it is empty');
  if (/[ \t\n\r]/.test(text)) {
    throw new TokenFormatError(
      'Whitespace',
      'it contains spaces or line breaks (copy exactly the one line printed by `muster token create`)',
    );
  }
  if (!TOKEN_CHARS.test(text)) {
    throw new TokenFormatError('BadCharacters', `it contains characters other than letters, digits, '.', '-' and '_' (${SHAPE})`);
  }
  if (text.slice(0, TOKEN_TAG.length + 1) !== `${TOKEN_TAG}.`) {
    throw new TokenFormatError('WrongTag', `it does not start with '${TOKEN_TAG}.' (${SHAPE})`);
  }
  if (text.length !== TOKEN_TEXT_LENGTH) {
    throw new TokenFormatError(
      'WrongLength',
      `it has ${text.length} characters, a token has ${TOKEN_TEXT_LENGTH} (truncated or extended?)`,
    );
  }
  const parts = text.split('.');
  if (parts.length > 4) throw new TokenFormatError('WrongPartCount', `more than four '.'-separated parts (${SHAPE})`);
  if (parts.length !== 4) {
    throw new TokenFormatError('WrongPartCount', `${parts.length} '.'-separated parts instead of 4 (${SHAPE})`);
  }
  if (!/^[0-9a-f]{16}$/.test(parts[1]!)) {
    throw new TokenFormatError('BadId', 'the id (second part) is not 16 lowercase hex digits');
  }
  const secret = base64urlDecode(parts[2]!, 32);
  if (!secret) {
    throw new TokenFormatError('BadSecret', 'the secret (third part) is not 43 base64url characters encoding 32 bytes');
  }
  const key = base64urlDecode(parts[3]!, 32);
  if (!key) {
    throw new TokenFormatError(
      'BadDaemonKey',
      'the daemon key (fourth part) is not 43 base64url characters encoding 32 bytes',
    );
  }
  return new Token(parts[1]!, secret, key);
}

// ---- where the token comes from -------------------------------------------------------------

export interface FoundToken {
  /** Trimmed text, not yet parsed. */
  token: string;
  /** "MUSTER_ENROLLMENT_TOKEN" or "file /path" (for messages; not secret). */
  source: string;
}

function trimWs(s: string): string {
  return s.replace(/^[ \t\n\r]+/, '').replace(/[ \t\n\r]+$/, '');
}

/** $XDG_CONFIG_HOME/muster/enrollment-token (absolute XDG_CONFIG_HOME), else ~/.config/...; null if unknown. */
export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env): string | null {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'muster', 'enrollment-token');
  const home = env.HOME;
  if (home) return path.join(home, '.config', 'muster', 'enrollment-token');
  return null;
}

function readTokenFile(file: string, mustExist: boolean, warn?: (m: string) => void): FoundToken | null {
  const data = readFileOrNull(file);
  if (data === null) {
    if (mustExist) throw new Error(`enrollment token file ${file} does not exist`);
    return null;
  }
  try {
    if ((fs.statSync(file).mode & 0o077) !== 0) {
      warn?.(`enrollment token file ${file} can be read by other users; consider: chmod 600 ${file}`);
    }
  } catch {
    /* gone meanwhile: the read above decides */
  }
  const token = trimWs(data.toString('utf8'));
  if (!token) {
    if (mustExist) throw new Error(`enrollment token file ${file} is empty`);
    return null;
  }
  return { token, source: `file ${file}` };
}

/**
 * The token, in this order: $MUSTER_ENROLLMENT_TOKEN (if non-empty), `tokenFile` (which must
 * then exist and hold a token), the default file (only if it exists). Whitespace around it is
 * trimmed. null if none has one.
 */
export function findEnrollmentToken(
  tokenFile?: string | null,
  env: NodeJS.ProcessEnv = process.env,
  warn?: (message: string) => void,
): FoundToken | null {
  const v = env[TOKEN_ENV_VAR];
  if (v !== undefined) {
    const token = trimWs(v);
    if (token) return { token, source: TOKEN_ENV_VAR };
  }
  if (tokenFile) return readTokenFile(tokenFile, true, warn);
  const def = defaultTokenFile(env);
  if (def) return readTokenFile(def, false, warn);
  return null;
}

// ---- files ----------------------------------------------------------------------------------

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}: ${err.message.replace(/^[A-Z]+: /, '')}` : String(e);
}

/** The whole file, or null if it does not exist. */
export function readFileOrNull(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot open ${file}: ${errnoText(e)}`);
  }
}

/** Like readFileOrNull, but refuses a file that grants group or others any permission. */
export function readPrivateFile(file: string): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot open ${file}: ${errnoText(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      throw new KeyPermissionError(
        `${file} holds a secret but is accessible by group or others (mode ${mode}); refusing to use it. Fix: chmod 600 ${file}`,
      );
    }
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Temp file next to `file` (0600), chmod `mode`, write, fsync, rename, fsync the directory. */
export function writeFileAtomic(file: string, content: string | Uint8Array, mode = 0o600): void {
  const dir = path.dirname(file);
  let tmp = '';
  let fd = -1;
  for (let attempt = 0; fd < 0; attempt++) {
    tmp = path.join(dir, `.${path.basename(file)}.tmp-${randomBytes(6).toString('base64url')}`);
    try {
      fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 10) {
        throw new Error(`cannot create a temp file next to ${file}: ${errnoText(e)}`);
      }
    }
  }
  try {
    try {
      fs.fchmodSync(fd, mode);
      fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/** Creates `dir` (0700, parents as needed) if missing; refuses one that group or others can write. */
export function ensureDataDir(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot stat ${dir}: ${errnoText(e)}`);
    const parent = path.dirname(path.normalize(dir));
    if (parent) fs.mkdirSync(parent, { recursive: true });
    try {
      fs.mkdirSync(dir, 0o700);
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create ${dir}: ${errnoText(e2)}`);
    }
    st = fs.statSync(dir);
  }
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    throw new KeyPermissionError(
      `data directory ${dir} is writable by group or others (mode ${mode}), so they could replace keys or identities; refusing to use it. Fix: chmod 700 ${dir}`,
    );
  }
}

// ---- CURVE key files ------------------------------------------------------------------------

export interface KeyPair {
  /** Z85 */
  publicKey: string;
  /** Z85 */
  secretKey: string;
}

export function generateKeyPair(): KeyPair {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey };
}

// An X25519 private key in PKCS#8 DER is this prefix followed by its 32 bytes.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The Z85 public key of a Z85 secret key (what zmq_curve_public computes). */
export function derivePublicKey(secretZ85: string): string {
  const sk = z85DecodeKey(secretZ85);
  if (!sk) throw new RangeError('secret key is not a 40-character Z85 key');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, sk]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return z85Encode(new Uint8Array(spki.subarray(spki.length - 32)));
}

export function keyPairMatches(pair: KeyPair): boolean {
  if (!isZ85Key(pair.publicKey) || !isZ85Key(pair.secretKey)) return false;
  return derivePublicKey(pair.secretKey) === pair.publicKey;
}

export function formatSecretKeyFile(pair: KeyPair): string {
  return `# muster CURVE key pair. Secret: keep this file private (chmod 600).\npublic=${pair.publicKey}\nsecret=${pair.secretKey}\n`;
}

export function formatPublicKeyFile(publicZ85: string): string {
  return `# muster CURVE public key. Safe to share.\npublic=${publicZ85}\n`;
}

function trimKf(s: string): string {
  return s.replace(/^[ \t]+/, '').replace(/[ \t\r]+$/, '');
}

function keyLines(text: string, source: string): { pub: string | null; sec: string | null } {
  const found: Record<'public' | 'secret', string | null> = { public: null, secret: null };
  let rest = text;
  let lineno = 0;
  while (rest.length > 0) {
    const nl = rest.indexOf('\n');
    let line: string;
    if (nl < 0) {
      line = rest;
      rest = '';
    } else {
      line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
    lineno += 1;
    line = trimKf(line);
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new KeyFileError(`${source}: line ${lineno}: expected \`public=<z85>\` or \`secret=<z85>\``);
    const name = trimKf(line.slice(0, eq));
    const value = trimKf(line.slice(eq + 1));
    if (name !== 'public' && name !== 'secret') {
      throw new KeyFileError(`${source}: line ${lineno}: unknown field \`${name}\` (expected public or secret)`);
    }
    if (found[name] !== null) throw new KeyFileError(`${source}: line ${lineno}: \`${name}\` given twice`);
    if (!isZ85Key(value)) throw new KeyFileError(`${source}: line ${lineno}: \`${name}\` is not a 40-character Z85 key`);
    found[name] = value;
  }
  return { pub: found.public, sec: found.secret };
}

export function parseSecretKeyFile(text: string, source: string): KeyPair {
  const { pub, sec } = keyLines(text, source);
  if (sec === null) throw new KeyFileError(`${source}: no \`secret=\` line: not a secret key file`);
  if (pub === null) throw new KeyFileError(`${source}: no \`public=\` line`);
  const pair = { publicKey: pub, secretKey: sec };
  if (!keyPairMatches(pair)) {
    throw new KeyFileError(`${source}: the public key does not belong to the secret key (file damaged or edited)`);
  }
  return pair;
}

export function parsePublicKeyFile(text: string, source: string): string {
  const { pub, sec } = keyLines(text, source);
  if (sec !== null) {
    throw new KeyFileError(`${source} contains a secret key; a public key file must contain only \`public=\`. Do not share this file.`);
  }
  if (pub === null) throw new KeyFileError(`${source}: no \`public=\` line`);
  return pub;
}

export function loadSecretKeyFile(file: string): KeyPair {
  const data = readPrivateFile(file);
  if (data === null) throw new KeyFileError(`secret key file ${file} does not exist`);
  return parseSecretKeyFile(data.toString('utf8'), file);
}

export function writeSecretKeyFile(file: string, pair: KeyPair): void {
  if (!keyPairMatches(pair)) throw new RangeError('refusing to write a key pair whose halves do not match');
  writeFileAtomic(file, formatSecretKeyFile(pair), 0o600);
}

export function writePublicKeyFile(file: string, publicZ85: string): void {
  if (!isZ85Key(publicZ85)) throw new RangeError('not a 40-character Z85 public key');
  writeFileAtomic(file, formatPublicKeyFile(publicZ85), 0o644);
}

/** Loads the pair from `secretPath`, or generates one and writes both files (public first). */
export function loadOrCreateKeyPair(
  secretPath: string,
  publicPath: string,
  log?: { info(m: string): void; warn(m: string): void },
): { keys: KeyPair; created: boolean } {
  if (!fs.existsSync(secretPath)) {
    const keys = generateKeyPair();
    writePublicKeyFile(publicPath, keys.publicKey);
    writeSecretKeyFile(secretPath, keys);
    log?.info(`created CURVE key pair ${secretPath} (public key ${keys.publicKey})`);
    return { keys, created: true };
  }
  const keys = loadSecretKeyFile(secretPath);
  let pub: string | null = null;
  try {
    const data = readFileOrNull(publicPath);
    if (data !== null) pub = parsePublicKeyFile(data.toString('utf8'), publicPath);
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    log?.warn(`${e.message}; rewriting it from ${secretPath}`);
  }
  if (pub !== keys.publicKey) {
    if (pub !== null) log?.warn(`${publicPath} does not match ${secretPath}; rewriting it`);
    writePublicKeyFile(publicPath, keys.publicKey);
  }
  return { keys, created: false };
}

// ---- the saved identity ---------------------------------------------------------------------

/** [A-Za-z0-9_.-]{1,64}, not starting with '.' or '-'. */
export function isValidFileStem(s: string): boolean {
  return typeof s === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(s);
}

function isValidLabel(s: string): boolean {
  const b = Buffer.from(s, 'utf8');
  return b.length <= 128 && !b.some((c) => c < 0x20 || c === 0x7f);
}

export interface LocalIdentityPaths {
  secretKey: string;
  publicKey: string;
  identity: string;
}

export function localIdentityPaths(dataDir: string, name: string): LocalIdentityPaths {
  if (!isValidFileStem(name)) {
    const shown = typeof name === 'string' && isValidLabel(name) ? name : '<unprintable>';
    throw new RangeError(`invalid identity name '${shown}': use 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)`);
  }
  return {
    secretKey: path.join(dataDir, `${name}-curve.key`),
    publicKey: path.join(dataDir, `${name}-curve.pub`),
    identity: path.join(dataDir, `${name}-identity.json`),
  };
}

/** YYYY-MM-DDTHH:MM:SS.mmmZ (UTC). */
export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}

/** YYYY-MM-DDTHH:MM:SS[.mmm]Z → milliseconds since the epoch, or null. */
export function parseTimestamp(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?Z$/.exec(text);
  if (!m || (text.length !== 20 && text.length !== 24)) return null;
  const [Y, M, D, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = m[7] ? Number(m[7]) : 0;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || s > 60) return null;
  // Like the C++ timegm: day 31 of a short month and second 60 roll over; years 0..99 stay.
  const d = new Date(0);
  d.setUTCFullYear(Y, M - 1, D);
  d.setUTCHours(h, mi, s, ms);
  return d.getTime();
}

export interface LocalIdentity {
  identityId: string;
  role: Role;
  workspace: string;
  name: string;
  /** Z85: this peer's key, as enrolled. */
  publicKey: string;
  /** Z85: the daemon it enrolled with. */
  daemonPublicKey: string;
  /** Milliseconds since the epoch. */
  enrolledAt: number;
}

/** <name>-identity.json, or null if it does not exist; throws naming the file if malformed. */
export function loadLocalIdentity(dataDir: string, name: string): LocalIdentity | null {
  const paths = localIdentityPaths(dataDir, name);
  const data = readFileOrNull(paths.identity);
  if (data === null) return null;
  try {
    let j: unknown;
    try {
      j = JSON.parse(data.toString('utf8'));
    } catch (e) {
      throw new Error(`not JSON (${(e as Error).message})`);
    }
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not a JSON object');
    const o = j as Record<string, unknown>;
    if ((o.format ?? '') !== IDENTITY_FORMAT || (o.version ?? 0) !== IDENTITY_VERSION) {
      throw new Error('not a muster identity file (format/version)');
    }
    const str = (key: string, def?: string): string => {
      if (!(key in o)) {
        if (def !== undefined) return def;
        throw new Error(`missing ${key}`);
      }
      const v = o[key];
      if (typeof v !== 'string') throw new Error(`${key} is not a string`);
      return v;
    };
    const role = str('role');
    if (!(ROLES as readonly string[]).includes(role)) throw new Error('bad role');
    const id: LocalIdentity = {
      identityId: str('identity_id'),
      role: role as Role,
      workspace: str('workspace'),
      name: str('name', ''),
      publicKey: str('public_key'),
      daemonPublicKey: str('daemon_public_key'),
      enrolledAt: 0,
    };
    if (!isZ85Key(id.publicKey) || !isZ85Key(id.daemonPublicKey)) {
      throw new Error('public_key or daemon_public_key is not a Z85 key');
    }
    const at = parseTimestamp(str('enrolled_at'));
    if (at === null) throw new Error('bad enrolled_at');
    id.enrolledAt = at;
    return id;
  } catch (e) {
    throw new Error(`${paths.identity} is not a valid identity file: ${(e as Error).message} (delete it to enroll again)`);
  }
}

/** The file's text exactly as the C++ save_local_identity writes it (keys sorted, indent 2). */
export function formatLocalIdentity(id: LocalIdentity): string {
  const j = {
    daemon_public_key: id.daemonPublicKey,
    enrolled_at: formatTimestamp(id.enrolledAt),
    format: IDENTITY_FORMAT,
    identity_id: id.identityId,
    name: id.name,
    public_key: id.publicKey,
    role: id.role,
    version: IDENTITY_VERSION,
    workspace: id.workspace,
  };
  return `${JSON.stringify(j, null, 2)}\n`;
}

export function saveLocalIdentity(dataDir: string, name: string, id: LocalIdentity): void {
  writeFileAtomic(localIdentityPaths(dataDir, name).identity, formatLocalIdentity(id), 0o600);
}

export function loadOrCreateLocalKeys(
  dataDir: string,
  name: string,
  log?: { info(m: string): void; warn(m: string): void },
): { keys: KeyPair; created: boolean } {
  const paths = localIdentityPaths(dataDir, name);
  ensureDataDir(dataDir);
  return loadOrCreateKeyPair(paths.secretKey, paths.publicKey, log);
}

export interface EnrollmentPlan {
  keys: KeyPair;
  /** ZMQ_CURVE_SERVERKEY for enrollment and every socket. */
  daemonPublicKey: string;
  /** Set: already enrolled. */
  identity: LocalIdentity | null;
  /** Set: enroll first, sending this token text. */
  token: string | null;
}

/**
 * The enroll-or-reuse decision of keys/src/local_identity.cpp plan_enrollment: a saved identity
 * is reused (a token or configured key naming another daemon key → DaemonKeyMismatch); without
 * one a token is required (NotEnrolled) and must parse (TokenFormatError). Creates the key pair
 * on first use. Opens no socket.
 */
export function planEnrollment(
  dataDir: string,
  name: string,
  tokenText: string | null,
  configuredDaemonKey: string | null = null,
  log?: { info(m: string): void; warn(m: string): void },
): EnrollmentPlan {
  const paths = localIdentityPaths(dataDir, name);
  if (configuredDaemonKey !== null && !isZ85Key(configuredDaemonKey)) {
    throw new RangeError('the configured daemon public key is not a 40-character Z85 key');
  }
  const { keys } = loadOrCreateLocalKeys(dataDir, name, log);
  const token = tokenText !== null ? parseToken(tokenText) : null;
  const saved = loadLocalIdentity(dataDir, name);
  if (saved !== null) {
    if (saved.publicKey !== keys.publicKey) {
      throw new Error(
        `${paths.identity} was enrolled for public key ${saved.publicKey}, but ${paths.secretKey} holds key ${keys.publicKey}; the key file was replaced. Restore the old key file, or delete ${paths.identity} and enroll this key with a new token`,
      );
    }
    if (configuredDaemonKey !== null && configuredDaemonKey !== saved.daemonPublicKey) {
      throw new DaemonKeyMismatch(
        `the configured daemon key ${configuredDaemonKey} is not the key ${saved.daemonPublicKey} that ${paths.identity} was enrolled with. muster never re-trusts a daemon silently: fix the configuration, or, if the daemon's key was rotated on purpose, delete ${paths.identity} and enroll again with a new token`,
      );
    }
    if (token !== null && token.daemonPublicKeyZ85 !== saved.daemonPublicKey) {
      throw new DaemonKeyMismatch(
        `the enrollment token is for daemon key ${token.daemonPublicKeyZ85}, but ${paths.identity} was enrolled with daemon key ${saved.daemonPublicKey}. muster never re-trusts a daemon silently: if the daemon's key was rotated on purpose, delete ${paths.identity} and run again to enroll with the new token; otherwise remove the token`,
      );
    }
    return { keys, daemonPublicKey: saved.daemonPublicKey, identity: saved, token: null };
  }
  if (token === null) {
    throw new NotEnrolled(
      `not enrolled yet (${paths.identity} does not exist) and no enrollment token found: set MUSTER_ENROLLMENT_TOKEN, pass --enrollment-token-file FILE, or put the token in $XDG_CONFIG_HOME/muster/enrollment-token (default ~/.config/muster/enrollment-token)`,
    );
  }
  const daemonKey = token.daemonPublicKeyZ85;
  if (configuredDaemonKey !== null && configuredDaemonKey !== daemonKey) {
    throw new DaemonKeyMismatch(
      `the enrollment token is for daemon key ${daemonKey}, but the configured daemon key is ${configuredDaemonKey}; refusing to enroll with either. Get a token from the daemon you mean`,
    );
  }
  return { keys, daemonPublicKey: daemonKey, identity: null, token: tokenText };
}

/** After an ok EnrollResponse: saves and returns the identity. */
export function recordEnrollment(
  dataDir: string,
  name: string,
  plan: EnrollmentPlan,
  identityId: string,
  role: string,
  workspace: string,
  enrolledName: string,
  now: number = Date.now(),
): LocalIdentity {
  if (!(ROLES as readonly string[]).includes(role)) throw new RangeError('the daemon answered with an unknown role');
  if (!identityId) throw new RangeError('the daemon answered without an identity id');
  const saved = loadLocalIdentity(dataDir, name);
  if (saved !== null && saved.daemonPublicKey !== plan.daemonPublicKey) {
    throw new DaemonKeyMismatch(`${localIdentityPaths(dataDir, name).identity} already holds an identity for another daemon key`);
  }
  const id: LocalIdentity = {
    identityId,
    role: role as Role,
    workspace,
    name: enrolledName,
    publicKey: plan.keys.publicKey,
    daemonPublicKey: plan.daemonPublicKey,
    enrolledAt: now,
  };
  saveLocalIdentity(dataDir, name, id);
  return id;
}

/**
 * Where a peer keeps its keys and identity when no dataDir is given: $MUSTER_DATA_DIR, else
 * $XDG_DATA_HOME/muster, else ~/.local/share/muster (musterd's default data directory too; the
 * file names do not collide).
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MUSTER_DATA_DIR) return env.MUSTER_DATA_DIR;
  if (env.XDG_DATA_HOME) return path.join(env.XDG_DATA_HOME, 'muster');
  if (env.HOME) return path.join(env.HOME, '.local', 'share', 'muster');
  return path.join(runtimeDir(env), 'data');
}
