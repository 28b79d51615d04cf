"""The generated reference (command pages, the configuration reference, Redis keys, man pages, completion)
is what the code makes now.

Each file is regenerated in memory from s3s3/cli.py, setup.cfg,
s3s3/config/options.py and s3s3/names.py and compared with the committed
one: a changed option fails here, naming the file, until `make reference`
has been run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

import s3s3.config
from docs.gen import ROOT, commands, configuration, generate, stale
from s3s3 import cli
from s3s3.config import OPTIONS, Option, Section, Type


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate()


def test_every_generated_reference_file_is_committed_as_the_code_makes_it_now(generated: dict[str, str]) -> None:
    # Given what the generators make from the code now
    # When each is compared with the committed file
    differ = [name for name, text in sorted(generated.items())
              if not (ROOT / name).is_file() or (ROOT / name).read_text(encoding="utf-8") != text]  # fmt: skip

    # Then none differs
    assert not differ, f"stale or missing: {', '.join(differ)}; run `make reference` and commit the result"


def test_no_generated_folder_holds_a_file_the_generators_no_longer_make(generated: dict[str, str]) -> None:
    assert not stale(generated), f"left over: {', '.join(stale(generated))}; run `make reference` to remove them"


def test_there_is_a_page_for_every_command_and_console_script(generated: dict[str, str]) -> None:
    pages = {name.rsplit("/", 1)[1] for name in generated if name.startswith("docs/reference/commands/")}
    assert {"s3s3.md", "s3s3listen.md", "s3s3bucket.md", "s3s3-publish.md", "s3s3-status.md",
            "echo_s3s3_ini_template.md", "echo_s3s3_supervisord_conf.md"} <= pages  # fmt: skip
    bucket = generated["docs/reference/commands/s3s3bucket.md"]
    assert "| `--abort-incomplete-uploads AGE` |" in bucket and "`s3s3 bucket`" in bucket


def test_an_option_added_to_the_parser_changes_the_generated_files(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the parser with one more option on the bucket sync
    real = cli._parser

    def parser_with_one_more() -> argparse.ArgumentParser:
        parser = real()
        bucket = next(c for c in commands._subparsers(parser).choices.values() if c.prog.endswith("bucket"))
        bucket.add_argument("--brand-new", action="store_true", help="an option nobody documented")
        return parser

    monkeypatch.setattr(cli, "_parser", parser_with_one_more)

    # When the reference is generated again
    files = generate()

    # Then the bucket sync's page, man page and completion differ from the committed ones
    changed = {name for name, text in files.items() if (ROOT / name).read_text(encoding="utf-8") != text}
    assert {"docs/reference/commands/s3s3bucket.md", "deploy/man/s3s3bucket.1", "deploy/completion/bash/s3s3",
            "deploy/completion/bash/s3s3bucket", "deploy/completion/zsh/_s3s3bucket"} <= changed  # fmt: skip


def test_every_option_of_the_bucket_sync_is_in_its_man_page_and_its_completion(generated: dict[str, str]) -> None:
    bucket = next(c for c in commands.cli_commands() if c.page == "s3s3bucket").parser
    flags = [f for a in bucket._actions for f in a.option_strings if f.startswith("--")]
    man = generated["deploy/man/s3s3bucket.1"]
    for name in ("deploy/completion/bash/s3s3bucket", "deploy/completion/zsh/_s3s3bucket"):
        assert all(flag in generated[name] for flag in flags), name
    assert all(flag.replace("-", "\\-") in man for flag in flags)


def test_a_configuration_option_added_to_the_table_changes_the_reference_and_the_man_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one more option in the table the configuration is read by
    brand_new = Option(Section.PUBSUB, "brand_new", Type.INT, 7, "an option nobody documented", low=1, high=9)
    monkeypatch.setattr(s3s3.config, "OPTIONS", (*OPTIONS, brand_new))

    # When the reference is generated again
    files = generate()

    # Then the configuration reference and s3s3.ini(5) differ from the committed ones, and show it
    changed = {name for name, text in files.items() if (ROOT / name).read_text(encoding="utf-8") != text}
    assert changed == {configuration.PAGE, configuration.MAN_PAGE}
    assert ("| `brand_new` | whole number | `7` | a whole number in 1..9 | an option nobody documented |"
            in files[configuration.PAGE])  # fmt: skip
    man = "\\fBbrand_new\\fR = \\fIwhole number\\fR\nan option nobody documented. A whole number in 1..9; default 7."
    assert man in files[configuration.MAN_PAGE]


def test_every_option_is_in_the_configuration_reference_under_its_section_and_in_the_man_page(
    generated: dict[str, str],
) -> None:
    page, man = generated[configuration.PAGE], generated[configuration.MAN_PAGE]
    sections = page.split("\n## ")
    for option in OPTIONS:
        anchor = configuration.SECTIONS[option.section][1]
        [section] = [s for s in sections if s.split("\n", 1)[0].endswith(f"{{#{anchor}}}")]
        assert f"\n| `{option.name}` | {option.type} | " in section, option.name
        assert f"\\fB{option.name}\\fR = " in man, option.name


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", ["s3s3.1", "s3s3listen.1", "s3s3bucket.1", "s3s3.ini.5"])
def test_the_man_pages_render_without_a_warning(page: str) -> None:
    rendered = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(ROOT / "deploy" / "man" / page)],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    assert (rendered.returncode, rendered.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_completion_completes_a_subcommand_and_an_option() -> None:
    script = f"""
        source {ROOT}/deploy/completion/bash/s3s3
        COMP_WORDS=(s3s3 bucket --dry); COMP_CWORD=2; COMP_LINE="s3s3 bucket --dry"; COMP_POINT=${{#COMP_LINE}}
        _shtab_s3s3; echo "${{COMPREPLY[@]}}"
        COMP_WORDS=(s3s3 retr); COMP_CWORD=1; COMP_LINE="s3s3 retr"; COMP_POINT=${{#COMP_LINE}}
        _shtab_s3s3; echo "${{COMPREPLY[@]}}"
    """
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.split("\n")[:2] == ["--dry-run", "retry-failed"], done.stdout + done.stderr
