"""How much slower than an idle machine the suite may find this one (``EASYTASK_TEST_SLACK``).

Waits on conditions need no slack: they end when the condition holds. Only the few assertions
that measure speed itself (a page opening within a budget) multiply their budget by it;
``scripts/test --under-load`` sets it, since it runs the suite beside two CPU-bound processes.
"""

from __future__ import annotations

import os

SLACK = max(1.0, float(os.environ.get("EASYTASK_TEST_SLACK", "1") or 1))
