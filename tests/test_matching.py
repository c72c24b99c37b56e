"""Identity matching: observed identity keys → registered agent, unregistered, or ambiguous."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from registry import Agent, Registry, RegistryError, load_paths, match_identities

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
HOSTILE = "'; DROP TABLE agents; --"


def agent(agent_id: str, *match: dict, aliases: tuple[str, ...] = ()) -> Agent:
    return Agent.model_validate(
        {
            "apiVersion": "muster/v1",
            "kind": "Agent",
            "metadata": {"id": agent_id},
            "spec": {
                "name": agent_id,
                "owner": "o",
                "department": "d",
                "lifecycle": "production",
                "aliases": list(aliases),
                "match": list(match),
            },
        }
    )


# Four agents, each claimed by a different kind of key, so a row carrying all four shows precedence.
REGISTRY = Registry.of(
    [
        agent("by-credential"),
        agent("by-agent-id", {"agentId": "asst_123"}),
        agent("by-name", {"agentName": "Helper"}),
        agent("by-service", {"service": {"namespace": "shop", "name": "checkout"}}),
        agent("renamed", {"agentName": "Renamed"}, aliases=("old-name", "older-name")),
        agent("prod-only", {"agentName": "Narrow", "environment": "production"}),
        agent("no-namespace", {"service": {"name": "lonely"}}),
    ]
)

ALL_KEYS = {
    "credential_agent_id": "by-credential",
    "gen_ai_agent_id": "asst_123",
    "agent_name": "Helper",
    "service_namespace": "shop",
    "service_name": "checkout",
}


def matched(rows: list[dict], registry: Registry = REGISTRY) -> list[tuple]:
    frame = pl.DataFrame(rows, schema={name: pl.String for name in {k for row in rows for k in row}})
    result = match_identities(frame, registry)
    return list(result.select("agent_id", "match_status", "matched_by", "candidates").iter_rows())


def one(row: dict, registry: Registry = REGISTRY) -> tuple:
    return matched([row], registry)[0]


# Precedence


@pytest.mark.parametrize(
    ("dropped", "expected"),
    [
        ((), ("by-credential", "credential")),
        (("credential_agent_id",), ("by-agent-id", "agent_id")),
        (("credential_agent_id", "gen_ai_agent_id"), ("by-name", "agent_name")),
        (("credential_agent_id", "gen_ai_agent_id", "agent_name"), ("by-service", "service")),
    ],
)
def test_credential_beats_agent_id_beats_name_beats_service(dropped, expected):
    row = {key: value for key, value in ALL_KEYS.items() if key not in dropped}
    agent_id, status, matched_by, candidates = one(row)
    assert (agent_id, matched_by) == expected
    assert status == "registered" and candidates == [agent_id]


def test_a_span_agent_id_beats_the_resource_main_agent_id_which_is_used_without_it():
    assert one({"gen_ai_agent_id": "asst_123", "main_agent_id": "renamed"})[0] == "by-agent-id"
    assert one({"main_agent_id": "renamed", "agent_name": "Helper"})[:3] == (
        "renamed",
        "registered",
        "agent_id",
    )


def test_a_key_that_matches_nothing_lets_the_next_key_decide():
    row = {"credential_agent_id": "deleted-agent", "gen_ai_agent_id": "asst_unknown", "agent_name": "Helper"}
    assert one(row)[:3] == ("by-name", "registered", "agent_name")


def test_every_agent_matches_its_own_id_without_a_selector():
    assert one({"gen_ai_agent_id": "by-service"})[:3] == ("by-service", "registered", "agent_id")


# Environments and namespaces


def test_an_environment_on_a_selector_narrows_it():
    assert one({"agent_name": "Narrow", "environment": "production"})[0] == "prod-only"
    assert one({"agent_name": "Narrow", "environment": "staging"})[:2] == (None, "unregistered")
    assert one({"agent_name": "Narrow"})[:2] == (None, "unregistered")


def test_a_service_selector_without_namespace_matches_only_services_without_one():
    assert one({"service_name": "lonely"})[0] == "no-namespace"
    assert one({"service_name": "lonely", "service_namespace": "shop"})[1] == "unregistered"
    assert one({"service_name": "checkout"})[1] == "unregistered"


# Aliases


def test_former_ids_resolve_to_the_agent_that_carries_them_now():
    assert one({"gen_ai_agent_id": "older-name"})[:3] == ("renamed", "registered", "agent_id")
    assert one({"main_agent_id": "old-name"})[0] == "renamed"
    assert one({"credential_agent_id": "old-name"})[:3] == ("renamed", "registered", "credential")


# Unregistered and ambiguous


def test_an_identity_nobody_claims_is_unregistered_with_no_candidates():
    assert one({"agent_name": "Shadow", "service_name": "side-project"}) == (None, "unregistered", None, [])
    assert one({}) == (None, "unregistered", None, [])


def test_an_identity_two_agents_claim_is_ambiguous_and_names_them_both():
    # validation refuses such a registry; matching must still say so rather than pick one
    clashing = Registry.of([*REGISTRY.entities(), agent("another", {"agentName": "Helper"})])
    assert one({"agent_name": "Helper"}, clashing) == (
        None,
        "ambiguous",
        "agent_name",
        ["another", "by-name"],
    )
    # an ambiguous strong key is the verdict: a weaker key does not quietly settle it
    row = {"agent_name": "Helper", "service_namespace": "shop", "service_name": "checkout"}
    assert one(row, clashing)[:2] == (None, "ambiguous")


def test_a_hostile_id_is_just_a_string_that_matches_nothing():
    row = dict.fromkeys(
        ["credential_agent_id", "gen_ai_agent_id", "main_agent_id", "agent_name", "service_name"], HOSTILE
    )
    assert one(row) == (None, "unregistered", None, [])
    assert one({"agent_name": HOSTILE}, Registry.of([agent("x", {"agentName": HOSTILE})]))[0] == "x"


# The frame


def test_rows_keep_their_order_and_columns_and_may_lack_identity_columns():
    frame = pl.DataFrame(
        {
            "span_id": ["s1", "s2", "s3", "s4"],
            "agent_name": ["Helper", "Shadow", None, "Helper"],
            "cost_usd": [0.1, 0.2, 0.3, 0.4],
        }
    )
    result = match_identities(frame, REGISTRY)
    assert result.columns == [
        "span_id",
        "agent_name",
        "cost_usd",
        "agent_id",
        "match_status",
        "candidates",
        "matched_by",
    ]
    assert result["span_id"].to_list() == ["s1", "s2", "s3", "s4"]
    assert result["agent_id"].to_list() == ["by-name", None, None, "by-name"]
    assert result.schema["candidates"] == pl.List(pl.String)


def test_empty_strings_count_as_absent_and_categoricals_are_read_as_text():
    frame = pl.DataFrame({"gen_ai_agent_id": ["", ""], "agent_name": ["Helper", "Shadow"]}).with_columns(
        pl.col("agent_name").cast(pl.Categorical)
    )
    result = match_identities(frame, REGISTRY)
    assert result["agent_id"].to_list() == ["by-name", None]
    assert result["agent_name"].dtype == pl.Categorical  # the caller's columns are untouched


def test_an_empty_frame_gets_the_result_columns():
    result = match_identities(pl.DataFrame({"agent_name": []}, schema={"agent_name": pl.String}), REGISTRY)
    assert result.height == 0 and result.columns[-4:] == [
        "agent_id",
        "match_status",
        "candidates",
        "matched_by",
    ]


def test_a_frame_that_already_has_the_result_columns_is_refused():
    with pytest.raises(RegistryError, match="already has agent_id"):
        match_identities(pl.DataFrame({"agent_id": ["x"]}), REGISTRY)


def test_a_million_rows_are_matched_row_for_row():
    identities = pl.DataFrame(
        {
            "gen_ai_agent_id": [None, "asst_123", None, None, "older-name", None],
            "agent_name": ["Helper", None, "Narrow", "Narrow", None, "Shadow"],
            "environment": [None, None, "production", "staging", None, None],
            "service_name": [None, None, None, None, None, "checkout"],
            "service_namespace": [None, None, None, None, None, "shop"],
        }
    )
    small = match_identities(identities, REGISTRY)
    rows = 1_000_000
    big = (
        identities.with_row_index("pick")
        .join(
            pl.DataFrame({"row": range(rows)}).with_columns(
                (pl.col("row") * 7919 % 6).cast(pl.UInt32).alias("pick")
            ),
            on="pick",
        )
        .sort("row")
    )

    result = match_identities(big, REGISTRY)

    assert result.height == rows and result["row"].is_sorted()
    expected = small["agent_id"].to_list()
    picks = result["pick"].to_list()
    assert result["agent_id"].to_list() == [expected[pick] for pick in picks]


def test_the_realistic_registry_matches_by_its_selectors():
    registry = load_paths([FIXTURE])
    rows = [
        {"service_namespace": "claims", "service_name": "triage-api", "environment": "production"},
        {"service_namespace": "claims", "service_name": "triage-api", "environment": "staging"},
        {"agent_name": "ClaimsTriage", "environment": "development"},
        {"gen_ai_agent_id": "fnol-router"},
        {"gen_ai_agent_id": "helpdesk-assistant", "agent_name": "ClaimsTriage", "environment": "staging"},
        {"service_name": "letters"},
    ]
    assert [row[0] for row in matched(rows, registry)] == [
        "claims-triage",
        None,
        "multimodal-claims-poc",
        "claims-triage",
        "support-copilot",
        "claims-letter-writer",
    ]
