"""Shared infrastructure: settings, the database engine, typed errors and logging.

Everything else may import ``core``; ``core`` imports nothing of the project's.

The ``fhir.resources`` distribution installs a regular package named ``fhir``;
ScanPath's own ``fhir/`` package must live beside it. When the installed one
is imported first (a console script puts its own directory first on
``sys.path``), its ``__path__`` is extended here so that ``fhir.store`` and
friends still resolve. Entry points import ``core`` before anything else.
"""

import pkgutil

import fhir as _fhir

_fhir.__path__ = pkgutil.extend_path(_fhir.__path__, _fhir.__name__)
