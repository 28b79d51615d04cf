"""`python -m docs.gen` (`make reference`): write every generated reference file, remove stale ones."""

from __future__ import annotations

import sys

from docs.gen import ROOT, generate, stale


def main() -> int:
    files = generate()
    for name in stale(files):
        (ROOT / name).unlink()
        print(f"removed {name}")
    for name, text in sorted(files.items()):
        path = ROOT / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
