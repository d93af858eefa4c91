"""The job engine: the life of one generation job, as plain functions over the job table and an
adapter. No Prefect here; `tasks/generation.py` wraps a lane in one task, and the gateway calls
the steps directly.

- `ledger`: the only writer of job rows (prepare, send stamp, status, completion, failure).
- `submit`: send once; a lost reply is looked up at the provider, never re-sent blindly.
- `poll`: adaptive polling against two deadlines (queued, running); cancel at a deadline.
- `download`: fetch at once, verify the file in its final place, then COMPLETED.
- `lanes`: a group of jobs one after another, each claimed and ended by the one policy.
"""
