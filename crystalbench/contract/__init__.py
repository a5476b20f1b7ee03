"""The contract: the types and small services a plugin, a task and the runtime agree on.

Specs and hooks (`specs`, `hookspecs`), the data model (`dataset`, `job`, `record` with its JSON Schema,
`metrics`, `params`, `enums`), and what a plugin may use while it runs (`context`, `store`, `paths`,
`features`, `featurize`, `telemetry`, `seeding`, `download`, `errors`). The public API (`crystalbench/__init__.py`)
re-exports it; plugins import that, not these modules. This layer imports nothing above it (no runtime,
plugin, task, CLI or tool module), so a plugin's import never pulls in the runner.
"""
