/**
 * `npm run build` (run by `prepack`, so `npm pack` and `npm publish` always
 * ship fresh output): compiles src/ to JavaScript and declarations in dist/
 * with tsc (tsconfig.build.json), then copies the files the code reads at run
 * time beside its compiled modules, at the same relative paths as in src/
 * (the SQL migrations). dist/ is removed first so nothing stale is shipped.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, globSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
for (const file of globSync('**/*.sql', { cwd: src })) {
  cpSync(join(src, file), join(dist, file));
}
