"""Running SceneFlow as a service: the deployments manifest and the worker pull step."""
