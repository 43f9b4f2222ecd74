"""Both stores raise the same error types for the same fault (issue 17), so a handler's
``ctx.call`` and the tools catch one type whichever store a deployment uses: psycopg over
DATABASE_URL, or PostgREST's rpc() (the stand-in relays the real database's errors in
PostgREST's wire format)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from jobqueue.errors import ServiceUnavailable
from jobqueue.handler import DatabaseError
from jobqueue.store.base import Json, QueueStore, RejectedByDatabase
from jobqueue.store.postgres import PostgresStore
from jobqueue.store.rest import RestStore
from tests.support import postgrest

KEY = "service-role-key-5678"


@pytest.fixture
def stores(db: str, httpserver: HTTPServer) -> Iterator[dict[str, QueueStore]]:
    made: dict[str, QueueStore] = {
        "postgres": PostgresStore(db),
        "rest": RestStore(postgrest.install(httpserver, db, KEY), KEY),
    }
    yield made
    for store in made.values():
        store.close()


def _raised(store: QueueStore, function: str, args: dict[str, object]) -> Exception:
    with pytest.raises(Exception) as caught:
        store.call(function, args)
    return caught.value


def test_an_error_a_sql_function_raises_is_one_type_with_one_sqlstate_and_message(
    stores: dict[str, QueueStore],
) -> None:
    cases = [
        ("set_rate_limit", {"p_key": "k", "p_requests_per_minute": 0}),
        ("set_rate_limit", {"p_key": "k", "p_max_running": -3}),
    ]
    for function, args in cases:
        raised = {name: _raised(store, function, args) for name, store in stores.items()}
        assert all(type(e) is DatabaseError for e in raised.values()), raised
        pg, rest = raised["postgres"], raised["rest"]
        assert isinstance(pg, DatabaseError) and isinstance(rest, DatabaseError)
        assert (pg.sqlstate, str(pg)) == (rest.sqlstate, str(rest))
        assert "requests_per_minute" in str(pg) or "max_running" in str(pg)


def test_more_tokens_than_a_minute_allows_is_the_same_error_on_both_stores(
    stores: dict[str, QueueStore],
) -> None:
    stores["postgres"].call("set_rate_limit", {"p_key": "emb", "p_tokens_per_minute": 1000})
    args = {"p_key": "emb", "p_requests": 1, "p_tokens": 5000}
    raised = [_raised(store, "acquire_rate", args) for store in stores.values()]
    assert [type(e) for e in raised] == [DatabaseError, DatabaseError]
    assert str(raised[0]) == str(raised[1]) and "1000" in str(raised[0])


def test_a_value_the_database_cannot_hold_and_a_missing_function_match_too(
    stores: dict[str, QueueStore],
) -> None:
    for store in stores.values():
        with pytest.raises(RejectedByDatabase):
            store.call(
                "finish_jobs", {"p_outcomes": Json([{"id": 1, "error": "a\x00b"}]), "p_worker": "w"}
            )
        with pytest.raises(ServiceUnavailable, match="apply supabase/migrations"):
            store.call("no_such_function", {})
