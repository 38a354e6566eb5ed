/**
 * `npm run config-schema`: writes config.schema.json, the JSON Schema of the
 * config file that the package ships for editors, from the schema the gateway
 * validates with (src/config/schema.ts). The file is committed;
 * test/config-schema.test.ts fails when it is not what this script writes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../src/config/schema.ts';

export const schemaFile = fileURLToPath(new URL('../config.schema.json', import.meta.url));

/** The published text: draft-07, which every editor with JSON Schema support reads. */
export function configSchemaText(): string {
  const published = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Spillway configuration',
    description:
      'The config file of `spillway serve --config` and `createSpillway({ config })`. docs/configuration.md says what each option does.',
    ...configSchema,
  };
  return `${JSON.stringify(published, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(schemaFile, configSchemaText());
  console.log(`wrote ${schemaFile}`);
}
