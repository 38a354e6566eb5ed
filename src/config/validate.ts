/**
 * The schema pass of the configuration: values read as the schema says
 * (environment variables and flags arrive as strings), then checked against
 * it, the first error put as one sentence that names the option and the bad
 * value: `routes[0].budgetMs must be an integer ≥ 0, got -1.` The sentence
 * is spelled from the failing schema's type and range, or its `errorMessage`;
 * a `writeOnly` value (a secret) is never repeated.
 */
import type { TSchema } from 'typebox';
import type { TLocalizedValidationError } from 'typebox/error';
import Value from 'typebox/value';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A JSON Schema as this module reads it. */
interface Schema {
  type?: string;
  enum?: unknown[];
  anyOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  pattern?: string;
  errorMessage?: string;
  writeOnly?: boolean;
}

/**
 * `value` checked against `schema`, strings read as it says; errors name
 * options after `at` ("routes[0].", "define(\"charge\") options.").
 */
export function checked<S extends TSchema>(schema: S, value: unknown, at = ''): unknown {
  const read = fromStrings(schema as Schema, value);
  const error = first(schema as Schema, read, Value.Errors(schema, read));
  if (error) throw new ConfigError(sentence(schema as Schema, read, error, at));
  return read;
}

/**
 * The error to report. An unknown key once, by its `additionalProperties`
 * error. A union (`anyOf`) by the branch the value's JSON type picks, so
 * `{"fallback": {"path": "x"}}` is told about its path, not that it is
 * neither an object nor null; by its own message when no branch or several fit.
 */
function first(root: Schema, value: unknown, errors: TLocalizedValidationError[]) {
  for (const error of errors) {
    if (error.keyword === 'boolean') continue;
    const branch = /^(.*?)\/anyOf\/(\d+)(\/|$)/.exec(error.schemaPath);
    if (!branch) return error;
    const union = errors.find((e) => e.keyword === 'anyOf' && e.schemaPath === branch[1]);
    const fitting = (schemaAt(root, branch[1]!).anyOf ?? []).flatMap((b, i) =>
      fits(b, Value.Pointer.Get(value, union?.instancePath ?? '')) ? [i] : [],
    );
    if (fitting.length === 1 && fitting[0] === Number(branch[2])) return error;
  }
  return undefined;
}

const fits = (schema: Schema, value: unknown) =>
  schema.type === 'object'
    ? isObject(value)
    : schema.type === 'array'
      ? Array.isArray(value)
      : schema.type === 'null'
        ? value === null
        : schema.type === 'integer' || schema.type === 'number'
          ? typeof value === 'number'
          : typeof value === schema.type;

/**
 * Strings where the schema wants a number, a boolean or a list: a number of
 * digits, "1"/"true"/"0"/"false", entries separated by commas or spaces. The
 * value is copied, never changed in place.
 */
function fromStrings(schema: Schema, value: unknown): unknown {
  if (typeof value === 'string') {
    const numeric = schema.type === 'integer' || schema.type === 'number';
    if (numeric && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
    if (schema.type === 'boolean' && /^(1|0|true|false)$/.test(value))
      return value === '1' || value === 'true';
    if (schema.anyOf?.some((s) => s.type === 'array')) return value.split(/[\s,]+/).filter(Boolean);
    return value;
  }
  if (Array.isArray(value)) return schema.items ? value.map((v) => fromStrings(schema.items!, v)) : value;
  if (isObject(value) && schema.properties) {
    const properties = schema.properties;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, properties[k] ? fromStrings(properties[k], v) : v]),
    );
  }
  return value;
}

function sentence(root: Schema, value: unknown, error: TLocalizedValidationError, at: string): string {
  let path = error.instancePath;
  let schema = schemaAt(root, error.schemaPath);
  if (error.keyword === 'additionalProperties') {
    const [key] = (error.params as { additionalProperties: string[] }).additionalProperties;
    const known = Object.keys(schema.properties ?? {}).filter((k) => k !== '$schema');
    return `Unknown option "${at}${where(`${path}/${key}`)}". Known: ${known.join(', ')}.`;
  }
  const missing = error.keyword === 'required';
  if (missing) {
    const [key = ''] = (error.params as { requiredProperties: string[] }).requiredProperties;
    path = `${path}/${key}`;
    schema = schema.properties?.[key] ?? {};
  }
  // An entry of a list that says what its entries must be: the list is reported.
  const list = /^(.*)\/items$/.exec(error.schemaPath);
  if (list && schemaAt(root, list[1]!).errorMessage) {
    schema = schemaAt(root, list[1]!);
    path = path.replace(/\/[^/]*$/, '');
  }
  const bad = missing ? undefined : Value.Pointer.Get(value, path);
  return `${at}${where(path) || 'the configuration'} ${requirement(schema)}, got ${shown(schema, bad)}.`;
}

const schemaAt = (root: Schema, schemaPath: string) => Value.Pointer.Get(root, schemaPath.slice(1)) as Schema;

/** `/routes/0/budgetMs` as the docs write it: `routes[0].budgetMs`. */
const where = (pointer: string) =>
  pointer
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((out, part) => (/^\d+$/.test(part) ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');

/** What a valid value is, from the schema: "must be an integer from 0 to 65535". */
function requirement(schema: Schema): string {
  if (schema.errorMessage) return schema.errorMessage;
  if (schema.enum) return `must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  switch (schema.type) {
    case 'integer':
      return `must be an integer${range(schema)}`;
    case 'number':
      return `must be a number${range(schema)}`;
    case 'boolean':
      return 'must be true or false';
    case 'string':
      if (schema.pattern) return `must match ${schema.pattern}`;
      return schema.minLength ? 'must be a non-empty string' : 'must be a string';
    case 'array':
      return 'must be an array';
    case 'object':
      return 'must be an object';
    default:
      return 'is not valid';
  }
}

function range({ minimum, maximum, exclusiveMinimum, exclusiveMaximum }: Schema): string {
  if (minimum !== undefined && maximum !== undefined) return ` from ${minimum} to ${maximum}`;
  const bounds = [
    minimum !== undefined && `≥ ${minimum}`,
    exclusiveMinimum !== undefined && `> ${exclusiveMinimum}`,
    maximum !== undefined && `≤ ${maximum}`,
    exclusiveMaximum !== undefined && `< ${exclusiveMaximum}`,
  ].filter(Boolean);
  return bounds.length > 0 ? ` ${bounds.join(' and ')}` : '';
}

/** The bad value as JSON; a secret only by its length or type. */
export function shown(schema: Pick<Schema, 'writeOnly'>, value: unknown): string {
  if (value === undefined) return 'nothing';
  if (schema.writeOnly) return typeof value === 'string' ? `${value.length} characters` : kind(value);
  return JSON.stringify(value);
}

const kind = (value: unknown) =>
  Array.isArray(value)
    ? 'an array'
    : value === null
      ? 'null'
      : typeof value === 'object'
        ? 'an object'
        : `a ${typeof value}`;

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
