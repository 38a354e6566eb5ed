#!/usr/bin/env node
// The `spillway` command. This launcher is plain JavaScript that any Node.js
// parses, so an unsupported Node gets one line naming the version needed
// (package.json `engines`) instead of a syntax or file-extension error. In a
// clone it runs the TypeScript sources (Node 24 strips the types); the
// installed package ships no sources and runs the compiled dist/.
import { existsSync, readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const required = pkg.engines.node;

if (!satisfies(process.versions.node, required)) {
  console.error(`spillway needs Node.js ${required}; this is Node.js ${process.versions.node}.`);
  process.exit(1);
}

const sources = new URL('../src/ops/cli.ts', import.meta.url);
const cli = await import(existsSync(sources) ? sources.href : '../dist/ops/cli.js');
cli.main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exit(code);
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);

/** `engines.node` as written there: `^X.Y.Z` and `>=X[.Y[.Z]]` ranges joined by `||`. */
function satisfies(version, range) {
  const parse = (text) => text.split('.').map(Number).concat([0, 0, 0]).slice(0, 3);
  const compare = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const have = parse(version);
  return range.split('||').some((part) => {
    const text = part.trim();
    if (text.startsWith('>=')) return compare(have, parse(text.slice(2))) >= 0;
    if (text.startsWith('^')) {
      const min = parse(text.slice(1));
      return have[0] === min[0] && compare(have, min) >= 0;
    }
    throw new Error(`package.json engines.node: cannot read "${text}"`);
  });
}
