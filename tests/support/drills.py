"""What the drills in tests/drills share: every remote provider's emulator served on 127.0.0.1
with distinctive credentials, prompt CSVs whose rows an emulator can recognise, counting paid
jobs per row, the CLI in a subprocess (with fast polling), a real `prefect server`, and a
scan of files for secrets.

`SCENEFLOW_DRILLS=full` (set by `make drills`) selects the full sizes; `size(ci, full)` picks.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FULL = os.environ.get("SCENEFLOW_DRILLS", "").lower() == "full"

REMOTE = (
    "runway",
    "veo",
    "vertex",
    "luma",
    "replicate",
    "fal",
    "kling",
    "minimax",
    "wan",
    "seedance",
)
# Providers SceneFlow can ask which jobs a lost submit created (find_submitted answers); the
# local provider finds its job folder by the send's reference.
ASKABLE = frozenset({"replicate", "luma", "kling", "wan", "seedance", "local"})
UNASKABLE = frozenset({"runway", "veo", "vertex", "fal", "minimax"})
RESUBMIT_HINT = "sceneflow jobs resubmit"

# Distinctive fake credentials: the secret scan looks for each one byte for byte.
KEYS = {
    "runway": "key_" + "d1e2a3f4" * 16,
    "veo": "AIzaFAKE-veo-DRILLCANARY-71c0",
    "luma": "luma-DRILLCANARY-5a4b3c2d1e",
    "replicate": "r8_DRILLCANARY_replicate_9e8d7c",
    "fal": "drillcanaryid77:drillcanarysecret1a2b3c4d",
    "minimax": "mm-DRILLCANARY-" + "9f8e7d6c" * 4,
    "wan": "sk-DRILLCANARY" + "4c3b2a19" * 3,
    "seedance": "5eed0000-DRIL-LCAN-ARY0-5eedance0001",
}
KLING_ACCESS = "AKDRILLCANARY" + "a1b2c3d4" * 2
KLING_SECRET = "SKDRILLCANARY" + "e5f6a7b8" * 3
SA_EMAIL = "drills@sf-proj.iam.gserviceaccount.com"
# What a row of each provider asks for: model, aspect ratio, duration, resolution, fps.
ROW_SPECS: dict[str, tuple[str, str, int, str, str]] = {
    "runway": ("gen4.5", "16:9", 5, "720p", ""),
    "veo": ("", "16:9", 4, "720p", ""),
    "vertex": ("", "9:16", 6, "720p", ""),
    "luma": ("ray-flash-2", "16:9", 5, "720p", ""),
    "replicate": ("", "1:1", 5, "", ""),
    "fal": ("", "16:9", 5, "", ""),
    "kling": ("", "16:9", 5, "", ""),
    "minimax": ("", "16:9", 6, "", ""),
    "wan": ("", "16:9", 5, "", ""),
    "seedance": ("", "16:9", 5, "", ""),
    "local": ("", "16:9", 1, "160x90", "8"),
}
HEADER = "id,provider,model,prompt,aspect_ratio,motion_intensity,duration,resolution,fps\n"


def size(ci: int, full: int) -> int:
    return full if FULL else ci


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


# --- prompt CSVs whose rows the emulators recognise --------------------------------------


def token(row_id: str) -> str:
    """The mark a row's prompt carries, so a job an emulator created names its row."""
    return f"<{row_id}>"


