// The admin API from the browser: every call carries the admin token kept in
// this tab's sessionStorage (typed in once; never in localStorage or a cookie),
// and a 401 asks for it again.

const TOKEN_KEY = 'spillway-admin-token';

export class Unauthorized extends Error {}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** One admin API call; resolves with the JSON body (a problem's too, with `ok: false`), rejects Unauthorized on 401. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = {};
  const bearer = token.get();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) throw new Unauthorized((await res.json()).detail);
  const json = await res.json();
  return { ok: res.ok, status: res.status, body: json };
}
