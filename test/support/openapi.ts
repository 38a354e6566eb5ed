/**
 * Checking real responses against docs/openapi.json, so the document cannot
 * drift from the code: `checkResponse` fails unless the status is documented
 * for that path and method, the content type is documented for that status,
 * the body validates against its schema and the required headers are there.
 * Every check is recorded; `coverage(doc).missing()` lists the documented
 * responses no test produced.
 *
 * To cover a new endpoint: describe it in docs/openapi.json, then drive it in a
 * test and pass each response through `checkResponse(doc, method, path, res)`.
 * Answers of proxied routes are checked against `x-spillway-proxied-routes`
 * by passing `PROXIED` as the path.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export const OPENAPI_FILE = new URL('../../docs/openapi.json', import.meta.url);

/** The pseudo-path of the answers Spillway gives on any proxied route (any method). */
export const PROXIED = 'x-spillway-proxied-routes';

/** The extension naming the schema of each Server-Sent Event's `data:` in a text/event-stream media type. */
const SSE_DATA = 'x-spillway-sse-data';
/** The extension on a `101` naming the schemas of the WebSocket messages each way. */
const WEBSOCKET = 'x-spillway-websocket';
/** The extension saying a response may come without a body (and then without Content-Type). */
const OPTIONAL_BODY = 'x-spillway-optional-body';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

type Schema = Record<string, unknown> | boolean;
interface Ref {
  $ref: string;
}
interface MediaType {
  schema?: Schema;
  example?: unknown;
  examples?: Record<string, { value?: unknown } | Ref>;
  [SSE_DATA]?: Schema;
}
interface HeaderObject {
  required?: boolean;
  schema?: Schema;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, HeaderObject | Ref>;
  content?: Record<string, MediaType>;
  [OPTIONAL_BODY]?: boolean;
}
interface ParameterObject {
  name: string;
  in: 'query' | 'header' | 'path' | 'cookie';
  required?: boolean;
  schema?: Schema;
}
interface OperationObject {
  parameters?: Array<ParameterObject | Ref>;
  requestBody?: { required?: boolean; content: Record<string, MediaType> };
  responses: Record<string, ResponseObject | Ref>;
}
type PathItem = Partial<Record<(typeof METHODS)[number], OperationObject>>;

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, PathItem>;
  components: {
    schemas: Record<string, Schema>;
    responses?: Record<string, ResponseObject>;
    headers?: Record<string, HeaderObject>;
  };
  [PROXIED]: OperationObject;
  webhooks?: Record<string, PathItem>;
}

export function loadOpenApi(): OpenApiDocument {
  return JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as OpenApiDocument;
}

/** Follows a local `$ref` (a JSON pointer into the document); other values are returned as they are. */
export function resolve<T>(doc: OpenApiDocument, value: T | Ref): T {
  let current: unknown = value;
  for (let hops = 0; isRef(current); hops++) {
    if (hops > 20) throw new Error(`$ref loop at ${current.$ref}`);
    current = pointer(doc, current.$ref);
    if (current === undefined) throw new Error(`unresolved $ref ${(value as Ref).$ref}`);
  }
  return current as T;
}

/** Every `$ref` in the document that is not local or does not resolve. */
export function unresolvedRefs(doc: OpenApiDocument): string[] {
  const bad: string[] = [];
  walk(doc, (node) => {
    if (typeof node.$ref === 'string' && pointer(doc, node.$ref) === undefined) bad.push(node.$ref);
  });
  return bad;
}

