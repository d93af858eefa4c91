"""The entry layer: the CLI, `VideoGenerationGateway`, the deployment manifest and the worker
pull step. It sits on top of everything else (core ← adapters ← tasks ← flows ← here) and may
import any of it, at module top.

    from sceneflow.app import VideoGenerationGateway
"""

from sceneflow.app.gateway import VideoGenerationGateway

__all__ = ["VideoGenerationGateway"]
