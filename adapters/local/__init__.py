"""The built-in provider "local": renders a real H.264 MP4 on this machine, with no key and no
network, and behaves like a remote provider.

- `adapter`: `LocalAdapter`, the provider the registry names.
- `job_store`: each job's folder on disk, its JSON files and its lock.
- `render_pool`: the daemon threads that render queued jobs, and one job's run.
- `renderer`: the deterministic frames and their encoding.
"""
