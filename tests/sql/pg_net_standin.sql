-- Tests only, never in migrations: pg_net's net.http_post, with pg_net's signature and its
-- semantics: the request is queued in the caller's transaction and sent only after that
-- transaction commits (dropped if it rolls back), by a process outside the backend, and the
-- answer lands in net._http_response. Written in PL/Python; the sender uses only the standard
-- library and psql, since the server's Python has no drivers.
create extension if not exists plpython3u;
create schema if not exists net;
create table if not exists net.http_request_queue (
  id bigserial primary key,
  method text not null,
  url text not null,
  headers jsonb not null,
  body jsonb,
  timeout_milliseconds integer not null,
  txid xid8 not null default pg_current_xact_id()
);
create table if not exists net._http_response (
  id bigint,
  status_code integer,
  content text,
  error_msg text,
  created timestamptz not null default now()
);

create or replace function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language plpython3u
as $py$
import subprocess
import textwrap

SENDER = r'''
import json, subprocess, sys, time, urllib.error, urllib.request
rid, txid, host, port, db = sys.argv[1:]
def psql(sql, **variables):
    args = ["psql", "-h", host, "-p", port, "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for k, v in variables.items():
        args += ["-v", f"{k}={v}"]
    return subprocess.run(args, input=sql, capture_output=True, text=True).stdout.strip()
for _ in range(3000):
    state = psql(f"select pg_xact_status('{txid}'::xid8);")
    if state == "committed":
        break
    if state == "aborted":
        sys.exit(0)
    time.sleep(0.01)
found = psql(
    "select json_build_object('url', url, 'headers', headers, 'body', body,"
    f" 'timeout', timeout_milliseconds) from net.http_request_queue where id = {int(rid)}"
    f" and txid = '{txid}'::xid8;")
if not found:
    sys.exit(0)  # the queue was reset since: this request no longer exists
req = json.loads(found)
status = content = error = None
try:
    request = urllib.request.Request(req["url"], data=json.dumps(req["body"]).encode(),
                                     headers=req["headers"], method="POST")
    with urllib.request.urlopen(request, timeout=req["timeout"] / 1000) as answer:
        status, content = answer.status, answer.read().decode()
except urllib.error.HTTPError as exc:
    status, content = exc.code, exc.read().decode()
except Exception as exc:
    error = str(exc)
psql("insert into net._http_response (id, status_code, content, error_msg)"
     " values (:id, nullif(:'status', '')::int, nullif(:'content', ''), nullif(:'error', ''));",
     id=rid, status=status or "", content=content or "", error=error or "")
'''
SENDER = textwrap.dedent(SENDER)  # PL/Python indents the whole body, this string included

plan = plpy.prepare(
    "insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)"
    " values ('POST', $1, $2, $3, $4) returning id, txid::text as txid",
    ["text", "jsonb", "jsonb", "integer"])
row = plpy.execute(plan, [url, headers, body, timeout_milliseconds])[0]
port = plpy.execute("show port")[0]["port"]
sockets = plpy.execute("show unix_socket_directories")[0]["unix_socket_directories"]
database = plpy.execute("select current_database() as d")[0]["d"]
with open("/tmp/jobqueue-pg-net-standin.log", "a") as log:
    subprocess.Popen(
        ["/usr/bin/python3", "-c", SENDER, str(row["id"]), row["txid"],
         sockets.split(",")[0].strip(), str(port), database],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
return row["id"]
$py$;
