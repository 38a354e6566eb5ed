/**
 * nginx as a reverse proxy, when the machine has it (the bench never installs
 * it): one process (`master_process off`, one worker), so its CPU time is
 * that of the pid the bench started; upstream connections kept alive, as the
 * Node proxies keep theirs; no access log. Its files live in a directory of
 * the bench's temporary one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Child, freePort } from '../children.ts';

export const NGINX = 'nginx';

/** Whether `nginx` is on the PATH. */
export function nginxInstalled(): boolean {
  try {
    execFileSync(NGINX, ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startNginx(
  program: (command: string, args: string[], port: number) => Promise<Child<{ port: number }>>,
  dir: string,
  upstreamPort: number,
): Promise<Child<{ port: number }>> {
  const port = await freePort();
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix, { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  const temp = (name: string) => `${name}_temp_path ${join(prefix, name)};`;
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  upstream backend { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Via "1.1 nginx";
    }
  }
}
`,
  );
  return program(NGINX, ['-e', join(prefix, 'error.log'), '-p', prefix, '-c', conf], port);
}
