"""The embedded imaging core: DICOM in, analysis jobs, results back as FHIR.

Analysis code here knows nothing about Flask. May import ``core`` and
``fhir``; must not import ``scanpath``. Nothing lives here yet: DICOM receive
and calcium scoring are the subject of their own issue.
"""
