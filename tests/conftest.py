pytest_plugins = ["tests.postgis_server"]
