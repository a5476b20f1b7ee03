"""crystalbench-example: a crystalbench plugin (see README.md)."""
