"""The fleet spec: reading, validating and expanding it (see docs/spec.md).

Import from the submodules (``spec.schema.load_spec`` …) or from ``pytest_iotemu``;
this package module stays empty so that profiles can share the reading helpers.
"""
