// Runs solc-js's standard-JSON compiler on a file and writes the output to a file.
// Called by tools/solc (see there for why files, not pipes). Imports are resolved inside
// the base path and the allowed paths only, like native solc.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

function importResolver(basePath, allowPaths) {
  const roots = [basePath || process.cwd(), ...allowPaths].map((p) => path.resolve(p));
  return (importPath) => {
    const full = path.resolve(roots[0], importPath);
    if (!roots.some((root) => full === root || full.startsWith(root + path.sep))) {
      return { error: `import outside the base and allowed paths: ${importPath}` };
    }
    try {
      return { contents: fs.readFileSync(full, "utf8") };
    } catch (err) {
      return { error: `cannot read import ${importPath}: ${err.message}` };
    }
  };
}

function main(argv) {
  if (argv[0] === "--version") {
    process.stdout.write(solc.version() + "\n");
    return;
  }
  const [, inputFile, outputFile, basePath, allowPaths] = argv;
  const input = fs.readFileSync(inputFile, "utf8");
  const allowed = allowPaths ? allowPaths.split(",").filter(Boolean) : [];
  const output = solc.compile(input, { import: importResolver(basePath, allowed) });
  fs.writeFileSync(outputFile, output);
}

main(process.argv.slice(2));
