# crystalbench's pytest fixtures: bench_context, toy_data, toy_classes, chain_data
pytest_plugins = ["crystalbench.testing.fixtures"]
