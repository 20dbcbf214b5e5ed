// Parse each file's ```mermaid block (or the whole file) with Mermaid's own parser; one JSON line
// per file on stdout: {"file", "ok", "type"} or {"file", "ok": false, "error"}. Exit 1 if any fails.
// Mermaid needs a DOM for its sanitizer, even to parse: jsdom provides one.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });

let failed = false;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const block = text.match(/```mermaid\n([\s\S]*?)```/);
  try {
    const result = await mermaid.parse(block ? block[1] : text);
    console.log(JSON.stringify({ file, ok: true, type: result.diagramType }));
  } catch (e) {
    failed = true;
    console.log(JSON.stringify({ file, ok: false, error: String(e.message ?? e) }));
  }
}
process.exit(failed ? 1 : 0);
