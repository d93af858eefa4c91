"""check_credentials_flow: re-test every stored credential, as a daily deployment."""

from __future__ import annotations

import asyncio
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from pydantic import BaseModel

from sceneflow import store
from sceneflow.db import session_scope
from sceneflow.errors import SceneFlowError
from tasks.credentials import test_credentials


class CredentialCheck(BaseModel):
    user_id: str
    provider: str
    verdict: Literal["valid", "invalid", "error"]
    detail: str = ""


@flow(name="check-credentials", flow_run_name="check-credentials")
async def check_credentials_flow(max_concurrency: int = 4) -> list[CredentialCheck]:
    """Make each provider's cheapest authenticated call for every stored credential and record
    the verdict in is_valid. A credential that cannot be tested right now (the provider is down,
    the key cannot be decrypted) keeps its last verdict and is reported as an error.

    Args:
        max_concurrency: Credentials tested at once.
    """
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    logger = get_run_logger()
    with session_scope() as session:
        pairs = [(c.user_id, c.provider_name) for c in store.list_all_configs(session=session)]
    limit = asyncio.Semaphore(max_concurrency)

    async def check(user_id: str, provider: str) -> CredentialCheck:
        async with limit:
            try:
                valid = await test_credentials(user_id, provider)
            except SceneFlowError as e:
                logger.error("could not test %s credentials of %r: %s", provider, user_id, e)
                return CredentialCheck(
                    user_id=user_id, provider=provider, verdict="error", detail=str(e)
                )
        if not valid:
            logger.warning(
                "%s rejected the credentials of %r; runs for them fail until they are replaced "
                "with `sceneflow creds set %s %s`",
                provider,
                user_id,
                user_id,
                provider,
            )
        verdict: Literal["valid", "invalid"] = "valid" if valid else "invalid"
        return CredentialCheck(user_id=user_id, provider=provider, verdict=verdict)

    checks = list(await asyncio.gather(*(check(u, p) for u, p in pairs)))
    if checks:
        await acreate_table_artifact(
            table=[c.model_dump() for c in checks],
            key="credential-checks",
            description="Result of the last credentials check",
        )
    logger.info(
        "%d credential(s): %d valid, %d invalid, %d could not be tested",
        len(checks),
        sum(c.verdict == "valid" for c in checks),
        sum(c.verdict == "invalid" for c in checks),
        sum(c.verdict == "error" for c in checks),
    )
    return checks
