"""The harness core: hook specs, plugin registry, data model, splits, metrics, runner, results, CLI."""
