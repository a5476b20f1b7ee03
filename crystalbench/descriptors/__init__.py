"""Built-in descriptors."""
