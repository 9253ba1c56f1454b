import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from databases import DATABASES  # noqa: E402

MODES = {'hp': True, 'hf': False}


@pytest.fixture(params=sorted(DATABASES))
def database(request, tmp_path):
    db = DATABASES[request.param](str(tmp_path))
    if db.skip_reason:
        pytest.skip(db.skip_reason)
    return db


@pytest.fixture(params=sorted(MODES))
def keep_history(request):
    return MODES[request.param]
