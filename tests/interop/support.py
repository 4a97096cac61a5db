"""Running the Node scripts of tests/interop/node."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path


async def node(node_dir: Path, script: str, *args: str, timeout: float = 60) -> str:
    """The script's stdout; fails the test with its stderr when it exits non-zero."""
    proc = await asyncio.create_subprocess_exec(
        "node", script, *args, cwd=node_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()
