"""The unit tests on every Python s3s3 supports: `nox` (CI runs it; `make test` runs the whole suite on one).

The unit tests are those not marked slow or compat (they start no s3s3
process), less three that only repeat Python-independent work at length
(the signer's 10,000-example comparison with botocore, listings past a
thousand keys): `make test` runs those, and everything else, on the
virtualenv's Python. Interpreters are found on PATH, and in pyenv's versions
folder where pyenv keeps them.
"""

from __future__ import annotations

import glob
import os

import nox

PYTHONS = ["3.11", "3.12", "3.13"]  # setup.cfg's python_requires and classifiers say the same
UNITS = "not slow and not compat"
AT_LENGTH = "not 10000_generated_requests and not past_a_thousand and not a_thousand_keys"
nox.options.sessions = ["units"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

for _bin in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[1-3].*/bin"))):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


@nox.session(python=PYTHONS)
def units(session: nox.Session) -> None:
    """The unit tests, on one Python."""
    session.install("-q", "-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", UNITS, "-k", AT_LENGTH, "-q", *session.posargs)
