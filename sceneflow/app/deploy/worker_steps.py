"""A Prefect pull step that puts a flow run in this machine's SceneFlow checkout.

Process workers start each flow run in a fresh temporary folder, so the entrypoints in
prefect.yaml (`flows/batch.py:...`) need the run moved into the checkout first. Prefect's own
`set_working_directory` takes a fixed path, captured on the machine that ran `prefect deploy`;
this step looks the checkout up on the machine that runs the flow, so workers on several machines
can each keep the repository wherever they like.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["checkout_directory", "use_checkout"]

MARKER = "prefect.yaml"


def checkout_directory(directory: str | None = None) -> Path:
    """The argument, else SCENEFLOW_REPO, else the checkout this package was installed from."""
    chosen = directory or os.environ.get("SCENEFLOW_REPO")
    source = "the step's `directory`" if directory else "SCENEFLOW_REPO"
    if not chosen:
        # An editable install (`pip install -e .`, as `make` does) imports from the checkout.
        chosen, source = str(Path(__file__).resolve().parents[3]), "the installed package"
    path = Path(chosen).expanduser().resolve()
    if not (path / MARKER).is_file():
        raise FileNotFoundError(
            f"No SceneFlow checkout at {path} (from {source}): it has no {MARKER}. Set "
            "SCENEFLOW_REPO on the worker to the folder that holds prefect.yaml, or install "
            "SceneFlow there with `pip install -e .`."
        )
    return path


def use_checkout(directory: str | None = None) -> dict[str, str]:
    """Pull step: change into the checkout; returns {"directory": ...} for later steps."""
    path = checkout_directory(directory)
    os.chdir(path)
    return {"directory": str(path)}
