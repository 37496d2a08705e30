// Parse Mermaid files with the real Mermaid parser (the browser library, under jsdom).
// Usage: node check.mjs FILE.mmd...   Prints "ok FILE TYPE" or "error FILE: MESSAGE" per file;
// exit code 1 if any file does not parse.  Installed by scripts/setup.sh (npm ci here).
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ["navigator", "Element", "HTMLElement", "Node", "DOMParser", "SVGElement"]) {
  if (!(name in globalThis)) {
    try { globalThis[name] = dom.window[name]; } catch { /* read-only in this Node version */ }
  }
}
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let bad = 0;
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, "utf8"));
    console.log(`ok ${file} ${result.diagramType}`);
  } catch (e) {
    bad += 1;
    console.log(`error ${file}: ${String(e?.message ?? e).split("\n").join(" ")}`);
  }
}
process.exit(bad ? 1 : 0);
