"""`node_bullmq`: the Node side of the interop tests, installed with npm from package-lock.json."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).with_name("node")


@pytest.fixture(scope="session")
def node_bullmq() -> Path:
    """tests/interop/node with `bullmq` installed (by the first test that needs it). Skipped, with the
    reason shown, where `node`/`npm` are absent."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node/npm not installed: Node BullMQ interoperability not tested here")
    if not (NODE_DIR / "node_modules" / "bullmq").exists():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--omit-lockfile-registry-resolved"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci failed in {NODE_DIR}:\n{result.stderr[-2000:]}")
    return NODE_DIR
