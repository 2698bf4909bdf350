"""Typed errors of the imaging analysis, raised where the problem is found.

They carry no HTTP meaning: the job layer records them as a failed analysis
with the message as its reason. Every one is a ``ValueError`` because each
says the *input* cannot be turned into the asked-for result.
"""

from __future__ import annotations


class ImagingError(ValueError):
    """Base of every error raised by the imaging analysis."""


class VolumeError(ImagingError):
    """The instances do not make one consistent, regularly sampled volume."""


class MixedSeriesError(VolumeError):
    """More than one series, orientation or frame of reference was given where one was expected."""


class PixelDataError(VolumeError):
    """Pixel data is missing or cannot be decoded (e.g. no handler for its transfer syntax)."""


class MeshError(ImagingError):
    """A surface mesh cannot be built or written."""
