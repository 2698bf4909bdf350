"""Typed errors of the imaging core, raised where the problem is found.

They carry no HTTP meaning. The job layer records analysis errors as a failed
analysis with the message as its reason; the DICOM listener and STOW-RS
answer storage errors with their DICOM ``status``. Every one is a
``ValueError`` because each says the *input* cannot be turned into the
asked-for result (``OutOfResources`` excepted: it says "not now").
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


class SegmentationError(ImagingError):
    """An anatomy step found nothing it could trust; ``anatomy.segment`` records it as missing."""


# --- DICOM in: instances refused before anything of them is kept ----------------

class StorageError(ImagingError):
    """An instance was refused or could not be kept; nothing of it was committed.

    ``status`` is the DICOM status that answers it. C-STORE (PS3.4 B.2.3,
    PS3.7 C.4.2.1.4) and STOW-RS (Failure Reason (0008,1197), PS3.18 I.2.2)
    share these codes, so one error answers both. The UIDs are those of the
    refused instance when it could be read far enough to know them.
    """

    status = 0xC000  # Error: Cannot understand

    def __init__(self, message: str, *, sop_class_uid: str | None = None,
                 sop_instance_uid: str | None = None) -> None:
        super().__init__(message)
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


class MalformedInstance(StorageError):
    """Not DICOM, not Part 10, truncated, or lacking the identifying UIDs."""


class DatasetMismatch(StorageError):
    """The data set contradicts its own header or its SOP Class (e.g. no Pixel Data)."""

    status = 0xA900  # Error: Data Set does not match SOP Class


class UnsupportedSopClass(StorageError):
    """A SOP Class this store does not keep."""

    status = 0x0122  # Refused: SOP Class not supported


class UnsupportedTransferSyntax(StorageError):
    """A transfer syntax the analysis could not read."""

    status = 0xC122  # Referenced Transfer Syntax not supported (PS3.18 I.2.2)


class StudyMismatch(StorageError):
    """STOW-RS to ``/studies/{study}`` with an instance of another study (PS3.18 10.5.3).

    0xC409 lies in the "Cannot understand" range; it is the code dcm4chee-arc
    uses for the same condition, so RIS/PACS operators will recognise it.
    """

    status = 0xC409


class InstanceConflict(StorageError):
    """The SOP Instance UID is already stored in another study or series.

    A UID names one instance for ever (PS3.5 9.1); a clash means a broken
    sender or a UID collision, which a person must resolve, not the store.
    """


class OutOfResources(StorageError):
    """The disk or the database could not take the instance now; the sender may retry."""

    status = 0xA700  # Refused: Out of Resources


class ProcessingFailure(StorageError):
    """A fault of our own while storing; logged with its traceback where it happened."""

    status = 0x0110  # Processing failure (PS3.7 C.4.2.1.4; PS3.18 I.2.2)


class ReportError(ImagingError):
    """The source instances, volume and result do not describe the same series."""
