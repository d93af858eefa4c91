"""The deployments manifest: one CSV row per parameterized deployment.

    name,flow,source,user,provider,cron,timezone,concurrency,output,deadline_seconds,active,...

The whole file is validated before anything is applied, and every problem names its row (as a
spreadsheet numbers it: the header is row 1) and its field. Applying compares each deployment
with what the Prefect API already holds and leaves equal ones alone, so applying twice changes
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pandas as pd
import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectNotFound
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters import Provider
from sceneflow.errors import ConfigError

__all__ = [
    "FLOWS",
    "ManifestError",
    "ManifestRow",
    "DeploymentSpec",
    "apply_specs",
    "load_manifest",
    "prefect_yaml_names",
]

# flow column -> (Prefect flow name, entrypoint, parameter that takes the source column)
FLOWS: dict[str, tuple[str, str, str]] = {
    "batch": ("generate-batch", "flows/batch.py:generate_batch", "csv_path"),
    "inbox": ("process-inbox", "flows/inbox.py:process_inbox", "inbox_dir"),
}
PULL_STEPS: list[dict[str, Any]] = [{"sceneflow.app.deploy.worker_steps.use_checkout": {}}]
TAGS = ["sceneflow", "manifest"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


class ManifestError(ConfigError):
    """The manifest breaks a rule; `problems` has one `row N: field: ...` line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source} has {len(problems)} problem(s): " + "; ".join(problems))


class ManifestRow(BaseModel):
    """One parameterized deployment."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(description="Deployment name: lowercase letters, digits and dashes.")
    flow: Literal["batch", "inbox"] = "batch"
    source: str = Field(min_length=1, description="Prompt CSV (batch) or inbox folder (inbox).")
    user: str = Field(min_length=1)
    provider: Provider = Provider("local")
    cron: str | None = None
    timezone: str = "UTC"
    concurrency: int = Field(4, ge=1, le=64)
    output: str | None = None
    deadline_seconds: float | None = Field(None, gt=0)
    active: bool = True
    work_pool: str = "sceneflow-pool"
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"{v!r} must be 1 to 63 lowercase letters, digits and dashes, starting with a "
                "letter or digit"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{v!r} is not an IANA time zone; use a name such as UTC or Europe/Berlin"
            ) from None
        if v not in available_timezones() and v != "UTC":
            raise ValueError(f"{v!r} is not an IANA time zone; use a name such as Europe/Berlin")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return None
        # The same check the Prefect API applies, so a row that passes here is accepted there.

        try:
            CronSchedule(cron=v)
        except ValidationError:
            raise ValueError(
                f"{v!r} is not a cron expression Prefect accepts; use five fields such as "
                "'0 6 * * *' (minute hour day-of-month month day-of-week)"
            ) from None
        return v

    @model_validator(mode="after")
    def _default_output(self) -> ManifestRow:
        if self.output is None:
            self.output = f"outputs/{self.name}"
        return self


@dataclass
class DeploymentSpec:
    """What one manifest row asks the Prefect API to hold."""

    row_number: int
    flow_name: str
    name: str
    entrypoint: str
    work_pool: str
    parameters: dict[str, Any]
    description: str
    schedules: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def _spec(row_number: int, row: ManifestRow) -> DeploymentSpec:
    flow_name, entrypoint, source_param = FLOWS[row.flow]
    parameters: dict[str, Any] = {
        source_param: row.source,
        "user_id": row.user,
        "provider": row.provider.value,
        "output_dir": row.output,
        "max_concurrency": row.concurrency,
    }
    if row.deadline_seconds is not None:
        parameters["deadline_seconds"] = row.deadline_seconds
    return DeploymentSpec(
        row_number=row_number,
        flow_name=flow_name,
        name=row.name,
        entrypoint=entrypoint,
        work_pool=row.work_pool,
        parameters=parameters,
        description=row.description
        or f"{row.flow} of {row.source} for {row.user} (deployments manifest row {row_number})",
        schedules=[(row.cron, row.timezone, row.active)] if row.cron else [],
    )


def _cell_problems(row_number: int, error: ValidationError) -> list[str]:
    problems = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known column; allowed: " + ", ".join(ManifestRow.model_fields)
        elif err["type"] in ("enum", "literal_error"):
            msg = f"must be one of {err['ctx']['expected']}"
        problems.append(f"row {row_number}: {where}: {msg}")
    return problems


def _cells(record: dict[str, Any]) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for key, value in record.items():
        text = str(value).strip()
        if not text:
            continue
        if key == "active" and text.lower() in _TRUE | _FALSE:
            cells[key] = text.lower() in _TRUE
        else:
            cells[key] = text
    return cells


def load_manifest(
    source: str | Path, *, reserved: dict[str, str] | None = None
) -> list[DeploymentSpec]:
    """Read and validate every row; raise one ManifestError listing all problems.

    `reserved` maps deployment names defined elsewhere (prefect.yaml) to where, so a manifest
    row cannot silently replace them."""
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as e:
        raise ConfigError(f"Manifest not found: {source}. Pass an existing CSV file.") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read {source} as CSV ({e}); save it as UTF-8 CSV.") from e
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    problems: list[str] = []
    specs: list[DeploymentSpec] = []
    first_use: dict[str, int] = {}
    reserved = reserved or {}
    for index, record in enumerate(frame.to_dict(orient="records")):
        row_number = index + 2
        try:
            row = ManifestRow.model_validate(_cells(record))
        except ValidationError as e:
            problems.extend(_cell_problems(row_number, e))
            continue
        if row.name in first_use:
            problems.append(
                f"row {row_number}: name: {row.name!r} is already used by row "
                f"{first_use[row.name]}; deployment names must be unique"
            )
            continue
        if row.name in reserved:
            problems.append(
                f"row {row_number}: name: {row.name!r} is defined in {reserved[row.name]}; "
                "pick another name"
            )
            continue
        first_use[row.name] = row_number
        specs.append(_spec(row_number, row))
    if problems:
        raise ManifestError(str(source), problems)
    return specs


def prefect_yaml_names(path: Path) -> dict[str, str]:
    """Deployment names in prefect.yaml, so the manifest cannot take them over."""

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {d["name"]: path.name for d in data.get("deployments") or [] if d.get("name")}


Change = Literal["created", "updated", "unchanged"]


def _schedule_key(deployment: DeploymentResponse) -> list[tuple[str, str, bool]]:
    found = []
    for item in deployment.schedules:
        cron = getattr(item.schedule, "cron", None)
        timezone = getattr(item.schedule, "timezone", None) or "UTC"
        found.append((str(cron), timezone, bool(item.active)))
    return sorted(found)


def _differences(
    existing: DeploymentResponse, spec: DeploymentSpec, schema: dict[str, Any]
) -> list[str]:
    """The fields in which the API's copy differs from the spec (empty: nothing to do)."""
    pairs: dict[str, tuple[Any, Any]] = {
        "entrypoint": (existing.entrypoint, spec.entrypoint),
        "work_pool": (existing.work_pool_name, spec.work_pool),
        "parameters": (existing.parameters, spec.parameters),
        "description": (existing.description, spec.description),
        "tags": (sorted(existing.tags), sorted(TAGS)),
        "pull_steps": (existing.pull_steps, PULL_STEPS),
        "schedules": (_schedule_key(existing), sorted(spec.schedules)),
        "parameter_schema": (existing.parameter_openapi_schema, schema),
        "enforce_parameter_schema": (existing.enforce_parameter_schema, True),
        "paused": (existing.paused, False),
    }
    return [name for name, (have, want) in pairs.items() if have != want]


