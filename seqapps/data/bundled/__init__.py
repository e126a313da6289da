"""Package data: the bundled data files (see DATA.md).

A package only so that setuptools' `*.gz` package-data pattern ships the files.
"""
