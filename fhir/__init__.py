"""The FHIR R4 REST layer, the versioned resource store and search.

``registry`` declares each served type, its interactions and search
parameters; routes, indexing and the CapabilityStatement are all built from
it. ``store`` persists resources (JSON plus version history plus search index
rows) through one SQLModel session. ``api`` is the Flask blueprint at ``/fhir``.

May import ``core`` and ``auth``; must not import ``referral``, ``rules``,
``imaging_core`` or ``scanpath`` (those register hooks with the store instead).

The ``fhir.resources`` distribution ships a regular package also named
``fhir``; ``extend_path`` below lets ``fhir.resources`` resolve when this
package is imported first (see ``core/__init__.py`` for the other order).
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
