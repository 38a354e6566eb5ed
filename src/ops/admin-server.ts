/**
 * The admin port (loopback by default): liveness and readiness for
 * orchestrators. `/readyz` is 200 only while the store is open and the public
 * port is listening, so a load balancer stops sending traffic at shutdown.
 */
import { createServer, type Server } from 'node:http';
import { sendJson } from '../gateway/operations-api.ts';
import { sendProblem } from '../gateway/problem-response.ts';

export function createAdminServer(isReady: () => boolean): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = isReady();
      return sendJson(
        res,
        ready ? 200 : 503,
        { status: ready ? 'ready' : 'not-ready' },
        { 'cache-control': 'no-store' },
      );
    }
    sendProblem(res, 'not-found', `Nothing is served at ${path} on the admin port. Try /healthz or /readyz.`);
  });
}