def row_ids(provider: str, n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{provider}-{i:04d}" for i in range(n)]


def csv_text(rows: dict[str, int], prefix: str = "") -> str:
    """A prompt CSV with `rows[provider]` rows of each provider."""
    lines = [HEADER]
    for provider, n in rows.items():
        model, aspect, duration, resolution, fps = ROW_SPECS[provider]
        for i, row_id in enumerate(row_ids(provider, n, prefix)):
            prompt = f"Scene {token(row_id)} of drifting {('red', 'blue', 'green')[i % 3]} lights"
            motion = 3 + i % 5
            lines.append(
                f"{row_id},{provider},{model},{prompt},{aspect},{motion},{duration},"
                f"{resolution},{fps}\n"
            )
    return "".join(lines)


def rows_of_job(job: _base.Job) -> list[str]:
    """The row ids whose marks the job's request carries (one, for a drill's job)."""
    text, found, start = json.dumps(job.body), [], 0
    while (start := text.find("<", start)) != -1:
        end = text.find(">", start)
        if end == -1:
            break
        found.append(text[start + 1 : end])
        start = end
    return found


def paid_per_row(emu: _base.Emulator) -> Counter[str]:
    """Row id -> paid jobs the emulator created for it (every created job is paid)."""
    with emu.lock:
        jobs = list(emu.jobs.values())
    return Counter(row for job in jobs for row in rows_of_job(job))


def jobs_of_row(emu: _base.Emulator, row_id: str) -> list[_base.Job]:
    with emu.lock:
        jobs = list(emu.jobs.values())
    return [j for j in jobs if token(row_id) in json.dumps(j.body)]


# --- the fleet of emulators ----------------------------------------------------------------


@dataclass
class Fleet:
    emulators: dict[str, _base.Emulator]
    urls: dict[str, str]
    signed_urls: list[str] = field(default_factory=list)

    def base_url_env(self) -> dict[str, str]:
        """SCENEFLOW_BASE_URLS__<KEY> for every served provider."""
        prefixes = {"luma": luma.PREFIX, "wan": wan.PREFIX, "seedance": seedance.PREFIX}
        return {
            f"SCENEFLOW_BASE_URLS__{key.upper()}": url + prefixes.get(key, "")
            for key, url in self.urls.items()
        }

    def paid(self) -> dict[str, Counter[str]]:
        return {key: paid_per_row(emu) for key, emu in self.emulators.items()}


def _record_signed(emu: runway.RunwayEmulator, seen: list[str]) -> None:
    sign = emu.sign

    def recording(job_id: str, base_url: str) -> str:
        url = sign(job_id, base_url)
        seen.append(url)
        return url

    emu.sign = recording  # type: ignore[method-assign]


@contextlib.contextmanager
def serve_fleet(providers: tuple[str, ...] = REMOTE, latency: float = 0.2) -> Iterator[Fleet]:
    """Every provider of `providers` served by its emulator on its own port."""
    made: dict[str, Callable[[], _base.Emulator]] = {
        "runway": lambda: runway.RunwayEmulator(api_key=KEYS["runway"], latency=latency),
        "veo": lambda: gemini.VeoEmulator(api_key=KEYS["veo"], latency=latency),
        "vertex": lambda: vertex.VertexEmulator(
            public_keys={SA_EMAIL: PUBLIC_KEY}, latency=latency
        ),
        "luma": lambda: luma.LumaEmulator(api_key=KEYS["luma"], latency=latency),
        "replicate": lambda: _base.Emulator(latency=latency),
        "fal": lambda: fal.FalEmulator(api_key=KEYS["fal"], latency=latency),
        "kling": lambda: kling.KlingEmulator(keys={KLING_ACCESS: KLING_SECRET}, latency=latency),
        "minimax": lambda: minimax.MiniMaxEmulator(api_key=KEYS["minimax"], latency=latency),
        "wan": lambda: wan.WanEmulator(api_key=KEYS["wan"], latency=latency),
        "seedance": lambda: seedance.SeedanceEmulator(api_key=KEYS["seedance"], latency=latency),
    }
    emulators = {key: made[key]() for key in providers}
    apps = {
        key: replicate.create_app(emu, token=KEYS["replicate"]) if key == "replicate" else emu.app
        for key, emu in emulators.items()
    }
    fleet = Fleet(emulators, {})
    if "runway" in emulators:
        _record_signed(emulators["runway"], fleet.signed_urls)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack:
        fleet.urls = {key: stack.enter_context(_base.serve(app)) for key, app in apps.items()}
        yield fleet


def credentials_for(fleet: Fleet) -> dict[str, dict[str, Any]]:
    stored: dict[str, dict[str, Any]] = {
        k: {"api_key": v} for k, v in KEYS.items() if k in fleet.emulators
    }
    if "kling" in fleet.emulators:
        stored["kling"] = {"access_key": KLING_ACCESS, "secret_key": KLING_SECRET}
    if "vertex" in fleet.emulators:
        account = {
            "type": "service_account",
            "project_id": "sf-proj",
            "private_key_id": "drill1",
            "private_key": PRIVATE_KEY,
            "client_email": SA_EMAIL,
            "client_id": "1",
            "token_uri": fleet.urls["vertex"] + "/token",
        }
        stored["vertex"] = {
            "service_account": account,
            "project": "sf-proj",
            "location": "us-central1",
        }
    return stored


def store_credentials(user: str, fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Seal every served provider's credentials for `user` in SceneFlow's database."""
    from sceneflow import db, store

    stored = credentials_for(fleet)
    with db.session_scope() as session:
        for provider, credentials in stored.items():
            store.put_credentials(
                session=session, user_id=user, provider=provider, credentials=credentials
            )
    return stored


# --- the job table -------------------------------------------------------------------------


def job_rows(batch_id: str | None = None) -> list[Any]:
    from sqlmodel import select

    from sceneflow import store
    from sceneflow.db import session_scope

    with session_scope() as session:
        rows = list(session.exec(select(store.GenerationJob)))
        for row in rows:
            session.expunge(row)
    return [r for r in rows if batch_id is None or r.batch_id == batch_id]


def attempts_of(job_id: str) -> list[Any]:
    from sqlmodel import select

    from sceneflow import store
    from sceneflow.db import session_scope

    with session_scope() as session:
        rows = [a for a in session.exec(select(store.GenerationAttempt)) if a.job_id == job_id]
        for row in rows:
            session.expunge(row)
    return rows


# --- the CLI in a subprocess ----------------------------------------------------------------


def _fast_polling() -> None:
    """tests/support/polling.fast_polling without pytest: every adapter polls every 0.1-0.2 s."""
    import adapters

    for key in adapters.known():
        cls = adapters.adapter_class(key)
        original = cls.capabilities

        def fast(self: Any, _original: Any = original) -> Any:
            return _original(self).model_copy(
                update={"poll_interval": 0.1, "max_poll_interval": 0.2}
            )

        cls.capabilities = fast  # type: ignore[method-assign]


def _kill_after_local_submit() -> None:
    """SIGKILL this process right after the local provider created a job (its folder is
    written and its render scheduled) and before the submit returns: the local provider's
    version of the emulators' `on_created` hook."""
    from adapters.local.adapter import LocalAdapter

    submit = LocalAdapter.submit

    async def submit_then_die(self: Any, *args: Any, **kw: Any) -> str:
        await submit(self, *args, **kw)
        os.killpg(os.getpgid(0), signal.SIGKILL)
        raise AssertionError("unreachable")

    LocalAdapter.submit = submit_then_die  # type: ignore[method-assign]


def cli_main() -> None:
    """The `sceneflow` CLI with the drill switches of the environment applied first:
    SCENEFLOW_DRILL_FAST_POLL=1 polls fast; SCENEFLOW_DRILL_KILL_LOCAL=1 kills the process
    right after the first local job is created."""
    if os.environ.get("SCENEFLOW_DRILL_FAST_POLL") == "1":
        _fast_polling()
    if os.environ.get("SCENEFLOW_DRILL_KILL_LOCAL") == "1":
        _kill_after_local_submit()
    from sceneflow.app.cli import app

    sys.argv[0] = "sceneflow"
    app()


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment for a CLI subprocess (SCENEFLOW_HOME, ENCRYPTION_KEY,
    DATABASE_URL as the fixtures set them), with fast polling."""
    env = dict(os.environ)
    env.update(SCENEFLOW_DRILL_FAST_POLL="1", PYTHONPATH=str(REPO))
    env.update(extra or {})
    return env


def start_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`sceneflow ARGS` in its own process group, output appended to `log`."""
    with log.open("ab") as out:
        out.write(f"\n$ sceneflow {' '.join(args)}\n".encode())
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-c", "from tests.support.drills import cli_main; cli_main()", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_cli(args: list[str], env: dict[str, str], log: Path, timeout: float = 240) -> int:
    proc = start_cli(args, env, log)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        command = " ".join(args)
        message = f"sceneflow {command} did not end in {timeout} s\n{tail(log)}"
        raise AssertionError(message) from None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its group, and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def killer(proc: Callable[[], subprocess.Popen[bytes] | None], once: bool = True) -> Any:
    """An `on_created` callback that SIGKILLs the client (`proc()`) before the reply leaves."""
    fired: list[str] = []

    def callback(job: _base.Job) -> None:
        target = proc()
        if target is None or (once and fired):
            return
        fired.append(job.id)
        kill_group(target)

    callback.fired = fired  # type: ignore[attr-defined]
    return callback


def tail(log: Path, lines: int = 80) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- a real prefect server ------------------------------------------------------------------


@contextlib.contextmanager
def prefect_server(root: Path) -> Iterator[dict[str, str]]:
    """`prefect server start` on 127.0.0.1 (SQLite, no UI, no scheduler); yields the
    environment a client needs (PREFECT_API_URL, PREFECT_HOME)."""
    root.mkdir(parents=True, exist_ok=True)
    port = _base.free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    client = {"PREFECT_API_URL": api, "PREFECT_HOME": str(root / "client")}
    env.update(
        PREFECT_HOME=str(root / "server"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{root / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the Prefect server did not start\n{tail(log)}")
            time.sleep(0.3)
        yield client
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(proc)


# --- the secret scan ------------------------------------------------------------------------


def secret_forms(secret: str) -> list[bytes]:
    """The secret as written, and base64 of it at each of the three byte alignments (a pickled
    Prefect result is stored base64-encoded)."""
    raw = secret.encode()
    forms = [raw]
    for shift in range(3):
        encoded = base64.b64encode(raw[shift:])
        forms.append(encoded[: len(encoded) // 4 * 4 - 4])
    return [f for f in forms if len(f) >= 12]


def fleet_secrets(stored: dict[str, dict[str, Any]], fleet: Fleet) -> dict[str, str]:
    """name -> secret: every stored credential, Vertex's key and minted tokens, and every
    signed output URL Runway handed out."""
    secrets: dict[str, str] = {}
    for provider, creds in stored.items():
        for name, value in creds.items():
            if isinstance(value, str) and name in ("api_key", "access_key", "secret_key"):
                secrets[f"{provider} {name}"] = value
    if "vertex" in stored:
        for n, line in enumerate(PRIVATE_KEY.splitlines()[2:-2:5]):
            secrets[f"vertex private key line {n}"] = line
        tokens = list(fleet.emulators["vertex"].tokens)  # type: ignore[attr-defined]
        secrets |= {f"vertex access token {n}": t for n, t in enumerate(tokens)}
    for n, url in enumerate(fleet.signed_urls):
        query = url.partition("?")[2]
        secrets[f"runway signed URL query {n}"] = query
        secrets[f"runway signed URL signature {n}"] = query.rpartition(".")[2]
    return secrets


def scan_for_secrets(secrets: dict[str, str], *roots: Path) -> list[Path]:
    """Every file under `roots`, read as bytes; fails naming the first secret found and where.
    Returns the files scanned."""
    needles = {form: name for name, secret in secrets.items() for form in secret_forms(secret)}
    files = sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())
    for path in files:
        data = path.read_bytes()
        for needle, name in needles.items():
            assert needle not in data, f"{name} found in {path}"
    return files


def scan_database_for_secrets(secrets: dict[str, str]) -> None:
    """PostgreSQL keeps rows in its own data directory: read every text column instead."""
    import sqlalchemy as sa

    from sceneflow import db

    needles = {form: name for name, secret in secrets.items() for form in secret_forms(secret)}
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
