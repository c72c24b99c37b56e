"""Traces (owners): search agent runs by agent, time, status and model; one trace as a waterfall
with each span's attributes, tokens and cost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, ui

COLUMNS = [
    "start_time",
    "root_name",
    "agent",
    "duration_ms",
    "spans",
    "model_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "trace_id",
]
SPAN_COLUMNS = [
    "name",
    "operation",
    "agent_name",
    "model",
    "status_code",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "agent_id",
    "span_id",
    "parent_span_id",
]


def search(filters: ui.Filters) -> dict[str, Any] | None:
    cols = st.columns(3)
    agent = cols[0].text_input("Agent (id or observed identity)", value=filters.agent or "", key="tr_agent")
    status = cols[1].selectbox("Status", ["any", "ok", "error"], key="tr_status")
    model = cols[2].text_input("Model", key="tr_model")
    page = int(st.session_state.get("tr_page", 1))
    return api.load(
        "/api/v1/traces",
        "traces",
        agent=agent.strip() or None,
        status=None if status == "any" else status,
        model=model.strip() or None,
        department=filters.department,
        environment=filters.environment,
        limit=ui.PAGE_SIZE,
        offset=(page - 1) * ui.PAGE_SIZE,
        **filters.times(),
    )


def waterfall(spans: list[dict[str, Any]]) -> None:
    data = pd.DataFrame(spans)
    origin = min(datetime.fromisoformat(t) for t in data["start_time"])
    data["start_ms"] = [
        (datetime.fromisoformat(t) - origin).total_seconds() * 1000 for t in data["start_time"]
    ]
    data["end_ms"] = data["start_ms"] + data["duration_ms"]
    data["row"] = [f"{i:03d} {name}" for i, name in enumerate(data["name"])]
    data["cost"] = data["cost_usd"].fillna("")
    chart = (
        alt.Chart(
            data[["row", "start_ms", "end_ms", "operation", "status_code", "cost", "name", "duration_ms"]]
        )
        .mark_bar()
        .encode(
            x=alt.X("start_ms:Q", title="ms since the trace started"),
            x2="end_ms:Q",
            y=alt.Y("row:N", sort=None, title=None, axis=alt.Axis(labelLimit=320, labelOverlap=False)),
            color=alt.Color("operation:N"),
            tooltip=["name:N", "operation:N", "duration_ms:Q", "status_code:N", "cost:N"],
        )
        .properties(height=max(120, 22 * len(data)))
    )
    st.altair_chart(chart, width="stretch")


def trace_detail(trace_id: str) -> None:
    answer = api.load(f"/api/v1/traces/{trace_id}", "the trace")
    if answer is None:
        return
    spans = answer["spans"]
    waterfall(spans)
    st.dataframe(ui.frame(spans, SPAN_COLUMNS), hide_index=True, width="stretch")
    chosen = st.selectbox(
        "Span", range(len(spans)), format_func=lambda i: f"{i:03d} {spans[i]['name']}", key="tr_span"
    )
    span = spans[chosen]
    cols = st.columns(2)
    cols[0].caption("Span attributes")
    cols[0].json(span.get("attributes") or {})
    cols[1].caption("Resource attributes")
    cols[1].json(span.get("resource_attributes") or {})


filters = ui.filters()
st.title("Traces")
found = search(filters)
if found is not None:
    traces, total = found["traces"], int(found["total"])
    pages = max(1, -(-total // ui.PAGE_SIZE))
    st.metric("Traces", total)
    if pages > 1:
        st.number_input(f"Page (of {pages})", 1, pages, key="tr_page")
    if traces:
        st.dataframe(ui.frame(traces, COLUMNS), hide_index=True, width="stretch")
        trace_id = st.selectbox(
            "Trace",
            [t["trace_id"] for t in traces],
            format_func=lambda tid: next(
                f"{t['start_time'][:19]} {t['root_name']} ({tid[:8]})" for t in traces if t["trace_id"] == tid
            ),
            key="tr_trace",
        )
        trace_detail(trace_id)
    else:
        st.caption("No traces match.")
