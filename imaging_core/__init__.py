"""The embedded imaging core: DICOM in, analysis jobs, results back as FHIR.

Analysis code here knows nothing about Flask. May import ``core`` and
``fhir``; must not import ``scanpath``. The pure analysis modules import
nothing of the project's at all:

- ``volume``: DICOM instances to a HU volume with patient geometry and QA;
- ``calcium``: Agatston, volume and mass scores, lesion count, CAC-DRS, QA gate;
- ``mesh``: lesion surfaces as binary glTF (GLB) in patient millimetres;
- ``keyimages``: PNG key images (axial slices with overlay, MIP);
- ``errors``: their typed errors.
"""
