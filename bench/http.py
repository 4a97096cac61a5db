"""`python bench/http.py`: the HTTP endpoint's benchmark, queued against synchronous (`api_load.py`).

Run from this folder, a file named `http.py` shadows the standard library's `http` package for every
script beside it (httpx, uvicorn and prometheus_client import `http.server`): imported under that name,
this module loads the standard library's package in its place.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path

if __name__ == "__main__":
    from api_load import main

    main()
else:
    _package = Path(sysconfig.get_paths()["stdlib"]) / "http"
    _spec = importlib.util.spec_from_file_location(
        "http", _package / "__init__.py", submodule_search_locations=[str(_package)]
    )
    assert _spec is not None and _spec.loader is not None
    _stdlib_http = importlib.util.module_from_spec(_spec)
    sys.modules["http"] = _stdlib_http  # the import system returns what sys.modules holds after this runs
    _spec.loader.exec_module(_stdlib_http)
