"""schemathesis against both served functions, driven by openapi.yaml: valid and invalid
bodies and headers, each answer checked against the description (issue 9). Bounded in time:
a fixed number of examples per operation, delays and iterations kept small."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from jobqueue.tools.serving import ROOT, Served, serve_pipeline
from tests.support import pg

pytestmark = pytest.mark.slow

WORKER_SECRET = "worker-secret-openapi"
CRON_SECRET = "cron-secret-openapi"
SECRETS = {
    "/worker_pull": ("x-job-worker-secret", WORKER_SECRET),
    "/cron_tick": ("x-cron-secret", CRON_SECRET),
}

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")


@schema.auth()
class Secret:
    """The right secret for each function; schemathesis also tries without it and expects 401."""

    def get(self, case: Any, context: Any) -> str:
        return SECRETS[case.path][1]

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), SECRETS[case.path][0]: data}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> Iterator[dict[str, Served]]:
    name = pg.unique_name("jobqueue_openapi")
    dsn = pg.create_database(pg_server, name)
    from jobqueue.tools.migrate import apply_migrations

    apply_migrations(dsn)
    logs = tmp_path_factory.mktemp("openapi")
    try:
        # A short tick budget bounds what a generated body (100 iterations, 60 s delays) costs.
        with serve_pipeline(
            dsn, WORKER_SECRET, CRON_SECRET, logs, cron_env={"CRON_TICK_BUDGET_SECONDS": "1"}
        ) as (worker, cron):
            yield {"/worker_pull": worker, "/cron_tick": cron}
    finally:
        pg.drop_database(pg_server, name)


@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_description(case: Any, served: dict[str, Served]) -> None:
    case.call_and_validate(base_url=served[case.path].url, timeout=30)
