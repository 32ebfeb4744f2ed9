// keys.test.ts — tokens, key files, the saved identity and enrollment (src/keys.ts,
// src/enrollment.ts) against the fixtures the C++ keys library wrote (tests/vectors/keys:
// tokens.json with the C++ parse result of every malformed spelling, and a peer data directory
// written by save_local_identity / load_or_create_key_pair), and against a fake enrollment
// endpoint that speaks CURVE.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import * as zmq from 'zeromq';

import {
  Client,
  DaemonKeyMismatch,
  EnrollmentError,
  ErrorCode,
  KeyFileError,
  KeyPermissionError,
  NotEnrolled,
  TokenFormatError,
  decodeClientMessage,
  decodeEnrollRequest,
  derivePublicKey,
  encodeClientReply,
  encodeEnrollResponse,
  findEnrollmentToken,
  formatPublicKeyFile,
  formatSecretKeyFile,
  formatTimestamp,
  loadLocalIdentity,
  loadOrCreateLocalKeys,
  loadSecretKeyFile,
  parsePublicKeyFile,
  parseSecretKeyFile,
  parseTimestamp,
  parseToken,
  planEnrollment,
  prepareCurve,
  saveLocalIdentity,
  z85DecodeKey,
  z85Encode,
  type EnrollRequest,
  type EnrollResponse,
} from '../src';
import { tempDir } from './fake-daemon';

const VECTORS = process.env.MUSTER_VECTORS_DIR || path.resolve(__dirname, '..', '..', '..', '..', 'tests', 'vectors');
const FIXTURES = path.join(VECTORS, 'keys');
interface TokenCase {
  what: string;
  text: string;
  error: string;
  message: string;
}
const TOKENS = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tokens.json'), 'utf8')) as {
  valid: { text: string; id: string; secret_hex: string; daemon_public_key: string }[];
  invalid: TokenCase[];
};
const FIXTURE_TOKEN = TOKENS.valid[0]!;
const FILES = ['worker-curve.key', 'worker-curve.pub', 'worker-identity.json'];

function makeToken(daemonPublic: string, id = '00112233445566ff', secret = Buffer.alloc(32, 7)): string {
  const key = z85DecodeKey(daemonPublic)!;
  return `muster1.${id}.${secret.toString('base64url')}.${Buffer.from(key).toString('base64url')}`;
}

/** The C++-written peer data directory with the modes it has in real life (git keeps 0644). */
function privateCopy(): string {
  const d = path.join(tempDir(), 'peer');
  fs.mkdirSync(d, 0o700);
  for (const f of FILES) {
    fs.copyFileSync(path.join(FIXTURES, 'data', f), path.join(d, f));
    fs.chmodSync(path.join(d, f), 0o600);
  }
  return d;
}

const savedEnv = { token: process.env.MUSTER_ENROLLMENT_TOKEN, xdg: process.env.XDG_CONFIG_HOME };
before(() => {
  delete process.env.MUSTER_ENROLLMENT_TOKEN;
  process.env.XDG_CONFIG_HOME = path.join(tempDir(), 'config');
});
afterEach(() => {
  delete process.env.MUSTER_ENROLLMENT_TOKEN;
});
after(() => {
  if (savedEnv.token !== undefined) process.env.MUSTER_ENROLLMENT_TOKEN = savedEnv.token;
  if (savedEnv.xdg !== undefined) process.env.XDG_CONFIG_HOME = savedEnv.xdg;
  else delete process.env.XDG_CONFIG_HOME;
});

