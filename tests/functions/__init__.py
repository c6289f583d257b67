"""Tests of the Function App's functions.

Under pytest this package is imported as `functions` (its parent, `tests/`, goes first on the
path), shadowing the real `functions` package; the real one's folder is added to this package's
path so `functions.<module>` is the repository's own module, whichever way the project is installed.
"""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "functions"))
