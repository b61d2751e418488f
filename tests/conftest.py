"""Session-wide test settings: the results store lives in a temporary file, so no test writes ~/.cache."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_DB_DIR = tempfile.mkdtemp(prefix="vaegmm-test-db-")
# set at import, before any test module runs: subprocesses (the CLI, the browser tests' server) inherit it
os.environ["VAEGMM_DB"] = str(Path(_DB_DIR) / "runs.db")
atexit.register(shutil.rmtree, _DB_DIR, True)


@pytest.fixture(scope="session")
def session_db() -> Path:
    """The session's results store (``$VAEGMM_DB``)."""
    return Path(os.environ["VAEGMM_DB"])