describe('tokens', () => {
  it('parses the C++ token to the same id, secret and daemon key', () => {
    for (const v of TOKENS.valid) {
      const t = parseToken(v.text);
      assert.equal(t.id, v.id);
      assert.equal(t.secretHex, v.secret_hex);
      assert.equal(t.daemonPublicKeyZ85, v.daemon_public_key);
      assert.equal(t.toString(), v.text);
      assert.ok(!JSON.stringify(t).includes(v.text.slice(30, 60)));
    }
  });

  for (const c of TOKENS.invalid) {
    it(`refuses like C++: ${c.what}`, () => {
      assert.throws(
        () => parseToken(c.text),
        (e: unknown) => e instanceof TokenFormatError && e.kind === c.error && e.message === c.message,
      );
    });
  }

  it('round-trips random tokens; Z85 agrees with libzmq', () => {
    for (let i = 0; i < 50; i++) {
      const { publicKey, secretKey } = zmq.curveKeyPair();
      assert.equal(z85Encode(z85DecodeKey(publicKey)!), publicKey);
      assert.equal(derivePublicKey(secretKey), publicKey);
      const tok = makeToken(publicKey, Buffer.from(Array.from({ length: 8 }, () => Math.floor(Math.random() * 256))).toString('hex'));
      assert.equal(parseToken(tok).toString(), tok);
      assert.equal(parseToken(tok).daemonPublicKeyZ85, publicKey);
    }
    assert.equal(z85DecodeKey('#'.repeat(40)), null);
    assert.equal(z85DecodeKey('~'.repeat(40)), null);
  });

  it('finds the token: environment, then the flag file, then $XDG_CONFIG_HOME', () => {
    const dir = tempDir();
    const flag = path.join(dir, 'flag-token');
    fs.writeFileSync(flag, '  flag-token\n');
    const xdg = path.join(dir, 'xdg');
    fs.mkdirSync(path.join(xdg, 'muster'), { recursive: true });
    fs.writeFileSync(path.join(xdg, 'muster', 'enrollment-token'), 'xdg-token\n');
    const env: NodeJS.ProcessEnv = { MUSTER_ENROLLMENT_TOKEN: ' env-token \n', XDG_CONFIG_HOME: xdg, HOME: dir };
    assert.deepEqual(findEnrollmentToken(flag, env), { token: 'env-token', source: 'MUSTER_ENROLLMENT_TOKEN' });
    env.MUSTER_ENROLLMENT_TOKEN = ' ';
    assert.deepEqual(findEnrollmentToken(flag, env), { token: 'flag-token', source: `file ${flag}` });
    assert.deepEqual(findEnrollmentToken(undefined, env)?.token, 'xdg-token');
    env.XDG_CONFIG_HOME = 'relative';
    assert.equal(findEnrollmentToken(undefined, env), null);
    fs.mkdirSync(path.join(dir, '.config', 'muster'), { recursive: true });
    fs.writeFileSync(path.join(dir, '.config', 'muster', 'enrollment-token'), 'home-token');
    assert.equal(findEnrollmentToken(undefined, env)?.token, 'home-token');
    assert.throws(() => findEnrollmentToken(path.join(dir, 'missing'), env), /does not exist/);
    fs.writeFileSync(path.join(dir, 'empty'), '\n');
    assert.throws(() => findEnrollmentToken(path.join(dir, 'empty'), env), /is empty/);
  });
});

