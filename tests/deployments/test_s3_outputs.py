"""Videos and results.csv written to an S3-compatible server (moto in server mode on 127.0.0.1)
through an s3:// output_dir, reading the prompt CSV from the same bucket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from adapters import Provider
from flows.batch import generate_batch
from sceneflow.settings import get_settings

BUCKET = "sceneflow-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server; s3fs (and so fsspec and pandas) finds it through AWS_ENDPOINT_URL, the
    same variable a worker would set for MinIO or any S3-compatible store."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    # s3fs caches filesystems per process; one from an earlier test would keep its endpoint.
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.mark.usefixtures("prefect_harness")
async def test_batch_writes_videos_and_results_to_s3(s3_endpoint: str, tmp_path: Path) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(
        Bucket=BUCKET,
        Key="in/prompts.csv",
        Body=(
            b"id,prompt,resolution,duration,fps,aspect_ratio,motion_intensity\n"
            b"kite,A red kite,160x90,1,6,16:9,3\n"
            b"boat,A blue boat,160x90,1,6,16:9,5\n"
        ),
    )

    summary = await generate_batch(
        csv_path=f"s3://{BUCKET}/in/prompts.csv",
        user_id="s3-user",
        provider=Provider.LOCAL,
        output_dir=f"s3://{BUCKET}/runs/one",
    )

    assert (summary.completed, summary.failed, summary.invalid) == (2, 0, 0)
    assert summary.results_csv == f"s3://{BUCKET}/runs/one/results.csv"
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="runs/one/")["Contents"]
    keys = {o["Key"]: o["Size"] for o in listed}
    videos = {k: size for k, size in keys.items() if k.endswith(".mp4")}
    assert len(videos) == 2 and all(size > 1000 for size in videos.values())
    body = client.get_object(Bucket=BUCKET, Key="runs/one/results.csv")["Body"].read()
    (tmp_path / "results.csv").write_bytes(body)
    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["status"]) == {"COMPLETED"}
    assert {p.removeprefix(f"s3://{BUCKET}/") for p in results["output_path"]} == set(videos)
    # Downloads are staged locally before upload; nothing is left behind there.
    staging = get_settings().home / "staging"
    assert staging.is_dir() and list(staging.iterdir()) == []
