"""The application shell: the Flask app factory, the CLI, seeding and operations.

This is the top of the import graph: it wires ``fhir``, ``auth``, ``referral``,
``rules`` and ``imaging_core`` together and nothing imports it back.
"""

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
