"""Settings for the whole suite."""

from __future__ import annotations

import os
import tempfile


def pytest_configure() -> None:
    # The CLI keeps logins in $XDG_CONFIG_HOME/easytask: never the developer's own, in any test
    # or any process a test starts. Tests that log in as several people set their own.
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="easytask-test-config-")
