// Copies the static parts of the console (index.html, the style sheet) into dist/ beside the
// bundle esbuild wrote; dist/ is committed and compiled into the gateway (admin/src/console.rs).
import { copyFileSync, mkdirSync } from "node:fs";
mkdirSync("dist/assets", { recursive: true });
copyFileSync("index.html", "dist/index.html");
copyFileSync("src/app.css", "dist/assets/app.css");