/** `GET /_spillway/operations/{id} 200`, … for every documented response; proxied ones as `* x-spillway-proxied-routes 202`. */
export function documentedResponses(doc: OpenApiDocument): string[] {
  const keys: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      for (const status of Object.keys(item[method]?.responses ?? {})) {
        keys.push(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
  }
  for (const status of Object.keys(doc[PROXIED].responses)) keys.push(`* ${PROXIED} ${status}`);
  return keys;
}

const seenByDoc = new WeakMap<OpenApiDocument, Set<string>>();

/** Which documented responses `checkResponse` has seen for this document, and which it has not. */
export function coverage(doc: OpenApiDocument): { seen: ReadonlySet<string>; missing(): string[] } {
  let seen = seenByDoc.get(doc);
  if (!seen) {
    seen = new Set();
    seenByDoc.set(doc, seen);
  }
  const s = seen;
  return { seen: s, missing: () => documentedResponses(doc).filter((key) => !s.has(key)) };
}

/**
 * A response `fetch` cannot produce: a `101` or a refused WebSocket handshake
 * read with node:http or `ws` (see `rawResponse`).
 */
export interface RawResponse {
  url: string;
  status: number;
  headers: Headers;
  body: Buffer;
}

/** A node:http response (a `ws` client's `upgrade` or `unexpected-response`) as a RawResponse, its body read. */
export async function rawResponse(url: string, res: IncomingMessage): Promise<RawResponse> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    for (const v of [value ?? []].flat()) headers.append(name, v);
  }
  const chunks: Buffer[] = [];
  if (res.statusCode !== 101) for await (const chunk of res) chunks.push(chunk as Buffer);
  return { url, status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) };
}

export interface CheckedResponse {
  /** The documented response it matched, as in `documentedResponses`. */
  key: string;
  status: number;
  headers: Headers;
  /** Parsed JSON, the SSE events, the text, or undefined for an empty body. */
  body: unknown;
}

/**
 * Checks a real response against the document and records it for `coverage`.
 * Reads the body to its end: give it only finite streams (SSE of a terminal
 * operation). Throws one error listing every mismatch.
 */
export async function checkResponse(
  doc: OpenApiDocument,
  method: string,
  pathTemplate: string,
  response: Response | RawResponse,
): Promise<CheckedResponse> {
  const where = `${method} ${pathTemplate}`;
  const operation =
    pathTemplate === PROXIED
      ? doc[PROXIED]
      : doc.paths[pathTemplate]?.[method.toLowerCase() as (typeof METHODS)[number]];
  if (!operation) throw new Error(`${where} is not in the document`);
  if (pathTemplate !== PROXIED) {
    const path = new URL(response.url).pathname;
    if (!templateRegExp(pathTemplate).test(path)) throw new Error(`${path} does not match ${pathTemplate}`);
  }

  const status = response.status;
  const statusKey = [String(status), `${String(status)[0]}XX`, 'default'].find(
    (key) => key in operation.responses,
  );
  const bytes = response instanceof Response ? Buffer.from(await response.arrayBuffer()) : response.body;
  if (statusKey === undefined) {
    throw new Error(`${where}: status ${status} is not documented (body: ${bytes.toString('utf8', 0, 300)})`);
  }
  const key = `${pathTemplate === PROXIED ? '*' : method.toUpperCase()} ${pathTemplate} ${statusKey}`;
  const documented = resolve(doc, operation.responses[statusKey]!);
  const problems: string[] = [];

  for (const [name, headerOrRef] of Object.entries(documented.headers ?? {})) {
    const header = resolve(doc, headerOrRef);
    const value = response.headers.get(name);
    if (value === null) {
      if (header.required) problems.push(`required header ${name} is missing`);
      continue;
    }
    if (header.schema !== undefined) {
      const validate = compiled(doc, header.schema);
      if (!validate(headerValue(doc, header.schema, value))) {
        problems.push(`header ${name}: ${JSON.stringify(value)} ${errorsOf(validate)}`);
      }
    }
  }

  const contentType = response.headers.get('content-type');
  let body: unknown;
  if (contentType === null && bytes.length === 0) {
    const mayBeEmpty = !documented.content || documented[OPTIONAL_BODY] || method === 'HEAD';
    if (!mayBeEmpty) problems.push('no body, but the document says there is one');
  } else if (!documented.content) {
    problems.push(`a body (${contentType}) where the document has none`);
  } else {
    const essence = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
    const media = mediaTypeFor(documented.content, essence);
    if (!media) {
      problems.push(
        `content type ${contentType} is not documented (${Object.keys(documented.content).join(', ')})`,
      );
    } else if (method !== 'HEAD') {
      body = checkBody(doc, media, essence, bytes, problems);
    }
  }

  if (problems.length > 0) {
    throw new Error(`${where} → ${status} (${key}):\n- ${problems.join('\n- ')}`);
  }
  coverage(doc);
  seenByDoc.get(doc)!.add(key);
  return { key, status, headers: response.headers, body };
}