describe('key files and the saved identity', () => {
  it('reads the C++-written files and writes them back byte for byte', () => {
    const d = privateCopy();
    const plan = planEnrollment(d, 'worker', FIXTURE_TOKEN.text);
    assert.equal(plan.daemonPublicKey, FIXTURE_TOKEN.daemon_public_key);
    const id = plan.identity!;
    assert.equal(id.identityId, '3f1c9b2e-8d4a-4b6e-9f10-2a3b4c5d6e7f');
    assert.deepEqual([id.role, id.workspace, id.name], ['worker', 'research', 'gpu-box ✓']);
    assert.equal(formatTimestamp(id.enrolledAt), '2026-11-21T23:30:01.042Z');
    const read = (f: string) => fs.readFileSync(path.join(FIXTURES, 'data', f), 'utf8');
    assert.equal(formatSecretKeyFile(plan.keys), read('worker-curve.key'));
    assert.equal(formatPublicKeyFile(plan.keys.publicKey), read('worker-curve.pub'));
    saveLocalIdentity(d, 'copy', id);
    assert.equal(fs.readFileSync(path.join(d, 'copy-identity.json'), 'utf8'), read('worker-identity.json'));
    assert.equal(fs.statSync(path.join(d, 'copy-identity.json')).mode & 0o777, 0o600);
    for (const f of FILES) assert.equal(fs.readFileSync(path.join(d, f), 'utf8'), read(f));
  });

  it('creates key files in the C++ format and modes', () => {
    const d = path.join(tempDir(), 'new', 'data');
    const { keys, created } = loadOrCreateLocalKeys(d, 'client');
    assert.ok(created);
    assert.equal(fs.statSync(d).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(d, 'client-curve.key')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(d, 'client-curve.pub')).mode & 0o777, 0o644);
    assert.equal(fs.readFileSync(path.join(d, 'client-curve.key'), 'utf8'), formatSecretKeyFile(keys));
    assert.deepEqual(fs.readdirSync(d).filter((f) => f.startsWith('.')), []);
    assert.deepEqual(loadOrCreateLocalKeys(d, 'client'), { keys, created: false });
    fs.writeFileSync(path.join(d, 'client-curve.pub'), `public=${zmq.curveKeyPair().publicKey}\n`);
    loadOrCreateLocalKeys(d, 'client');
    assert.equal(fs.readFileSync(path.join(d, 'client-curve.pub'), 'utf8'), formatPublicKeyFile(keys.publicKey));
    assert.deepEqual(loadSecretKeyFile(path.join(d, 'client-curve.key')), keys);
  });

  it('refuses files and directories others can touch', () => {
    const d = privateCopy();
    fs.chmodSync(path.join(d, 'worker-curve.key'), 0o640);
    assert.throws(
      () => planEnrollment(d, 'worker', null),
      (e: unknown) => e instanceof KeyPermissionError && /mode 0640\); refusing to use it. Fix: chmod 600 .*worker-curve.key/.test(e.message),
    );
    fs.chmodSync(path.join(d, 'worker-curve.key'), 0o600);
    fs.chmodSync(d, 0o777);
    assert.throws(() => planEnrollment(d, 'worker', null), /Fix: chmod 700/);
    fs.chmodSync(d, 0o700);
    assert.ok(planEnrollment(d, 'worker', null).identity);
  });

  it('refuses bad key files with the C++ messages', () => {
    const { publicKey: pub, secretKey: sec } = zmq.curveKeyPair();
    const other = zmq.curveKeyPair().publicKey;
    assert.throws(() => parseSecretKeyFile(`public=${other}\nsecret=${sec}\n`, 'f'), /does not belong/);
    assert.throws(() => parseSecretKeyFile(`public=${pub}\npublic=${pub}\n`, 'f'), /line 2: `public` given twice/);
    assert.throws(() => parseSecretKeyFile('x=1\n', 'f'), /unknown field `x`/);
    assert.throws(() => parseSecretKeyFile('secret=abc\n', 'f'), KeyFileError);
    assert.throws(() => parsePublicKeyFile(`public=${pub}\nsecret=${sec}\n`, 'f'), /contains a secret key/);
    assert.deepEqual(parseSecretKeyFile(`# c\r\n\r\n  public = ${pub}\r\nsecret=\t${sec}  \r\n`, 'f'), { publicKey: pub, secretKey: sec });
  });

  it('decides to enroll, reuse or refuse like plan_enrollment', () => {
    const d = privateCopy();
    const other = zmq.curveKeyPair().publicKey;
    assert.throws(() => planEnrollment(d, 'worker', makeToken(other)), (e: unknown) => e instanceof DaemonKeyMismatch && /never re-trusts/.test(e.message));
    assert.throws(() => planEnrollment(d, 'worker', null, other), DaemonKeyMismatch);
    assert.ok(planEnrollment(d, 'worker', null, FIXTURE_TOKEN.daemon_public_key).identity);
    assert.throws(() => planEnrollment(d, 'worker', 'muster1.nope'), TokenFormatError);
    fs.unlinkSync(path.join(d, 'worker-curve.key'));
    assert.throws(() => planEnrollment(d, 'worker', null), /the key file was replaced/);
    const fresh = path.join(tempDir(), 'fresh');
    assert.throws(() => planEnrollment(fresh, 'worker', null), NotEnrolled);
    const plan = planEnrollment(fresh, 'worker', makeToken(other));
    assert.equal(plan.identity, null);
    assert.equal(plan.daemonPublicKey, other);
    assert.throws(() => planEnrollment(fresh, '../worker', null), /invalid identity name/);
    fs.writeFileSync(path.join(d, 'worker-identity.json'), '{}');
    assert.throws(() => loadLocalIdentity(d, 'worker'), /worker-identity.json is not a valid identity file.*delete it/);
  });

  it('reads and writes timestamps as the C++ library', () => {
    assert.equal(formatTimestamp(parseTimestamp('2026-11-21T23:30:01.042Z')!), '2026-11-21T23:30:01.042Z');
    assert.equal(formatTimestamp(parseTimestamp('2026-11-21T23:30:01Z')!), '2026-11-21T23:30:01.000Z');
    for (const bad of ['2026-11-21 23:30:01Z', '2026-13-01T00:00:00Z', '2026-11-21T23:30:01.04Z', '']) {
      assert.equal(parseTimestamp(bad), null);
    }
  });
});

