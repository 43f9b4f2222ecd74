"""A stand-in for PostgREST's ``POST /rest/v1/rpc/<function>``, backed by the real test database.

It speaks PostgREST's wire format: named JSON arguments in, a JSON array of rows (or of scalars)
for set-returning functions and a bare JSON value otherwise, errors as
``{"code", "message", "details", "hint"}``. Each call runs as ``service_role``, as PostgREST does
for the service role key, so grants are exercised too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from psycopg import sql
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support.supabase_keys import supabase_accepts

_RPC = re.compile(r"^/rest/v1/rpc/(?P<name>[a-z_][a-z0-9_]*)$")


def install(server: HTTPServer, dsn: str, api_key: str) -> str:
    """Routes rpc calls on `server` to `dsn`; returns the SUPABASE_URL to configure."""

    def handle(request: Request) -> Response:
        if not supabase_accepts(request.headers, api_key):
            return _json(401, {"code": "PGRST301", "message": "Invalid API key"})
        match = _RPC.match(request.path)
        if match is None:
            return _json(404, {"code": "PGRST202", "message": "not found"})
        args = json.loads(request.get_data() or b"{}")
        try:
            return _json(200, _call(dsn, match.group("name"), args))
        except _NotInSchemaCache as exc:
            # PostgREST's answer for a function its schema cache does not have.
            return _json(
                404,
                {
                    "code": "PGRST202",
                    "details": None,
                    "hint": None,
                    "message": f"Could not find the function public.{exc}",
                },
            )
        except psycopg.Error as exc:
            diag = exc.diag
            return _json(
                400,
                {
                    "code": diag.sqlstate,
                    "message": diag.message_primary,
                    "details": diag.message_detail,
                    "hint": diag.message_hint,
                },
            )

    server.expect_request(_RPC, method="POST").respond_with_handler(handle)
    return server.url_for("").rstrip("/")


def _call(dsn: str, name: str, args: dict[str, Any]) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        proc = conn.execute(
            "select p.proretset, p.proargnames, "
            "array(select format_type(t, null) from unnest(p.proargtypes) t) "
            "from pg_proc p where p.proname = %s and p.pronamespace = 'public'::regnamespace",
            (name,),
        ).fetchone()
        if proc is None:
            raise _NotInSchemaCache(name)
        returns_set, arg_names, arg_types = proc
        types = dict(zip(arg_names or [], arg_types, strict=False))
        # As PostgREST does: the JSON body becomes a record typed by the function's own
        # argument types (json_to_record), so a JSON array is a vector, an array or jsonb as
        # the function declares.
        if any(k not in types for k in args):  # PostgREST finds no function of those names
            raise _NotInSchemaCache(f"{name}({', '.join(args)})")
        given = list(args)
        record = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(types[k])) for k in given
        )
        call = sql.SQL("public.{}({})").format(
            sql.Identifier(name),
            sql.SQL(", ").join(
                sql.SQL("{} => _.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in given
            ),
        )
        source = (
            sql.SQL("json_to_record(%(body)s::json) as _({})").format(record)
            if given
            else sql.SQL("(select 1) as _")
        )
        if returns_set:
            query = sql.SQL(
                "select coalesce(jsonb_agg(to_jsonb(r)), '[]') from {}, lateral {} r"
            ).format(source, call)
        else:
            query = sql.SQL("select to_jsonb({}) from {}").format(call, source)
        params = {"body": json.dumps({k: args[k] for k in given})}
        with conn.transaction():
            conn.execute("set local role service_role")
            row = conn.execute(query, params).fetchone()
        return row[0] if row else None


class _NotInSchemaCache(Exception):
    pass


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
