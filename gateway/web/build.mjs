// build.mjs — bundles the dashboard (src/) into the directory muster-gateway serves:
//   <out>/index.html            the page (no-cache), naming the bundles below
//   <out>/assets/main-<hash>.js  every module and uPlot, one ES module (cached forever)
//   <out>/assets/main-<hash>.css the styles and uPlot's
//   <out>/assets/favicon.svg
// Run by the CMake target muster-gateway-web (gateway/CMakeLists.txt) after `npm ci` in this
// folder (tools/lib/setup.sh). Must never fetch anything: the page loads only these files.
// Usage: node build.mjs --out DIR
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outArg = process.argv.indexOf("--out");
if (outArg < 0 || !process.argv[outArg + 1]) {
  console.error("usage: node build.mjs --out DIR");
  process.exit(2);
}
const out = resolve(process.argv[outArg + 1]);

let esbuild;
try {
  esbuild = await import("esbuild");
} catch {
  console.error(`gateway/web: esbuild is not installed: run \`npm ci\` in ${here} (tools/lib/setup.sh does)`);
  process.exit(1);
}

const assets = join(out, "assets");
rmSync(assets, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked",
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.endsWith(".js"));
const css = outputs.find((f) => f.endsWith(".css"));
if (!js || !css) {
  console.error(`gateway/web: esbuild produced ${outputs.join(", ")}; expected a .js and a .css bundle`);
  process.exit(1);
}
copyFileSync(join(here, "src", "favicon.svg"), join(assets, "favicon.svg"));
const page = readFileSync(join(here, "src", "index.html"), "utf8")
  .replaceAll("{{APP_JS}}", `/assets/${js}`)
  .replaceAll("{{APP_CSS}}", `/assets/${css}`);
writeFileSync(join(out, "index.html"), page);
console.log(`gateway/web: bundled ${readdirSync(assets).join(", ")} into ${out}`);
