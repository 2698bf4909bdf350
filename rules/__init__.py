"""The scan-selection decision engine, its guideline rule packs, and CDS Hooks.

Pure decision code: given a patient context it ranks imaging procedures,
runs the safety checks and explains itself. May import ``core`` and ``fhir``
(for the store and models); must not import Flask views of other packages or
``scanpath``. Nothing lives here yet: the engine is the subject of its own issue.
"""
