"""prefect.yaml is the one source of deployments: every entrypoint loads, anchors are shared,
and nothing in it looks like a secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "prefect.yaml").read_text(encoding="utf-8")
CONFIG: dict[str, Any] = yaml.safe_load(TEXT)
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}


def test_the_deployments_the_issue_asks_for_are_defined() -> None:
    assert set(DEPLOYMENTS) >= {
        "generate-video",
        "batch-from-csv",
        "scheduled-inbox",
        "check-credentials",
        "sharded-batch",
    }


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_entrypoint_imports_to_a_flow(name: str) -> None:
    path, _, func = DEPLOYMENTS[name]["entrypoint"].partition(":")
    assert re.fullmatch(r"flows/\w+\.py", path), path
    loaded = load_flow_from_entrypoint(f"{REPO / path}:{func}")
    assert isinstance(loaded, Flow)
    # Every default parameter in the file must be a parameter of the flow.
    schema = parameter_schema(loaded)
    assert set(DEPLOYMENTS[name].get("parameters") or {}) <= set(schema.properties)


def test_work_pool_and_schedules_come_from_anchors() -> None:
    for anchor in ("&process_pool", "&every_15_minutes", "&daily_morning", "&pull_checkout"):
        assert anchor in TEXT
    pool = CONFIG["definitions"]["work_pools"]["process_pool"]
    assert all(d["work_pool"] == pool for d in CONFIG["deployments"])
    assert TEXT.count("sceneflow-pool") == 1
    assert DEPLOYMENTS["scheduled-inbox"]["schedules"] == [
        CONFIG["definitions"]["schedules"]["every_15_minutes"]
    ]
    assert DEPLOYMENTS["check-credentials"]["schedules"] == [
        CONFIG["definitions"]["schedules"]["daily_morning"]
    ]
    for schedule in CONFIG["definitions"]["schedules"].values():
        assert schedule["timezone"] and schedule["cron"]
    assert CONFIG["pull"] == [{"sceneflow.app.deploy.worker_steps.use_checkout": {}}]


def _walk(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [str(k) for k in node] + [t for v in node.values() for t in _walk(v)]
    if isinstance(node, list):
        return [t for v in node for t in _walk(v)]
    return [str(node)] if node is not None else []


def test_no_secrets_in_the_file() -> None:
    words = _walk(CONFIG)
    assert "demo" in words  # the walk reaches parameter values
    for text in words:
        lowered = text.lower()
        for word in ("api_key", "apikey", "password", "token", "secret", "bearer", "auth"):
            assert word not in lowered, f"{word!r} in {text!r}"
        assert not re.search(r"[A-Za-z0-9+/_-]{32,}", text), f"a long key-like value: {text!r}"
        assert "{{" not in text, f"templated values (blocks, variables) do not belong here: {text}"


def test_provider_is_a_dropdown_and_request_fields_carry_limits() -> None:
    path, _, func = DEPLOYMENTS["generate-video"]["entrypoint"].partition(":")
    schema = parameter_schema(load_flow_from_entrypoint(f"{REPO / path}:{func}")).model_dump()
    provider = schema["definitions"][schema["properties"]["provider"]["$ref"].rsplit("/", 1)[1]]
    assert provider["type"] == "string" and "local" in provider["enum"]
    request = schema["definitions"]["StandardVideoRequest"]["properties"]
    assert request["motion_intensity"]["minimum"] == 1
    assert request["motion_intensity"]["maximum"] == 10
    assert request["aspect_ratio"]["enum"][0] == "16:9"
    assert request["prompt"]["description"]
