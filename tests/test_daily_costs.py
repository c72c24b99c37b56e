"""daily_costs, the daily sums the cost job keeps beside priced_calls, equal the calls they sum — to the
cent and the token — through incremental runs, late spans with earlier start times, retried exports,
full runs, a price change and a full run stopped part-way; and the spend reports that read them give
exactly what summing the calls gives. A real server receives the traces over OTLP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.jobs import run_cost_job
from tests.otlp_builders import trace_request
from tests.test_costs_job import (
    CLAIMS_TRIAGE,
    CLAIMS_TRIAGE_STAGING,
    SUBMISSION_INTAKE,
    UNREGISTERED,
    Call,
    Sent,
    agent_trace,
    chat_span,
    costed,  # noqa: F401 - the fixture
    send,
    send_fleet,
)
from warehouse import cost_store, detection_store

DAY_NS = 86_400 * 10**9

# What daily_costs must hold: priced_calls summed by its key (environment, added by 011, comes last).
SUMMED_CALLS = """
SELECT day, agent_id, match_status, observed_identity, department_id, cost_centre, provider, model,
       sum(cost_usd), count(*), count(*) FILTER (WHERE cost_usd IS NULL),
       coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0),
       coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0), environment
FROM priced_calls GROUP BY ALL ORDER BY ALL
"""
# daily_spend as it was computed from the calls before daily_costs existed.
DAILY_SPEND_OF_CALLS = """
SELECT day, agent_id, match_status, observed_identity, department_id, cost_centre,
       provider, model, sum(cost_usd) AS spend, count(*) AS calls
