"""The bench's upstream: nginx answering, from static files, what the Zendesk mapping asks for
the benchmarked routes, so that the upstream costs nearly nothing. The files are the sandbox's
own answers (Zendesk-shaped: a user with its identities and organizations sideloaded, a user
search, user and ticket fields), taken once from a sandbox on the port nginx then serves, so
every URL in them points at nginx. nginx ignores the Authorization header.

Also the front nginx: the same routes as the gateway, each one `proxy_pass` to the upstream (or,
for the cached routes, a static file of the gateway's own answer): C with no translation, the
floor under any Python service."""

from __future__ import annotations

import base64
import os
import pwd
from pathlib import Path

from procs import EMAIL, TOKEN, fetch, sandbox

# What the mapping (mappings/zendesk.yaml) asks, per operation, and where the answer is kept:
# find_customer: GET /api/v2/users/{id}?include=identities,organizations
# search_customers and each bestmatch strategy: GET /api/v2/users/search?query=...
# meta: GET /api/v2/user_fields, GET /api/v2/ticket_fields; /label: GET /api/v2/user_fields
SEARCH = "query=email%3A%22jane%40example.com%22&include=identities%2Corganizations&per_page=50"
ANSWERS = {
    "users/1001.json": "/api/v2/users/1001?include=identities%2Corganizations",
    # One answer for every search: Jane Doe matches each search the bench sends (her email, her
    # name, her twitter handle), so every result survives the gateway's re-check.
    "users/search.json": f"/api/v2/users/search?{SEARCH}",
    "user_fields.json": "/api/v2/user_fields",
    "ticket_fields.json": "/api/v2/ticket_fields",
}


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()


def write_static(root: Path, port: int) -> None:
    """The sandbox's answers, as a sandbox listening on `port` gives them, under root/static."""
    with sandbox(port=port) as url:
        for name, path in ANSWERS.items():
            status, body = fetch(url + path, {"Authorization": _basic()})
            if status != 200:
                raise RuntimeError(f"the sandbox answered {status} to {path}: {body[:200]!r}")
            target = root / "static" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)


_COMMON = """
{user}worker_processes 1; daemon off; pid {root}/{name}.pid;
events {{ worker_connections 4096; }}
http {{
  default_type application/json; charset utf-8; charset_types application/json;
  # Only what is not a 2xx is logged: the bench reports it (a path the files miss shows here).
  # 499 is a client that hung up mid-request: wrk at the end of each run.
  map $status $unexpected {{ ~^2 0; 499 0; default 1; }}
  access_log {root}/{name}-unexpected.log combined if=$unexpected;
  keepalive_requests 1000000; keepalive_timeout 75s;
  client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp;
"""


def _user() -> str:
    """Run as root, nginx would serve as `nobody`, who cannot read the bench's private temp
    directory: its workers stay the user that started it."""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""


def upstream_conf(root: Path, port: int) -> Path:
    conf = root / "upstream.conf"
    conf.write_text(
        _COMMON.format(root=root, name="upstream", user=_user())
        + f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {root}/static;
    add_header X-Rate-Limit 700 always;           # Zendesk's quota headers, as on every answer
    add_header X-Rate-Limit-Remaining 699 always;
    location ~ ^/api/v2/users/(\\d+)$ {{ try_files /users/$1.json =404; }}
    location = /api/v2/users/search {{ try_files /users/search.json =404; }}
    location = /api/v2/user_fields {{ try_files /user_fields.json =404; }}
    location = /api/v2/ticket_fields {{ try_files /ticket_fields.json =404; }}
    location / {{ return 404 '{{"error":"InvalidEndpoint","description":"Not found"}}'; }}
  }}
}}
"""
    )
    (root / "tmp").mkdir(exist_ok=True)
    return conf


def front_conf(root: Path, port: int, upstream_port: int) -> Path:
    """`cached` (root/cached/meta.json, label.json) must hold the gateway's answers."""
    conf = root / "front.conf"
    proxy = "proxy_http_version 1.1; proxy_set_header Connection '';"
    conf.write_text(
        _COMMON.format(root=root, name="front", user=_user())
        + f"""
  upstream crm {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location ~ ^/api/v1/customer/(\\d+)$ {{
      {proxy}
      proxy_pass http://crm/api/v2/users/$1?include=identities%2Corganizations;
    }}
    location = /api/v1/customers {{
      {proxy} proxy_method GET; proxy_pass_request_body off; proxy_set_header Content-Length '';
      proxy_pass http://crm/api/v2/users/search?{SEARCH};
    }}
    location = /api/v1/meta/object/customer {{ alias {root}/cached/meta.json; }}
    location = /label {{ alias {root}/cached/label.json; }}
  }}
}}
"""
    )
    return conf


def unexpected(root: Path) -> dict[str, int]:
    """Answers other than 2xx that each nginx gave, by name."""
    out = {}
    for name in ("upstream", "front"):
        log = root / f"{name}-unexpected.log"
        out[name] = len(log.read_text().splitlines()) if log.exists() else 0
    return out
