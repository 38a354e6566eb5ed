/**
 * Who may see an operation. The id is unguessable, but that is not
 * authorisation (http-standards §2.6): an operation created with a credential
 * is visible only to callers presenting the same credential. The credential is
 * read from one configured request header (`tenantHeader`, default
 * `authorization`) and kept only as a digest, never in clear.
 *
 * The same tenant scopes Idempotency-Key lookups, so two clients that pick
 * the same key never see each other's responses.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** The caller's tenant: a digest of its credential, or null for a caller without one. */
export function callerTenant(headers: IncomingHttpHeaders, tenantHeader: string): string | null {
  const value = headers[tenantHeader];
  const credential = Array.isArray(value) ? value.join(', ') : value;
  if (credential === undefined || credential === '') return null;
  return createHash('sha256').update(credential).digest('base64url').slice(0, 32);
}

/**
 * An operation captured without a credential is visible to anyone holding its
 * id; one captured with a credential only to the same tenant. Callers that may
 * not see it are told it does not exist (404), which leaks nothing.
 */
export function mayRead(operation: { tenant: string | null }, tenant: string | null): boolean {
  return operation.tenant === null || operation.tenant === tenant;
}