async def apply_specs(
    specs: list[DeploymentSpec], *, repo: Path, client: PrefectClient | None = None
) -> list[tuple[DeploymentSpec, Change, list[str]]]:
    """Create or update each deployment whose API copy differs; leave equal ones alone."""

    outcomes: list[tuple[DeploymentSpec, Change, list[str]]] = []
    async with client or get_client() as api:
        for pool in sorted({s.work_pool for s in specs}):
            try:
                await api.read_work_pool(pool)
            except ObjectNotFound:
                raise ConfigError(
                    f"Work pool {pool!r} does not exist on {api.api_url}: create it with "
                    f"`prefect work-pool create {pool} --type process` (make serve does), or "
                    "change the work_pool column."
                ) from None
        schemas: dict[str, dict[str, Any]] = {}
        for spec in specs:
            if spec.entrypoint not in schemas:
                path, _, name = spec.entrypoint.partition(":")
                loaded: Any = load_flow_from_entrypoint(f"{repo / path}:{name}")
                schemas[spec.entrypoint] = parameter_schema(loaded).model_dump(exclude_unset=True)
            schema = schemas[spec.entrypoint]
            try:
                existing = await api.read_deployment_by_name(spec.full_name)
            except ObjectNotFound:
                existing = None
            changed = [] if existing is None else _differences(existing, spec, schema)
            if existing is not None and not changed:
                outcomes.append((spec, "unchanged", []))
                continue
            flow_id = await api.create_flow_from_name(spec.flow_name)
            await api.create_deployment(
                flow_id=flow_id,
                name=spec.name,
                entrypoint=spec.entrypoint,
                work_pool_name=spec.work_pool,
                parameters=spec.parameters,
                description=spec.description,
                tags=list(TAGS),
                pull_steps=PULL_STEPS,
                parameter_openapi_schema=schema,
                enforce_parameter_schema=True,
                paused=False,
                schedules=[
                    DeploymentScheduleCreate(
                        schedule=CronSchedule(cron=cron, timezone=timezone), active=active
                    )
                    for cron, timezone, active in spec.schedules
                ],
            )
            outcomes.append((spec, "created" if existing is None else "updated", changed))
    return outcomes


async def prune_deployments(
    keep: list[DeploymentSpec], *, client: PrefectClient | None = None
) -> list[str]:
    """Delete the deployments an earlier apply made (tagged with TAGS) that `keep` no longer
    lists, and return their names. prefect.yaml's deployments never carry the manifest tag."""

    wanted = {spec.full_name for spec in keep}
    gone: list[str] = []
    async with client or get_client() as api:
        made = await api.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=list(TAGS)))
        )
        for deployment in made:
            name = f"{(await api.read_flow(deployment.flow_id)).name}/{deployment.name}"
            if name not in wanted:
                await api.delete_deployment(deployment.id)
                gone.append(name)
    return sorted(gone)
