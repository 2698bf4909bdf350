"""Coronary CT angiography (CTCA) analysis: the coronary tree, its narrowings, FFR-CT.

Pure analysis, like ``imaging_core.anatomy``: numpy, scipy, scikit-image and
skan only, no Flask, no database, no FHIR. May import ``imaging_core.volume``
and ``imaging_core.anatomy`` (the aorta and its root), and nothing else of the
project's. The modules, in the order the pipeline runs them:

- ``tree``: the shapes every step passes on (segments of the coronary tree,
  profiles along their centrelines, lesions, stent suggestions, FFR-CT);
- ``qa``: is the study a CTCA that can be analysed (contrast in the root,
  thin slices, coverage from the root to the apex)?
- ``lumen``: ostia, the contrast-filled lumen grown from them, centrelines
  and the vessel graph with LM, LAD, LCX and RCA labelled (its steps in
  ``ostia``: aorta, root, blood pool, ostia; and ``centrelines``: skeleton,
  graph, labels);
- ``measure``: lumen area and diameter in planes perpendicular to each
  centreline, reference diameters, stenoses, lesions and their plaque;
- ``flow``: a one-dimensional reduced-order model of hyperaemic flow giving
  FFR-CT along the tree;
- ``stents``: a stent size and position for each lesion of 50 % or more;
- ``cadrads``: the CAD-RADS 2.0 category of the study (Cury 2022);
- ``pipeline``: all of the above in order, with each step's time;
- ``straightened``: sampling the CT along a centreline (curved planar
  reformation) and the rotation-minimising frames the views and tubes use.

FHIR, DICOM SR, the GLB model and the straightened views' PNG are made from
the pipeline's result in ``imaging_core`` (results out: ``ctca_results``,
``ctca_reports``, ``ctca_media``), not here.
"""
