// Writes dist/index.html: console/index.html minified (the whitespace between tags and at line
// starts dropped; no other change, the page holds no inline script or style). The bundle and the
// minified style sheet are esbuild's (package.json). dist/ is committed and compiled into the
// gateway (admin/src/console.rs).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
mkdirSync("dist", { recursive: true });
const html = readFileSync("index.html", "utf8")
  .split("\n")
  .map((line) => line.trim())
  .join("")
  .replace(/>\s+</g, "><");
writeFileSync("dist/index.html", `${html}\n`);
