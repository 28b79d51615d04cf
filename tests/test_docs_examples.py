"""Every configuration the documentation shows loads: whole files as they are, fragments inside a minimal file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from s3s3.config import Config

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```ini\n(.*?)^```", re.MULTILINE | re.DOTALL)
MINIMAL = "[source]\nbucket_name = a\n\n[dest1]\nbucket_name = b\n\n"


def examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for number, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8")), start=1):
            found.append((f"{page.relative_to(DOCS)}#{number}", match.group(1)))
    return found


def value_for(name: str, tmp_path: Path) -> str:
    """A value of the right shape for a ${NAME} an example uses."""
    if name.endswith("CA_BUNDLE"):
        (tmp_path / "ca.pem").write_text("")
        return str(tmp_path / "ca.pem")
    if name == "REDIS_URL":
        return "redis://127.0.0.1:6379/0"
    host = name.lower().replace("_", "-")  # each variable its own value: two sections never name one bucket
    return f"http://{host}.example:9000" if name.endswith("_URL") else host


@pytest.mark.parametrize(("where", "text"), examples(), ids=[where for where, _ in examples()])
def test_every_configuration_example_in_the_docs_loads(
    where: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the example, inside a minimal file when it shows a section or two
    for name in set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)):
        monkeypatch.setenv(name, value_for(name, tmp_path))
    for shown in set(re.findall(r"= (/etc/s3s3/\S+)", text)):  # the operator's files (a TLS certificate...): made here
        made = tmp_path / Path(shown).name
        made.write_text("")
        text = text.replace(shown, str(made))
    path = tmp_path / "s3s3.ini"
    path.write_text(text if "[source]" in text else MINIMAL + text)

    # When it is loaded, then it is valid
    config = Config.from_file(path)
    assert config.dests, where