/**
 * Checks a request Spillway sent (a webhook, as a receiver got it) against
 * `webhooks.<name>.post`: the required header parameters are there and valid,
 * the content type is documented, the body validates. Throws on a mismatch.
 */
export function checkWebhook(
  doc: OpenApiDocument,
  name: string,
  request: { headers: Record<string, string | string[] | undefined>; body: Buffer },
): unknown {
  const operation = doc.webhooks?.[name]?.post;
  if (!operation?.requestBody)
    throw new Error(`webhooks.${name}.post with a requestBody is not in the document`);
  const problems: string[] = [];
  const header = (name: string) => {
    const value = request.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  for (const parameter of (operation.parameters ?? []).map((p) => resolve(doc, p))) {
    if (parameter.in !== 'header') continue;
    const value = header(parameter.name);
    if (value === undefined) {
      if (parameter.required) problems.push(`required header ${parameter.name} is missing`);
      continue;
    }
    if (parameter.schema !== undefined) {
      const validate = compiled(doc, parameter.schema);
      if (!validate(headerValue(doc, parameter.schema, value))) {
        problems.push(`header ${parameter.name}: ${JSON.stringify(value)} ${errorsOf(validate)}`);
      }
    }
  }
  const contentType = header('content-type') ?? '';
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  const media = mediaTypeFor(operation.requestBody.content, essence);
  let body: unknown;
  if (!media) problems.push(`content type ${contentType} is not documented`);
  else body = checkBody(doc, media, essence, request.body, problems);
  if (problems.length > 0) throw new Error(`webhook ${name}:\n- ${problems.join('\n- ')}`);
  return body;
}

/**
 * Checks one WebSocket message (parsed JSON) against the `x-spillway-websocket`
 * schemas of the `101` documented at `path`; throws on a mismatch.
 */
export function checkWebSocketMessage(
  doc: OpenApiDocument,
  path: string,
  direction: 'client' | 'server',
  message: unknown,
): void {
  const upgrade = resolve(
    doc,
    doc.paths[path]?.get?.responses['101'] ?? { $ref: '#/nothing' },
  ) as ResponseObject & {
    [WEBSOCKET]?: { clientMessage: Schema; serverMessage: Schema };
  };
  const messages = upgrade[WEBSOCKET];
  if (!messages) throw new Error(`GET ${path} documents no ${WEBSOCKET} on its 101`);
  const validate = compiled(doc, direction === 'client' ? messages.clientMessage : messages.serverMessage);
  if (!validate(message)) {
    throw new Error(`${direction} message ${errorsOf(validate)}: ${JSON.stringify(message).slice(0, 300)}`);
  }
}

/** Compiles every schema of the document (components and inline) in ajv's strict mode; the errors found. */
export function schemaProblems(doc: OpenApiDocument): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(doc.components.schemas)) {
    try {
      compiled(doc, { $ref: `#/components/schemas/${name}` });
    } catch (error) {
      problems.push(`components.schemas.${name}: ${(error as Error).message}`);
    }
  }
  walk(doc, (node, path) => {
    if (path[0] === 'components' && path[1] === 'schemas') return;
    for (const key of ['schema', SSE_DATA]) {
      if (node[key] === undefined) continue;
      try {
        compiled(doc, node[key] as Schema);
      } catch (error) {
        problems.push(`${path.join('.')}.${key}: ${(error as Error).message}`);
      }
    }
  });
  return problems;
}

/** Every example in a media type that does not validate against that media type's schema. */
export function exampleProblems(doc: OpenApiDocument): string[] {
  const problems: string[] = [];
  walk(doc, (node, path) => {
    if (path.at(-2) !== 'content') return;
    const media = node as MediaType;
    const essence = path.at(-1)!;
    const examples = [
      ...(media.example === undefined ? [] : [['example', media.example] as const]),
      ...Object.entries(media.examples ?? {}).map(
        ([name, example]) => [name, resolve(doc, example).value] as const,
      ),
    ];
    for (const [name, value] of examples) {
      const found: string[] = [];
      const bytes = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
      checkBody(doc, media, essence, bytes, found);
      for (const problem of found) problems.push(`${path.join('.')} example ${name}: ${problem}`);
    }
  });
  return problems;
}

// ---

