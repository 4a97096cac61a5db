"""Hostile-input tests run on the same real app, Redis and databases as tests/api."""

from __future__ import annotations

from tests.api.conftest import api, api_settings, make_api

__all__ = ["api", "api_settings", "make_api"]
