/**
 * docs/embedding.md shows the framework recipes as they are in examples/,
 * which their tests run: the code between `// #region recipe` and
 * `// #endregion` of each example is a code block of the page (with the
 * package name in the import). And the core imports no framework.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';

const root = join(import.meta.dirname, '../..');
const page = readFileSync(join(root, 'docs/embedding.md'), 'utf8');

for (const example of ['hono', 'fastify', 'express']) {
  it(`docs/embedding.md shows examples/${example}.ts as it is`, () => {
    const source = readFileSync(join(root, `examples/${example}.ts`), 'utf8');
    const recipe = source.split('// #region recipe\n')[1]?.split('// #endregion')[0];
    assert.ok(recipe, `examples/${example}.ts has no recipe region`);
    assert.ok(
      page.includes(`\`\`\`ts\n${recipe.replace("'../src/index.ts'", "'spillway'")}\`\`\``),
      `docs/embedding.md does not show examples/${example}.ts's recipe as it is`,
    );
  });
}

it('nothing under src/ imports a web framework (they are optional peer dependencies)', () => {
  const files = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.endsWith('.ts'),
  );
  for (const file of files) {
    const text = readFileSync(join(root, 'src', file), 'utf8');
    assert.doesNotMatch(text, /from '(hono|fastify|express|@hono\/[^']+|fastify-plugin)(\/[^']*)?'/, file);
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  for (const framework of ['hono', 'fastify', 'express']) {
    assert.equal(pkg.peerDependenciesMeta?.[framework]?.optional, true, `${framework} is an optional peer`);
    assert.ok(pkg.devDependencies?.[framework], `${framework} is a devDependency, for the recipe tests`);
  }
});
