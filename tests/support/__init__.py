"""Test helpers, importable as ``support.*`` (``pythonpath = tests`` in pyproject): tiny LVIS data, tiny runs, output checks."""
