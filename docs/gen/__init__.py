"""The reference that is generated, never edited: command pages, the configuration reference, Redis keys,
man pages, shell completion.

`generate()` returns every generated file's text by its path from the
repository root; `python -m docs.gen` (`make reference`) writes them, and
tests/test_docs_reference.py fails when a committed file differs from what
the code makes now.
"""

from __future__ import annotations

from pathlib import Path

import s3s3.config
from docs.gen import commands, completion, configuration, manpages, redis_keys

ROOT = Path(__file__).resolve().parents[2]
# Folders whose every file is generated: a file there that generate() no longer makes is stale.
GENERATED_DIRS = ("docs/reference/commands", "deploy/man", "deploy/completion/bash", "deploy/completion/zsh")


def generate() -> dict[str, str]:
    """Every generated file's text, by its path from the repository root."""
    found = commands.cli_commands()
    files: dict[str, str] = {}
    files.update(commands.pages(found))
    files.update(manpages.pages(found))
    files.update(completion.scripts(found))
    files.update(configuration.files(s3s3.config.OPTIONS))
    files["docs/reference/redis-keys.md"] = redis_keys.page(ROOT / "s3s3" / "names.py")
    return files


def stale(files: dict[str, str]) -> list[str]:
    """Files in the generated folders that `files` does not hold (a command that is gone)."""
    return sorted(
        str(path.relative_to(ROOT))
        for folder in GENERATED_DIRS
        if (ROOT / folder).is_dir()
        for path in (ROOT / folder).iterdir()
        if path.is_file() and str(path.relative_to(ROOT)) not in files
    )
