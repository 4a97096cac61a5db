"""The package's shape is a contract too: imports go one way (down the floors declared in pyproject.toml's
`[tool.importlinter]`), and an import hidden inside a function needs a reason written here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "envoi"

#: (file relative to src/envoi, imported module) -> why it is imported inside a function.
FUNCTION_LEVEL_IMPORTS: dict[tuple[str, str], str] = {
    ("cli/serve.py", "uvicorn"): "only `envoi api` serves HTTP",
    ("cli/serve.py", "envoi.api.app"): (
        "FastAPI and every route: +16 MB and +0.5 s at start-up for a worker that never serves HTTP "
        "(`/usr/bin/time python -c 'import envoi.worker, envoi.runtime'` 85 MB, with envoi.api.app 101 MB)"
    ),
}


def function_level_imports() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    modules = ["." * node.level + (node.module or "")]
                else:
                    continue
                found.update((str(path.relative_to(SRC)), module) for module in modules)
    return found


def test_imports_follow_the_floors_with_no_cycle() -> None:
    """`lint-imports` checks the layers contract; a cycle always breaks a layer, so it fails too."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=SRC.parents[1], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_level_import_has_a_written_reason() -> None:
    found = function_level_imports()
    unexplained = sorted(found - FUNCTION_LEVEL_IMPORTS.keys())
    stale = sorted(FUNCTION_LEVEL_IMPORTS.keys() - found)
    assert not unexplained, f"imports inside functions without a reason in this test: {unexplained}"
    assert not stale, f"reasons for imports that no longer exist: {stale}"
