"""Tests of the Azure Functions glue.

With `tests/` first on pytest's path this package is imported under the name `functions`,
shadowing the app's own `functions` package: the app's modules are looked up here too, from this
checkout (else an editable install elsewhere would answer for them).
"""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "functions"))