FROM priced_calls WHERE start_time >= $since AND cost_usd IS NOT NULL
GROUP BY ALL ORDER BY ALL
"""


class Stop(Exception):
    pass


def days_ago(sent: Sent, days: float) -> Sent:
    """`sent` moved `days` back in time (its spans keep their ids)."""
    shift = int(days * DAY_NS)
    for item in sent.request.resource_spans[0].scope_spans[0].spans:
        item.start_time_unix_nano -= shift
        item.end_time_unix_nano -= shift
    return Sent(sent.request, sent.agent, sent.calls, sent.started - timedelta(days=days))


def assert_daily_costs_match(server) -> None:
    calls = server.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM priced_calls")[0]
    assert calls[0] == calls[1], "a call is counted twice"
    agents = server.query("SELECT count(*), count(DISTINCT (trace_id, observed_identity)) FROM trace_agents")[
        0
    ]
    assert agents[0] == agents[1], "a trace's agent has two rows"
    stored = server.query("SELECT * FROM daily_costs ORDER BY ALL")
    assert stored == server.query(SUMMED_CALLS)
    assert stored, "no calls were summed"
    environments = server.query("SELECT DISTINCT environment FROM daily_costs ORDER BY ALL")
    assert environments == [("production",), ("staging",), (None,)], "one environment only proves little"


def run(server, **options):
    with server.server.warehouse.cursor() as cur:
        return run_cost_job(cur, overrides=server.server.settings.prices_file, **options)


def test_daily_costs_equal_the_calls_they_sum_through_every_kind_of_run(costed, tmp_path):  # noqa: F811
    send_fleet(costed)
    old = days_ago(agent_trace(SUBMISSION_INTAKE, [Call("gpt-4o", 900, 90), Call("gpt-4o-mini", 50, 5)]), 2.5)
    send(costed, old)
    send(costed, days_ago(agent_trace(UNREGISTERED, [Call("gpt-4o", 10, 1)]), 9))
    send(costed, days_ago(agent_trace(CLAIMS_TRIAGE, [Call("not-a-model-anyone-prices", 10, 1)]), 1))
    # the same agent on the same day in another environment: a daily row of its own
    send(costed, days_ago(agent_trace(CLAIMS_TRIAGE_STAGING, [Call("gpt-4o", 300, 30)]), 2.5))
    run(costed)
    assert_daily_costs_match(costed)
    assert costed.query("SELECT count(*) FROM daily_costs WHERE cost_usd IS NULL") == [(1,)]

    # a late call of the 2.5-day-old trace, starting an hour before anything else of it: the trace
    # is read whole again (its older spans found by time) and its calls counted once
    root = old.request.resource_spans[0].scope_spans[0].spans[0]
    late = chat_span(
        root.trace_id, root.span_id, Call("gpt-4o", 500, 50), root.start_time_unix_nano - 3600 * 10**9
    )
    send(costed, Sent(trace_request(SUBMISSION_INTAKE[0], [late]), old.agent, [], old.started))
    again = run(costed)
    assert (again.full, again.traces, again.spans, again.calls) == (False, 1, 4, 3)
    assert_daily_costs_match(costed)
    assert costed.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM priced_calls") == [
        (13, 13)
    ]

    send(costed, old)  # a retried export of the whole trace
    run(costed)
    assert_daily_costs_match(costed)
    full = run(costed, full=True, batch_spans=4)
    assert full.calls == 13
    assert_daily_costs_match(costed)

    (tmp_path / "prices.yaml").write_text("discount_percent:\n  openai: 50\n")
    before = costed.query("SELECT sum(cost_usd) FROM daily_costs")[0][0]

    def stop_after_two(step) -> None:
        if step.batch == 2:
            raise Stop

    with pytest.raises(Stop):
        run(costed, batch_spans=4, progress=stop_after_two)
    assert_daily_costs_match(costed)  # the batches committed moved both tables, the others neither
    run(costed)
    assert_daily_costs_match(costed)
    assert costed.query("SELECT sum(cost_usd) FROM daily_costs")[0][0] * 2 == before


def test_spend_and_daily_spend_read_from_daily_costs_equal_the_sums_of_calls(costed):  # noqa: F811
    send_fleet(costed)
    send(costed, days_ago(agent_trace(SUBMISSION_INTAKE, [Call("gpt-4o", 900, 90)]), 2.5))
    send(costed, days_ago(agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o-mini", 70, 7)]), 2.6))
    send(costed, days_ago(agent_trace(UNREGISTERED, [Call("not-a-model-anyone-prices", 10, 1)]), 3))
    send(costed, days_ago(agent_trace(CLAIMS_TRIAGE_STAGING, [Call("gpt-4o", 300, 30)]), 2.6))
    run(costed)
    now = datetime.now(UTC).replace(tzinfo=None)
    midnight = datetime.combine((now - timedelta(days=3)).date(), datetime.min.time())
    with costed.server.warehouse.cursor() as cur:
        for since in (
            midnight,
            midnight + timedelta(hours=13),
            now - timedelta(days=2.55),
            now - timedelta(hours=1),
        ):
            expected = cur.sql(DAILY_SPEND_OF_CALLS, params={"since": since}).pl()
            read = detection_store.daily_spend(cur, since)
            assert read.schema == expected.schema
            assert read.rows() == expected.rows(), since
        for by, key in cost_store.SPEND_DIMENSIONS.items():
            for scope in (
                {},
                {"department_ids": ["claims"]},
                {"agent_ids": ["claims-triage"]},
                {"environments": ["staging"]},
                {"environments": ["production", "staging"], "department_ids": ["claims"]},
                {"environments": []},
            ):
                start = (now - timedelta(days=2)).date()
                read = cost_store.spend_by(cur, by=by, start=start, **scope)
                expected = summed_calls(cur, key, start, scope)
                assert [{"key": row.pop(by), **row} for row in read] == expected, (by, scope)


def summed_calls(cur, key: str, start, scope: dict) -> list[dict]:
    """spend_by's rows as they were computed from priced_calls."""
    rows = cur.execute(
        f"""SELECT {key} AS key, sum(cost_usd), count(*), count(*) FILTER (WHERE cost_usd IS NULL),
                   coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
                   coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
                   coalesce(sum(reasoning_tokens), 0)
            FROM priced_calls
            WHERE day >= $start
              AND ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
              AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))
              AND ($environments::VARCHAR[] IS NULL OR list_contains($environments::VARCHAR[], environment))
            GROUP BY ALL ORDER BY 2 DESC NULLS LAST, key NULLS LAST""",
        {
            "start": start,
            "departments": scope.get("department_ids"),
            "agents": scope.get("agent_ids"),
            "environments": scope.get("environments"),
        },
    ).fetchall()
    return [cost_store._spend_row("key", row) for row in rows]