function checkBody(
  doc: OpenApiDocument,
  media: MediaType,
  essence: string,
  bytes: Buffer,
  problems: string[],
): unknown {
  const text = bytes.toString('utf8');
  if (essence === 'application/json' || essence.endsWith('+json')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      problems.push(`the body is not JSON: ${text.slice(0, 200)}`);
      return text;
    }
    if (media.schema !== undefined) {
      const validate = compiled(doc, media.schema);
      if (!validate(json)) problems.push(`body ${errorsOf(validate)}: ${text.slice(0, 300)}`);
    }
    return json;
  }
  if (essence === 'text/event-stream') {
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed(text);
    const dataSchema = media[SSE_DATA];
    for (const event of events) {
      if (!event.id) problems.push(`an event without an id: ${event.data.slice(0, 100)}`);
      if (dataSchema === undefined) continue;
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        problems.push(`event ${event.id}: data is not JSON`);
        continue;
      }
      const validate = compiled(doc, dataSchema);
      if (!validate(data)) problems.push(`event ${event.id}: data ${errorsOf(validate)}`);
    }
    return events;
  }
  return bytes.length === 0 ? undefined : text;
}

/** The media type documented for this essence: exact, then `type/*`, then `*\/*`. */
function mediaTypeFor(content: Record<string, MediaType>, essence: string): MediaType | undefined {
  const range = `${essence.split('/')[0]}/*`;
  return content[essence] ?? content[range] ?? content['*/*'];
}

/** Header values are text; a schema of numbers is checked against the number the text spells. */
function headerValue(doc: OpenApiDocument, schema: Schema, value: string): unknown {
  const resolved = resolve<Schema>(doc, schema as Schema | Ref);
  const type = typeof resolved === 'object' ? resolved.type : undefined;
  return (type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
}

function templateRegExp(template: string): RegExp {
  const parts = template.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[^/]+')}$`);
}

// --- ajv, with the document's components registered

const COMPONENTS = 'https://spillway.dev/openapi/components';
const ajvByDoc = new WeakMap<OpenApiDocument, { ajv: Ajv2020; cache: WeakMap<object, ValidateFunction> }>();
// ajv-formats is CommonJS: its plugin is the module's `default`.
const addFormats = addFormatsModule.default;

function compiled(doc: OpenApiDocument, schema: Schema): ValidateFunction {
  let entry = ajvByDoc.get(doc);
  if (!entry) {
    // Strict, so a misspelt keyword in the document fails; but `required` may name properties declared
    // in a parent schema (the `if`/`then` and `allOf` refinements), which strictRequired would refuse.
    const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: COMPONENTS, $defs: rewriteRefs(doc.components.schemas) });
    entry = { ajv, cache: new WeakMap() };
    ajvByDoc.set(doc, entry);
  }
  if (typeof schema === 'boolean') return entry.ajv.compile(schema);
  let validate = entry.cache.get(schema);
  if (!validate) {
    validate = entry.ajv.compile(rewriteRefs(schema) as object);
    entry.cache.set(schema, validate);
  }
  return validate;
}

/** `#/components/schemas/X` → the registered components' `$defs/X`; any other `$ref` in a schema is an error. */
function rewriteRefs<T>(value: T): T {
  if (Array.isArray(value)) return value.map(rewriteRefs) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === '$ref' && typeof inner === 'string') {
      if (!inner.startsWith('#/components/schemas/'))
        throw new Error(`a schema $ref must name a component schema: ${inner}`);
      out[key] = `${COMPONENTS}#/$defs/${inner.slice('#/components/schemas/'.length)}`;
    } else {
      out[key] = rewriteRefs(inner);
    }
  }
  return out as T;
}

function errorsOf(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('; ');
}

// --- walking the document

function isRef(value: unknown): value is Ref {
  return typeof value === 'object' && value !== null && typeof (value as Ref).$ref === 'string';
}

function pointer(doc: OpenApiDocument, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Visits every object in the document with the keys that lead to it. */
function walk(
  value: unknown,
  visit: (node: Record<string, unknown>, path: readonly string[]) => void,
  path: string[] = [],
): void {
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) walk(item, visit, [...path, String(i)]);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const node = value as Record<string, unknown>;
  visit(node, path);
  for (const [key, inner] of Object.entries(node)) walk(inner, visit, [...path, key]);
}