// ---- enrollment against a fake CURVE endpoint ---------------------------------------------------

class FakeEnrollment {
  readonly keys = zmq.curveKeyPair();
  readonly sock = new zmq.Router({ linger: 0, curveServer: true });
  address = '';
  readonly requests: EnrollRequest[] = [];
  constructor(private answer: (r: EnrollRequest) => EnrollResponse) {
    this.sock.curveSecretKey = this.keys.secretKey;
  }
  async start(): Promise<this> {
    await this.sock.bind('tcp://127.0.0.1:*');
    this.address = this.sock.lastEndpoint!;
    void (async () => {
      try {
        for await (const [peer, data] of this.sock) {
          const req = decodeEnrollRequest(data!);
          this.requests.push(req);
          await this.sock.send([peer!, encodeEnrollResponse(this.answer(req))]);
        }
      } catch {
        /* closed */
      }
    })();
    return this;
  }
  close(): void {
    this.sock.close();
  }
}

const ok = (r: EnrollRequest): EnrollResponse => ({
  ok: true,
  identityId: 'id-1',
  role: r.role,
  workspace: 'research',
  name: 'gpu-box',
  code: ErrorCode.None,
  error: '',
});

describe('enrollment', () => {
  it('enrolls over CURVE, saves the identity, and reuses it', async () => {
    const fake = await new FakeEnrollment(ok).start();
    try {
      const data = path.join(tempDir(), 'data');
      const opts = { dataDir: data, enrollmentAddress: fake.address, hostname: 'my host!', enrollmentTimeoutMs: 5000 };
      await assert.rejects(prepareCurve(['tcp://127.0.0.1:1'], 'worker', opts), (e: unknown) => e instanceof EnrollmentError && e.codeNumber === ErrorCode.PermissionDenied);
      const tok = makeToken(fake.keys.publicKey);
      process.env.MUSTER_ENROLLMENT_TOKEN = tok;
      const curve = await prepareCurve(['tcp://127.0.0.1:1'], 'worker', opts);
      assert.equal(fake.requests.length, 1);
      const req = fake.requests[0]!;
      assert.deepEqual([req.token, req.role, req.name, req.hostname], [tok, 'worker', '', 'my-host-']);
      const pair = loadSecretKeyFile(path.join(data, 'worker-curve.key'));
      assert.equal(req.publicKey, pair.publicKey);
      assert.deepEqual(curve, { serverKey: fake.keys.publicKey, publicKey: pair.publicKey, secretKey: pair.secretKey });
      const saved = JSON.parse(fs.readFileSync(path.join(data, 'worker-identity.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(saved.identity_id, 'id-1');
      assert.deepEqual(Object.keys(saved), Object.keys(saved).sort());
      delete process.env.MUSTER_ENROLLMENT_TOKEN;
      assert.deepEqual(await prepareCurve(['tcp://127.0.0.1:1'], 'worker', { dataDir: data }), curve);
      assert.equal(fake.requests.length, 1);
    } finally {
      fake.close();
    }
  });

  it('reports a refusal, no answer (wrong daemon key) and a malformed token clearly', async () => {
    const fake = await new FakeEnrollment(() => ({
      ok: false,
      identityId: '',
      role: '',
      workspace: '',
      name: '',
      code: ErrorCode.PermissionDenied,
      error: 'unknown token',
    })).start();
    try {
      process.env.MUSTER_ENROLLMENT_TOKEN = makeToken(fake.keys.publicKey);
      await assert.rejects(
        prepareCurve(['tcp://127.0.0.1:1'], 'client', { dataDir: path.join(tempDir(), 'a'), enrollmentAddress: fake.address }),
        (e: unknown) => e instanceof EnrollmentError && e.codeNumber === ErrorCode.PermissionDenied && /refused by the daemon at .*: unknown token/.test(e.message),
      );
      process.env.MUSTER_ENROLLMENT_TOKEN = makeToken(zmq.curveKeyPair().publicKey);
      await assert.rejects(
        prepareCurve(['tcp://127.0.0.1:1'], 'client', { dataDir: path.join(tempDir(), 'b'), enrollmentAddress: fake.address, enrollmentTimeoutMs: 500 }),
        (e: unknown) => e instanceof EnrollmentError && e.codeNumber === ErrorCode.Unavailable && /no answer from the daemon .* not the one in the token/.test(e.message),
      );
      assert.equal(fake.requests.length, 1);
      process.env.MUSTER_ENROLLMENT_TOKEN = 'muster1.secret-stuff';
      await assert.rejects(
        prepareCurve(['tcp://127.0.0.1:1'], 'client', { dataDir: path.join(tempDir(), 'c') }),
        (e: unknown) =>
          e instanceof EnrollmentError && e.codeNumber === ErrorCode.InvalidRequest && /\(from MUSTER_ENROLLMENT_TOKEN\)/.test(e.message) && !e.message.includes('secret-stuff'),
      );
    } finally {
      fake.close();
    }
  });

  it('a Client enrolls, then its DEALER is a CURVE client of the daemon key', async () => {
    const fake = await new FakeEnrollment(ok).start();
    const router = new zmq.Router({ linger: 0, curveServer: true });
    router.curveSecretKey = fake.keys.secretKey;
    await router.bind('tcp://127.0.0.1:*');
    const dir = tempDir();
    process.env.MUSTER_ENROLLMENT_TOKEN = makeToken(fake.keys.publicKey);
    const client = new Client({ clientAddress: router.lastEndpoint!, dataDir: dir, enrollmentAddress: fake.address, logger: 'off' });
    try {
      const served = (async () => {
        const [peer, data] = await router.receive();
        const msg = decodeClientMessage(data!);
        await router.send([peer!, encodeClientReply({ requestId: msg.requestId, body: { type: 'AdminReport', json: '[{"id":"x"}]' } })]);
        return msg.body;
      })();
      assert.deepEqual(await client.keyList(), [{ id: 'x' }]);
      assert.deepEqual(await served, { type: 'KeyList' });
      assert.equal(fake.requests[0]!.role, 'client');
      assert.ok(fs.existsSync(path.join(dir, 'client-identity.json')));
    } finally {
      client.close();
      router.close();
      fake.close();
    }
  });
});
