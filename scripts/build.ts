/**
 * `npm run build` (run by `prepack`, so `npm pack` and `npm publish` always
 * ship fresh output): compiles src/ to JavaScript and declarations in dist/
 * with tsc (tsconfig.build.json), then copies every other file of src/ (what
 * the code reads at run time, such as the SQL migrations) to the same relative
 * path in dist/, where the compiled modules look for it. dist/ is removed
 * first so nothing stale is shipped.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, globSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
for (const entry of globSync('**/*', { cwd: src, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
  const file = relative(src, join(entry.parentPath, entry.name));
  cpSync(join(src, file), join(dist, file));
}
