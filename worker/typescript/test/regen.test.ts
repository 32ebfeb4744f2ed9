// regen.test.ts — the committed bindings in src/wire/ must equal what flatc generates from
// schema/*.fbs now: regenerate into a temporary directory and compare every file.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'node:test';

const packageDir = path.resolve(__dirname, '..', '..');
const committed = path.join(packageDir, 'src', 'wire');
const FLATC_VERSION = '2.0.8';

function listFiles(dir: string, base = dir): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]))
    .sort();
}

function flatcVersion(): string | null {
  const r = spawnSync(process.env.FLATC || 'flatc', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim().replace(/^flatc version /, '');
}

const version = flatcVersion();
const skip =
  version === null ? 'flatc is not installed' : version !== FLATC_VERSION ? `flatc is ${version}, the bindings come from ${FLATC_VERSION}` : false;

it('src/wire/ is exactly what `npm run regen` generates from schema/', { skip }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'muster-regen-'));
  try {
    execFileSync(process.execPath, [path.join(packageDir, 'scripts', 'regen.js'), out], { stdio: 'pipe' });
    const want = listFiles(out);
    const have = listFiles(committed);
    assert.deepEqual(have, want, 'the set of generated files differs: run `npm run regen`');
    for (const f of want) {
      const a = fs.readFileSync(path.join(out, f), 'utf8');
      const b = fs.readFileSync(path.join(committed, f), 'utf8');
      assert.equal(b, a, `${f} differs from what flatc generates: run \`npm run regen\``);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
