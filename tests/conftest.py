import os

from hypothesis import HealthCheck, settings

# CI runs the same examples every time; locally hypothesis explores.
settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Console scripts the tests run go through no warm server (tests/test_server.py starts its own,
# in a directory of its own): none is left behind, and every run is the in-process one.
os.environ["DIFFCLI_SERVER"] = "0"

# tests/test_pytest_plugin.py runs pytest on temporary projects
pytest_plugins = ["pytester"]
