-- Tests only, never in migrations: the part of the http extension (pgsql-http) the project
-- uses: its types and http(http_request), which sends the request at once and waits for the
-- answer, in schema "extensions" as on Supabase. Written in PL/Python with the standard library.
create extension if not exists plpython3u;
create schema if not exists extensions;
create type extensions.http_header as (field character varying, value character varying);
create type extensions.http_request as (
  method character varying,
  uri character varying,
  headers extensions.http_header[],
  content_type character varying,
  content character varying
);
create type extensions.http_response as (
  status integer,
  content_type character varying,
  headers extensions.http_header[],
  content character varying
);
create or replace function extensions.http_header(field character varying, value character varying)
returns extensions.http_header language sql as $$ select row(field, value)::extensions.http_header $$;

create or replace function extensions.http(request extensions.http_request)
returns extensions.http_response
language plpython3u
as $py$
import urllib.error
import urllib.request

headers = {h["field"]: h["value"] for h in (request["headers"] or [])}
if request["content_type"]:
    headers["Content-Type"] = request["content_type"]
body = request["content"].encode() if request["content"] is not None else None
outgoing = urllib.request.Request(request["uri"], data=body, headers=headers,
                                  method=request["method"])
try:
    with urllib.request.urlopen(outgoing, timeout=60) as answer:
        status, content = answer.status, answer.read().decode()
except urllib.error.HTTPError as exc:
    status, content = exc.code, exc.read().decode()
return {"status": status, "content_type": "application/json", "headers": [], "content": content}
$py$;
