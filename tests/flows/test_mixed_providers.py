"""One batch CSV across every provider, each served by its emulator over real HTTP on 127.0.0.1,
run through generate_batch under Prefect: every row completes exactly once (faults included), a
re-run pays for nothing, and no secret is left in any file the run wrote."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import adapters
from flows.batch import generate_batch
from sceneflow import db, store
from sceneflow.media import probe_video, verify_video
from sceneflow.settings import get_settings
from tests.support.emulators import (
    _base,
    fal,
    gemini,
    kling,
    luma,
    minimax,
    replicate,
    runway,
    seedance,
    vertex,
    wan,
)
from tests.support.polling import fast_polling

pytestmark = pytest.mark.usefixtures("prefect_harness")

USER = "mixer"
# Distinctive fake keys: the secret scan looks for each of them byte for byte.
KEYS = {
    "runway": "key_" + "5ec7e7a1" * 16,
    "veo": "AIzaFAKE-veo-MIXCANARY-4e1d9c",
    "luma": "luma-MIXCANARY-8b3f21d7c6",
    "replicate": "r8_MIXCANARY_replicate_2f9a7b",
    "fal": "mixcanaryid42:mixcanarysecret9d8c7b6a",
    "minimax": "mm-MIXCANARY-minimax-6c1e0b93",
    "wan": "sk-MIXCANARYwan7f3e2a91",
    "seedance": "ark-MIXCANARY-seedance-0d4c8e",
}
KLING_ACCESS, KLING_SECRET = "AKMIXCANARYkling42", "SKMIXCANARYklingsecret9f8e7d6c5b"
SA_EMAIL = "mixer@sf-proj.iam.gserviceaccount.com"
CSV = """id,provider,model,prompt,aspect_ratio,motion_intensity,duration,resolution,fps
rw-1,runway,gen4.5,A lighthouse in a storm,16:9,5,5,720p,
veo-1,veo,,A hummingbird at dawn,16:9,4,4,720p,
vx-1,vertex,,Snow falling on a temple,9:16,2,6,720p,
luma-1,luma,ray-flash-2,Neon city in the rain,16:9,6,5,720p,
rep-1,replicate,,A cat chasing a laser dot,1:1,7,5,,
fal-1,fal,,Waves on a black sand beach,16:9,5,5,,
fal-2,fal,fal-ai/veo3/fast,Hot air balloons over hills,9:16,4,4,720p,
loc-1,local,,Orange desert dunes,16:9,3,1,160x90,12
kl-1,kling,,A red panda in bamboo,16:9,5,5,720p,
mm-1,minimax,,A paper boat on a stream,16:9,5,6,720p,
wan-1,wan,,Lanterns over a river,16:9,5,5,720p,
sd-1,seedance,,A fox in falling leaves,16:9,5,5,720p,
"""
ROWS = {
    "runway": 1,
    "veo": 1,
    "vertex": 1,
    "luma": 1,
    "replicate": 1,
    "fal": 2,
    "local": 1,
    "kling": 1,
    "minimax": 1,
    "wan": 1,
    "seedance": 1,
}
# Submit faults that must be retried without creating a second job: (provider, kind).
SUBMIT_FAULTS = [
    ("runway", "429"),
    ("veo", "503"),
    ("vertex", "429"),
    ("luma", "503"),
    ("replicate", "429"),
    ("fal", "503"),
    ("kling", "503"),
    ("minimax", "429"),
    ("wan", "503"),
    ("seedance", "429"),
]


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


PRIVATE_KEY, PUBLIC_KEY = _keypair()


@dataclass
class Served:
    emulators: dict[str, _base.Emulator]
    urls: dict[str, str]
    signed_urls: list[str]
    jwts: list[str]


def _count_jwts(emu: kling.KlingEmulator, seen: list[str]) -> None:
    """Keep every raw JWT the Kling adapter signs, so the scan can look for them."""
    auth = emu._auth

    def recording(request: Any) -> Any:
        seen.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        return auth(request)

    emu._auth = recording  # type: ignore[method-assign]


def _count_signed(emu: runway.RunwayEmulator, seen: list[str]) -> None:
    """Keep every signed output URL Runway hands out, so the scan can look for them."""
    sign = emu.sign

    def recording(job_id: str, base_url: str) -> str:
        url = sign(job_id, base_url)
        seen.append(url)
        return url

    emu.sign = recording  # type: ignore[method-assign]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """Every emulator on its own port, each adapter pointed at it, polling sped up."""
    fast_polling(monkeypatch)

    rep = _base.Emulator(latency=0.2)
    emulators: dict[str, _base.Emulator] = {
        "runway": runway.RunwayEmulator(api_key=KEYS["runway"], latency=0.2),
        "veo": gemini.VeoEmulator(api_key=KEYS["veo"], latency=0.2),
        "vertex": vertex.VertexEmulator(public_keys={SA_EMAIL: PUBLIC_KEY}, latency=0.2),
        "luma": luma.LumaEmulator(api_key=KEYS["luma"], latency=0.2),
        "replicate": rep,
        "fal": fal.FalEmulator(api_key=KEYS["fal"], latency=0.2),
        "kling": kling.KlingEmulator(keys={KLING_ACCESS: KLING_SECRET}, latency=0.2),
        "minimax": minimax.MiniMaxEmulator(api_key=KEYS["minimax"], latency=0.2),
        "wan": wan.WanEmulator(api_key=KEYS["wan"], latency=0.2),
        "seedance": seedance.SeedanceEmulator(api_key=KEYS["seedance"], latency=0.2),
    }
    apps = {key: getattr(emu, "app", None) for key, emu in emulators.items()}
    apps["replicate"] = replicate.create_app(rep, token=KEYS["replicate"])
    signed: list[str] = []
    _count_signed(emulators["runway"], signed)  # type: ignore[arg-type]
    jwts: list[str] = []
    _count_jwts(emulators["kling"], jwts)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        urls = {key: stack.enter_context(_base.serve(app)) for key, app in apps.items()}
        for key, url in urls.items():
            suffix = {"luma": luma.PREFIX, "wan": wan.PREFIX, "seedance": seedance.PREFIX}.get(
                key, ""
            )
            monkeypatch.setenv(f"SCENEFLOW_BASE_URLS__{key.upper()}", url + suffix)
        get_settings.cache_clear()
        yield Served(emulators, urls, signed, jwts)
    get_settings.cache_clear()


def _store_credentials(urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    account = {
        "type": "service_account",
        "project_id": "sf-proj",
        "private_key_id": "mix1",
        "private_key": PRIVATE_KEY,
        "client_email": SA_EMAIL,
        "client_id": "1",
        "token_uri": urls["vertex"] + "/token",
    }
    stored: dict[str, dict[str, Any]] = {k: {"api_key": v} for k, v in KEYS.items()}
    stored["vertex"] = {"service_account": account, "project": "sf-proj", "location": "us-central1"}
    stored["kling"] = {"access_key": KLING_ACCESS, "secret_key": KLING_SECRET}
    with db.session_scope() as session:
        for provider, credentials in stored.items():
            store.put_credentials(
                session=session, user_id=USER, provider=provider, credentials=credentials
            )
    return stored


def _results(out: Path) -> dict[str, dict[str, str]]:
    frame = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    return {row["id"]: row for row in frame.to_dict(orient="records")}


def _local_renders(home: Path) -> int:
    return len(list((home / "local" / "jobs").iterdir()))


async def test_a_csv_mixing_every_provider_completes_each_row_exactly_once(
    served: Served, database_url: str, sceneflow_env: Path, tmp_path: Path
) -> None:
    assert set(ROWS) == set(adapters.known()), "a provider is missing from the mixed CSV"
    stored = _store_credentials(served.urls)
    for provider, kind in SUBMIT_FAULTS:
        served.emulators[provider].inject("submit", kind, retry_after=0.5)
    served.emulators["runway"].inject("download", "503")
    source = tmp_path / "mixed.csv"
    source.write_text(CSV)
    out = tmp_path / "out"

    summary = await generate_batch(str(source), USER, output_dir=str(out))

    total = sum(ROWS.values())
    assert (summary.completed, summary.failed, summary.invalid) == (total, 0, 0), summary.failures
    assert summary.results_csv == str(out / "results.csv")
    results = _results(out)
    assert list(results) == [line.split(",")[0] for line in CSV.splitlines()[1:]]
    for provider, count in ROWS.items():
        rows = [r for r in results.values() if r["provider"] == provider]
        assert len(rows) == count
        for row in rows:
            assert row["status"] == "COMPLETED" and row["error"] == "", row
            assert row["warnings"] or provider == "local", "unmapped fields must be reported"
            info = verify_video(row["output_path"])
            assert Path(row["output_path"]).parent == out and info.codec == "h264"
            assert row["provider_job_id"] and row["job_id"] and row["submitted_at"]
        # A refused submit (429, 503) never reached the provider: only the accepted one
        # counts as an attempt, faulted provider or not.
        assert sum(int(r["attempts"]) for r in rows) == count
        if provider == "local":
            continue
        emu = served.emulators[provider]
        assert emu.submissions == count, f"{provider} was paid {emu.submissions} times"
        for row in rows:  # each row is one of this emulator's jobs, none shared
            assert sum(job_id in row["provider_job_id"] for job_id in emu.jobs) == 1
    local = probe_video(results["loc-1"]["output_path"])
    assert (local.width, local.height, local.fps) == (160, 90, 12)
    assert _local_renders(sceneflow_env) == 1
    assert float(results["rw-1"]["cost"]) > 0  # Runway reports credits

    # The same CSV again is answered from the job table and Prefect's cache: nobody is paid.
    again = await generate_batch(str(source), USER, output_dir=str(out))
    assert again.completed == total and again.failures == []
    assert {k: e.submissions for k, e in served.emulators.items()} == {
        k: n for k, n in ROWS.items() if k != "local"
    }
    assert _local_renders(sceneflow_env) == 1
    rerun = _results(out)
    for row_id, row in results.items():
        assert rerun[row_id]["output_path"] == row["output_path"]
        assert rerun[row_id]["provider_job_id"] == row["provider_job_id"]

    await _flush_prefect()
    needles = _needles(stored, served)
    _scan_files(needles, tmp_path, sceneflow_env)
    if database_url.startswith("postgresql"):
        _scan_database(needles)


# --- the secret scan ---------------------------------------------------------------------


def _forms(secret: str) -> list[bytes]:
    """The secret as written, and base64 of it at each of the three byte alignments (Prefect
    stores pickled results base64-encoded, so a leaked key would show up that way)."""
    raw = secret.encode()
    forms = [raw]
    for shift in range(3):
        encoded = base64.b64encode(raw[shift:])
        forms.append(encoded[: len(encoded) // 4 * 4 - 4])
    return [f for f in forms if len(f) >= 12]


def _needles(stored: dict[str, dict[str, Any]], served: Served) -> dict[bytes, str]:
    secrets: dict[str, str] = {
        f"{p} api_key": c["api_key"] for p, c in stored.items() if "api_key" in c
    }
    secrets["kling secret key"] = KLING_SECRET
    assert served.jwts, "the Kling adapter signed no JWT"
    secrets |= {f"kling JWT {n}": token for n, token in enumerate(served.jwts)}
    # A line from the middle of the PEM matches the key in raw and in JSON-escaped form.
    for n, line in enumerate(PRIVATE_KEY.splitlines()[2:-2:5]):
        secrets[f"vertex private key line {n}"] = line
    tokens = list(served.emulators["vertex"].tokens)  # type: ignore[attr-defined]
    assert tokens, "the Vertex emulator minted no access token"
    secrets |= {f"vertex access token {n}": t for n, t in enumerate(tokens)}
    assert served.signed_urls, "Runway handed out no signed URL"
    for n, url in enumerate(served.signed_urls):
        query = url.partition("?")[2]
        secrets[f"runway signed URL query {n}"] = query
        secrets[f"runway signed URL signature {n}"] = query.rpartition(".")[2]
    return {form: name for name, secret in secrets.items() for form in _forms(secret)}


async def _flush_prefect() -> None:
    """Logs and events reach Prefect's database from background workers; wait for them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    drained = EventsWorker.drain_all()
    if drained is not None and not isinstance(drained, tuple):
        await drained


def _scan_files(needles: dict[bytes, str], *roots: Path) -> None:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    everywhere = [Path(os.environ["PREFECT_HOME"]), prefect_db.parent, *roots]
    files = [p for root in everywhere if root.exists() for p in root.rglob("*") if p.is_file()]
    assert prefect_db in files
    assert any(p.name == "results.csv" for p in files)
    assert any("storage" in p.parts for p in files), "cached task results were not persisted"
    for path in files:
        data = path.read_bytes()
        for needle, name in needles.items():
            assert needle not in data, f"{name} found in {path}"


def _scan_database(needles: dict[bytes, str]) -> None:
    """PostgreSQL keeps rows in its own data directory: read every text column instead."""
    engine = db.get_engine()
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            columns = [
                c["name"]
                for c in inspector.get_columns(table)
                if isinstance(c["type"], sa.String | sa.Text)
            ]
            for row in conn.execute(sa.table(table, *map(sa.column, columns)).select()):
                text = "\x1f".join(str(v) for v in row if v is not None).encode()
                for needle, name in needles.items():
                    assert needle not in text, f"{name} found in table {table}"
