/** Config files for the external peers: haproxy (one thread) and nginx (one worker). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function haproxyConfig(dir: string, mode: 'http' | 'tcp', port: number, backends: number[], tlsPem?: string, threads = 1): string {
  const file = join(dir, `haproxy-${mode}${tlsPem ? '-tls' : ''}-${threads}.cfg`);
  writeFileSync(
    file,
    `global
  nbthread ${threads}
  maxconn 4000
defaults
  mode ${mode}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
${mode === 'http' ? '  option http-keep-alive\n  http-reuse always\n' : ''}frontend fe
  bind 127.0.0.1:${port}${tlsPem ? ` ssl crt ${tlsPem}` : ''}
  default_backend be
backend be
  balance roundrobin
${backends.map((p, i) => `  server b${i} 127.0.0.1:${p}`).join('\n')}
`,
  );
  return file;
}

export function nginxConfig(dir: string, port: number, backends: number[]): string {
  const root = join(dir, 'nginx');
  mkdirSync(join(root, 'logs'), { recursive: true });
  const file = join(root, 'nginx.conf');
  writeFileSync(
    file,
    `daemon off;
user root;
worker_processes 1;
pid ${join(root, 'nginx.pid')};
error_log ${join(root, 'logs/error.log')} error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${root}/body;
  proxy_temp_path ${root}/proxy;
  fastcgi_temp_path ${root}/fastcgi;
  uwsgi_temp_path ${root}/uwsgi;
  scgi_temp_path ${root}/scgi;
  keepalive_requests 1000000;
  upstream be {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  return root;
}
