from tests.lab.conftest import pytest_collection_modifyitems  # noqa: F401  (root gating)
