"""Project-wide test settings: pytester for the plugin's own tests."""
pytest_plugins = ["pytester"]
