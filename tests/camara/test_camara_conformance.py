"""CAMARA Carrier Billing r3.2's own feature files, run against Matomete (issue 15).

The feature files are read where they are (``camara_spec.camara_dir``); every scenario becomes a
test through the generic steps of ``camara_steps``. Without the folder the suite skips, saying
where it looked.
"""

from __future__ import annotations

import camara_steps
import pytest
from camara_spec import candidate_dirs, feature_files
from pytest_bdd import scenarios

FEATURES = feature_files()

if FEATURES:
    scenarios(*map(str, FEATURES))
    # The step definitions (and the ``case`` fixture) live in camara_steps; pytest finds
    # fixtures in the test module's own namespace.
    globals().update(
        {name: value for name, value in vars(camara_steps).items() if name.startswith("pytestbdd_") or name == "case"}
    )
else:

    def test_camara_folder() -> None:
        """Skip the suite: the CAMARA folder is absent."""
        pytest.skip(f"CAMARA folder absent; looked in: {', '.join(map(str, candidate_dirs()))}")
