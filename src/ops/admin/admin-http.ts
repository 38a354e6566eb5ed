/**
 * Small HTTP helpers of the admin API modules: method checks, path segments,
 * bounded JSON bodies, and store actions whose failures become problem+json
 * (a store that cannot answer is a 503 the operator can retry).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StoreUnavailableError } from '../../errors.ts';
import { sendProblem } from '../../gateway/problem-response.ts';

/** Request bodies of the admin API are small JSON documents. */
const MAX_BODY_BYTES = 16 * 1024;

/** True when the request uses `method`; otherwise answers 405 with Allow. */
export function allowOnly(
  req: IncomingMessage,
  res: ServerResponse,
  method: 'GET' | 'POST' | 'PUT',
): boolean {
  if (req.method === method) return true;
  sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use ${method}.`, {
    allow: method,
  });
  return false;
}

/** A percent-decoded path segment; undefined (and a 400 sent) when it is not encoded correctly. */
export function segment(res: ServerResponse, raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    sendProblem(
      res,
      'bad-request',
      `The path segment ${JSON.stringify(raw)} is not percent-encoded correctly.`,
    );
    return undefined;
  }
}

/** Thrown for a request body the client must fix; answered 400 with its message. */
export class BadBody extends Error {}

/** The request body as text, at most MAX_BODY_BYTES. */
export async function readText(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadBody(`The body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The body as a JSON object; an empty body is `{}`. */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readText(req)).trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new BadBody(`The body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BadBody('The body must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

/** Runs an action; a bad body is a 400, an unavailable store a 503, anything else a 500 saying what failed. */
export function act(res: ServerResponse, action: () => Promise<void>): void {
  action().catch((error: unknown) => {
    if (error instanceof BadBody) {
      sendProblem(res, 'bad-request', error.message);
    } else if (error instanceof StoreUnavailableError) {
      sendProblem(res, 'store-unavailable', `The store could not be reached: ${error.message}`, {
        'retry-after': 5,
      });
    } else {
      sendProblem(res, 'internal-error', `The action failed: ${(error as Error).message}`);
    }
  });
}
