"""The cost job in batches: the same rows as one batch, progress reported, and failures part-way
that leave every trace either re-derived or as it was, with a watermark that makes the next run
redo the rest. A real server receives the traces over OTLP; the job runs on its warehouse."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.jobs import JobProgress, run_cost_job
from tests.test_costs_job import (
    CLAIMS_TRIAGE,
    FLEET,
    Call,
    agent_trace,
    costed,  # noqa: F401 - the fixture
    expected_by_department,
    send,
    send_fleet,
    spend,
)


class Stop(Exception):
    """Raised from the progress callback: a run interrupted between two committed batches."""


def snapshot(server) -> dict[str, list[tuple]]:
    """Both derived tables, every column but computed_at, in a stable order."""
    tables = {}
    for table in ("priced_calls", "trace_agents"):
        tables[table] = server.query(f"SELECT * EXCLUDE (computed_at) FROM {table} ORDER BY ALL")
    return tables


def run(server, **options):
    with server.server.warehouse.cursor() as cur:
        return run_cost_job(cur, overrides=server.server.settings.prices_file, **options)


def state(server) -> tuple:
    return server.query("SELECT watermark, last_error, inputs_digest FROM job_state")[0]


def stop_after(batches: int, seen: list[JobProgress]):
    def progress(step: JobProgress) -> None:
        seen.append(step)
        if step.batch == batches:
            raise Stop(f"stopped after batch {batches}")

    return progress


def test_small_batches_give_exactly_the_rows_of_one_batch(costed):  # noqa: F811
    for _ in range(3):
        send_fleet(costed)
    whole = run(costed)
    assert whole.traces == 12
    one_batch = snapshot(costed)
    seen: list[JobProgress] = []
    batched = run(costed, full=True, batch_spans=5, progress=seen.append)
    assert seen[-1].batches == len(seen) == 7  # 33 spans, ~5 a batch
    assert [step.batch for step in seen] == list(range(1, 8))
    assert seen[-1].spans == batched.spans == whole.spans == 33 and seen[-1].calls == batched.calls == 21
    assert (batched.traces, batched.calls, batched.unpriced_calls) == (whole.traces, 21, 0)
    assert snapshot(costed) == one_batch
    assert len(one_batch["priced_calls"]) == 21 and len(one_batch["trace_agents"]) == 12


def test_a_full_run_stopped_part_way_keeps_old_rows_and_the_next_run_finishes_it(costed, tmp_path):  # noqa: F811
    traces = send_fleet(costed) + send_fleet(costed)
    run(costed)
    watermark, _, digest = state(costed)
    first_computed = costed.query("SELECT max(computed_at) FROM priced_calls")[0][0]
    (tmp_path / "prices.yaml").write_text("discount_percent:\n  openai: 50\n")
    seen: list[JobProgress] = []
    with pytest.raises(Stop):
        run(costed, batch_spans=3, progress=stop_after(4, seen))
    assert seen[-1].batches > 4
    # the state says a full run is owed: the digest is cleared, the watermark kept, the error noted
    assert state(costed) == (watermark, "Stop: stopped after batch 4", None)
    # exactly the calls of the committed batches were re-derived; the others kept their rows
    rederived = costed.query("SELECT count(*) FROM priced_calls WHERE computed_at > ?", [first_computed])
    assert rederived == [(seen[-1].calls,)]
    assert costed.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM priced_calls") == [
        (14, 14)
    ]
    finished = run(costed)
    assert finished.full and finished.calls == 14
    assert spend(costed) == {key: value / 2 for key, value in expected_by_department(traces).items()}
    assert state(costed)[2] not in (None, digest)


def test_an_incremental_run_stopped_part_way_is_read_again_whole(costed):  # noqa: F811
    first = send_fleet(costed)
    run(costed)
    watermark = state(costed)[0]
    newer = [agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 100 * n, n)]) for n in range(1, 9)]
    for sent in newer:
        send(costed, sent)
    with pytest.raises(Stop):
        run(costed, batch_spans=4, progress=stop_after(1, []))
    assert state(costed)[:2] == (watermark, "Stop: stopped after batch 1")
    again = run(costed, batch_spans=4)
    assert (again.full, again.traces, again.calls) == (False, 8, 8)
    assert spend(costed) == expected_by_department(first + newer)
    assert costed.query("SELECT count(*) FROM trace_agents") == [(len(FLEET) + 8,)]
    assert sum(spend(costed).values()) > Decimal(0)
