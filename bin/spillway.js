#!/usr/bin/env node
// The `spillway` command. The sources are TypeScript run by Node's type stripping (Node >= 24).
import { main } from '../src/ops/cli.ts';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exit(code);
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
