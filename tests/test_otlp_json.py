"""collector.otlp_json: OTLP/JSON bodies → protobuf requests (hex ids, int64 as strings, enums)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.errors import InvalidData
from collector.normalise import normalise_logs, normalise_metrics, normalise_traces
from collector.otlp_json import parse_json
from tests.otlp_builders import SPAN_ID, T0, TRACE_ID, event, link, span, trace_request

TID = TRACE_ID.hex()
SID = SPAN_ID.hex()
PARENT = "00f067aa0ba902b7"


def traces_body(*spans: dict[str, Any], resource: dict[str, Any] | None = None, **top: Any) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {"resource": resource or {}, "scopeSpans": [{"scope": {"name": "s"}, "spans": list(spans)}]}
            ],
            **top,
        }
    )


def json_span(**fields: Any) -> dict[str, Any]:
    return {
        "traceId": TID,
        "spanId": SID,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1000),
        **fields,
    }


def test_spec_example_with_hex_ids_parses():
    body = traces_body(
        json_span(
            parentSpanId=PARENT,
            attributes=[
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
                {"key": "ratio", "value": {"doubleValue": 0.5}},
                {"key": "ok", "value": {"boolValue": True}},
                {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
                {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "a"}]}}},
            ],
            status={"code": 2, "message": "boom"},
        ),
        resource={"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
    )
    request = parse_json("traces", body)
    s = request.resource_spans[0].scope_spans[0].spans[0]
    assert (s.trace_id, s.span_id, s.parent_span_id) == (TRACE_ID, SPAN_ID, bytes.fromhex(PARENT))
    assert (s.kind, s.status.code, s.status.message) == (
        Span.SPAN_KIND_CLIENT,
        Status.STATUS_CODE_ERROR,
        "boom",
    )
    assert (s.start_time_unix_nano, s.end_time_unix_nano) == (T0, T0 + 1000)
    assert s.attributes[1].value.int_value == 120
    assert s.attributes[4].value.bytes_value == b"\x00\x01"
    assert request.resource_spans[0].resource.attributes[0].value.string_value == "svc"


def test_uppercase_and_mixed_case_hex_ids():
    request = parse_json("traces", traces_body(json_span(traceId=TID.upper(), spanId="B7aD6b7169203331")))
    s = request.resource_spans[0].scope_spans[0].spans[0]
    assert (s.trace_id, s.span_id) == (TRACE_ID, SPAN_ID)


def test_int64_as_string_or_number():
    as_string = parse_json("traces", traces_body(json_span(startTimeUnixNano=str(T0))))
    as_number = parse_json("traces", traces_body(json_span(startTimeUnixNano=T0)))
    assert as_string == as_number
    assert as_number.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano == T0


def test_enums_as_integers_or_names():
    by_number = parse_json("traces", traces_body(json_span(kind=2, status={"code": 1})))
    by_name = parse_json(
        "traces", traces_body(json_span(kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_OK"}))
    )
    assert by_number == by_name
    s = by_number.resource_spans[0].scope_spans[0].spans[0]
    assert (s.kind, s.status.code) == (Span.SPAN_KIND_SERVER, Status.STATUS_CODE_OK)


def test_unknown_fields_are_ignored_at_every_level():
    body = traces_body(json_span(futureField={"x": 1}, droppedAttributesCount=2), futureTop=[1, 2])
    document = orjson.loads(body)
    document["resourceSpans"][0]["futureResourceField"] = "x"
    document["resourceSpans"][0]["scopeSpans"][0]["scope"]["futureScopeField"] = True
    request = parse_json("traces", orjson.dumps(document))
    assert request.resource_spans[0].scope_spans[0].spans[0].dropped_attributes_count == 2


def test_snake_case_field_names_are_accepted():
    body = orjson.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": TID,
                                    "span_id": SID,
                                    "parent_span_id": PARENT,
                                    "name": "x",
                                    "start_time_unix_nano": T0,
                                    "end_time_unix_nano": T0 + 1,
                                    "links": [{"trace_id": TID, "span_id": SID}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    s = parse_json("traces", body).resource_spans[0].scope_spans[0].spans[0]
    assert (s.trace_id, s.span_id, s.parent_span_id) == (TRACE_ID, SPAN_ID, bytes.fromhex(PARENT))
    assert (s.links[0].trace_id, s.links[0].span_id) == (TRACE_ID, SPAN_ID)


def test_empty_id_strings_are_empty_bytes():
    request = parse_json("traces", traces_body(json_span(parentSpanId="")))
    assert request.resource_spans[0].scope_spans[0].spans[0].parent_span_id == b""
    assert normalise_traces(request).table.column("parent_span_id").to_pylist() == [None]


def test_link_ids_are_hex():
    body = traces_body(json_span(links=[{"traceId": TID.upper(), "spanId": SID, "attributes": []}]))
    lk = parse_json("traces", body).resource_spans[0].scope_spans[0].spans[0].links[0]
    assert (lk.trace_id, lk.span_id) == (TRACE_ID, SPAN_ID)


def test_log_record_ids_are_hex():
    body = orjson.dumps(
        {
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "timeUnixNano": str(T0),
                                    "severityNumber": 9,
                                    "traceId": TID.upper(),
                                    "spanId": SID,
                                    "body": {"stringValue": "hello"},
                                },
                                {
                                    "timeUnixNano": str(T0),
                                    "body": {
                                        "kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}
                                    },
                                },
                            ]
                        }
                    ]
                }
            ]
        }
    )
    request = parse_json("logs", body)
    first, second = request.resource_logs[0].scope_logs[0].log_records
    assert (first.trace_id, first.span_id, first.body.string_value) == (TRACE_ID, SPAN_ID, "hello")
    assert second.trace_id == b""
    table = normalise_logs(request).table
    assert table.column("trace_id").to_pylist() == [TID, None]
    assert [orjson.loads(b) for b in table.column("body").to_pylist()] == ["hello", {"a": 1}]


def test_exemplar_ids_are_hex_in_every_metric_kind():
    exemplar = {"timeUnixNano": str(T0), "asDouble": 1.5, "traceId": TID.upper(), "spanId": SID}
    point = {"timeUnixNano": str(T0), "asInt": "3", "exemplars": [exemplar]}
    histogram_point = {
        "timeUnixNano": str(T0),
        "count": "2",
        "bucketCounts": ["1", 1],
        "explicitBounds": [1.0],
        "exemplars": [exemplar],
    }
    body = orjson.dumps(
        {
            "resourceMetrics": [
                {
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {"name": "g", "gauge": {"dataPoints": [point]}},
                                {
                                    "name": "s",
                                    "sum": {
                                        "aggregationTemporality": 1,
                                        "isMonotonic": True,
                                        "dataPoints": [point],
                                    },
                                },
                                {
                                    "name": "h",
                                    "histogram": {
                                        "aggregationTemporality": 2,
                                        "dataPoints": [histogram_point],
                                    },
                                },
                                {
                                    "name": "e",
                                    "exponentialHistogram": {
                                        "aggregationTemporality": 1,
                                        "dataPoints": [
                                            {
                                                "timeUnixNano": str(T0),
                                                "count": "1",
                                                "scale": 1,
                                                "exemplars": [exemplar],
                                            }
                                        ],
                                    },
                                },
                                {
                                    "name": "q",
                                    "summary": {
                                        "dataPoints": [{"timeUnixNano": str(T0), "count": "1", "sum": 2.0}]
                                    },
                                },
                            ]
                        }
                    ]
                }
            ]
        }
    )
    request = parse_json("metrics", body)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    exemplars = [
        metrics[0].gauge.data_points[0].exemplars[0],
        metrics[1].sum.data_points[0].exemplars[0],
        metrics[2].histogram.data_points[0].exemplars[0],
        metrics[3].exponential_histogram.data_points[0].exemplars[0],
    ]
    assert all((e.trace_id, e.span_id) == (TRACE_ID, SPAN_ID) for e in exemplars)
    assert list(metrics[2].histogram.data_points[0].bucket_counts) == [1, 1]
    table = normalise_metrics(request).table
    assert table.column("metric_type").to_pylist() == [
        "gauge",
        "sum",
        "histogram",
        "exponential_histogram",
        "summary",
    ]
    assert orjson.loads(table.column("exemplars")[0].as_py())[0]["trace_id"] == TID


def test_round_trip_of_a_protobuf_request_through_otlp_json():
    original = trace_request(
        {"service.name": "svc", "nested": {"k": [1, 2.5, "x", b"\x01"]}},
        [
            span(
                "a",
                parent_span_id=bytes.fromhex(PARENT),
                events=[event("e", a=1)],
                links=[link(k="v")],
                attributes={"gen_ai.usage.input_tokens": 7},
            )
        ],
    )
    document = json_format.MessageToDict(original)  # canonical protobuf JSON: ids in base64
    for s in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for holder in [s, *s.get("links", [])]:
            for field in ("traceId", "spanId", "parentSpanId"):
                if field in holder:
                    holder[field] = base64.b64decode(holder[field]).hex()
    assert parse_json("traces", orjson.dumps(document)) == original


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"x"', "must be a JSON object, got str"),
    ],
)
def test_bad_json_is_invalid_data(body, message):
    with pytest.raises(InvalidData, match=message):
        parse_json("traces", body)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("zz" * 16, "non-hex characters"),
        (TID[:-1], "odd length"),
        (12345, "a number"),
        ("0a 0b", "whitespace"),
        ([TID], "a list"),
    ],
)
def test_a_non_hex_id_is_invalid_data_with_its_path(value, why):
    body = traces_body(json_span(), json_span(), json_span(), json_span(spanId=value))
    with pytest.raises(
        InvalidData, match=r"^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[3\]\.spanId: not a hex string$"
    ):
        parse_json("traces", body)


def test_non_hex_ids_in_links_logs_and_exemplars_name_their_path():
    with pytest.raises(InvalidData, match=r"spans\[0\]\.links\[1\]\.traceId: not a hex string"):
        parse_json(
            "traces", traces_body(json_span(links=[{"traceId": TID, "spanId": SID}, {"traceId": "nope"}]))
        )
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "xyz!"}]}]}]}
    with pytest.raises(
        InvalidData, match=r"^resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]\.spanId: not a hex string$"
    ):
        parse_json("logs", orjson.dumps(logs))
    metrics = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"sum": {"dataPoints": [{"exemplars": [{"traceId": 1}]}]}}]}]}
        ]
    }
    with pytest.raises(
        InvalidData, match=r"metrics\[0\]\.sum\.dataPoints\[0\]\.exemplars\[0\]\.traceId: not a hex string"
    ):
        parse_json("metrics", orjson.dumps(metrics))


@pytest.mark.parametrize(
    "body",
    [
        traces_body(json_span(name=5)),
        traces_body(json_span(startTimeUnixNano="soon")),
        traces_body(json_span(startTimeUnixNano=1.5)),
        traces_body(json_span(attributes={"key": "not a list"})),
        orjson.dumps({"resourceSpans": 5}),
        orjson.dumps({"resourceSpans": [{"scopeSpans": {"spans": []}}]}),
    ],
)
def test_wrong_types_are_invalid_data(body):
    with pytest.raises(InvalidData, match="OTLP/JSON traces request is invalid"):
        parse_json("traces", body)


def test_a_list_element_that_is_not_an_object_is_invalid_data():
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [json_span(), "not an object"]}]}]})
    with pytest.raises(
        InvalidData, match=r"^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[1\]: expected an object, got str$"
    ):
        parse_json("traces", body)


def test_wrong_length_hex_id_rejects_only_that_span_after_normalising():
    body = traces_body(
        json_span(name="good-1"),
        json_span(name="short-trace", traceId=TID[:30]),
        json_span(name="long-span", spanId=SID + "00"),
        json_span(name="good-2"),
    )
    request = parse_json("traces", body)
    assert len(request.resource_spans[0].scope_spans[0].spans[1].trace_id) == 15
    result = normalise_traces(request)
    assert result.table.column("name").to_pylist() == ["good-1", "good-2"]
    assert result.error_message == (
        "2 of 4 spans rejected: span_id must be 8 bytes, got 9 (1); trace_id must be 16 bytes, got 15 (1)"
    )


def test_null_ids_read_as_absent():
    s = (
        parse_json("traces", traces_body(json_span(parentSpanId=None)))
        .resource_spans[0]
        .scope_spans[0]
        .spans[0]
    )
    assert s.parent_span_id == b""


def test_unknown_signal_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown signal"):
        parse_json("profiles", b"{}")  # type: ignore[arg-type]
