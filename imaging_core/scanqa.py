"""The image QA gate for coronary calcium scoring: judge the image, not only the tags.

``calcium.protocol_refusal`` checks what the tags and the slice geometry
promise (modality, a ContrastBolusAgent tag, 120 kVp, slice thickness and
increment 2.5-3.0 mm, gaps). :func:`image_qa` checks what the pixels and the
segmented anatomy (:class:`imaging_core.anatomy.Anatomy`) show, and the
acquisition tags the protocol gate does not read. Each rule is one function
below with its constants and their sources; each gives either a **refusal**
(the volume is "not scorable", with the reason) or a **caveat** (scored, the
caveat reported beside the score), never silence:

=====================  ==============================  ==============================
rule                   refusal                         caveat
=====================  ==============================  ==============================
contrast (blood)       median HU > CONTRAST_HU in the  median between HIGH_BLOOD_HU
                       eroded blood pool or interior   and CONTRAST_HU; nothing to
                       of the aorta or the heart       measure: "not checked"; no
                       (whatever the tags say)         blood pool: "interior only"
iodine (no anatomy)    a large bright region without
                       cortex (IODINE_*, CORTEX_*)
metal                  metal within METAL_NEAR_HEART   metal farther away
                       _MM of the heart, its dark
                       streaks across the heart, or
                       metal with no heart to measure
gantry tilt            GantryDetectorTilt non-zero,
                       or the loader's shear QA
field of view          the heart touches padding, the  heart not found: "not checked"
                       circle of Reconstruction
                       Diameter, the image edge, the
                       first or last slice
kernel                 a known sharp kernel            unknown or unrecorded kernel
=====================  ==============================  ==============================

A failed anatomy step (a mask named in ``Anatomy.missing``, or empty) is
never a pass: the rule that needed it says it could not be checked.
Caveats are ``"code: message"`` strings (codes are the ``QA_*`` constants),
like ``Volume.qa``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from imaging_core.anatomy import Anatomy, bounding_box
from imaging_core.calcium import MCCOLLOUGH_2007
from imaging_core.volume import QA_SHEAR, Volume

# --- contrast in the blood pool ---------------------------------------------------
# Unenhanced blood is about 30-50 HU, rising with haematocrit: HU tables give 30-45 HU
# and 45-65 HU (the latter after Buzug TM. Computed Tomography. Springer 2008, p.475),
# and in vivo attenuation tracks haemoglobin (Di Giandomenico E et al. 1993, PubMed
# 8516469). Coronary CT angiography aims for at least 250 HU in the lumen (Abbara S et
# al. SCCT guidelines for the performance and acquisition of coronary CT angiography.
# J Cardiovasc Comput Tomogr 2016;10:435-449; figure as recalled, unverified here).
# 100 HU sits well above any unenhanced blood and well below a diagnostic bolus: a
# median above it is iodine. Project choice between the two.
CONTRAST_HU = 100.0
# Above this the pool is dense for unenhanced blood (haemoconcentration, or dilute
# contrast): scored, with a caveat. Top of the 45-65 HU table range plus a 5 HU margin.
HIGH_BLOOD_HU = 70.0
# The pool is eroded in-plane by this much before measuring, so partial volume with
# the wall, wall calcium and myocardium does not bias the median (project choice:
# about four pixels at 0.7 mm).
BLOOD_POOL_EROSION_MM = 3.0
# Less eroded pool than this (1 mL) is too little to measure honestly (project choice).
BLOOD_POOL_MIN_MM3 = 1000.0
# Fat is left out of a structure's interior: the upper end of the -190 to -30 HU fat
# window of CT fat quantification (e.g. epicardial fat volume); unverified as a citation.
FAT_MAX_HU = -30.0

# A backstop that needs no anatomy: a segmentation tuned to unenhanced CT may take
# iodinated blood for bone, or place the heart elsewhere, and then the medians above
# never see it. Bone's bright interior sits inside a cortex (dense bone, tabulated to
# +1000 HU and more), iodinated blood inside soft tissue. So a connected region of
# IODINE_MIN_HU or more (below METAL_HU), of at least IODINE_MIN_ML, with under
# CORTEX_FRACTION of its voxels at CORTEX_HU or more and a median of at least
# IODINE_MEDIAN_HU, is taken as iodinated blood. Project heuristic, unverified: a
# large osteoporotic bone fragment with no dense cortex could trip it.
IODINE_MIN_HU = 150.0
IODINE_MEDIAN_HU = 200.0
IODINE_MIN_ML = 20.0
CORTEX_HU = 600.0
CORTEX_FRACTION = 0.01

# --- metal -----------------------------------------------------------------------
# Cortical bone is tabulated at up to about +1000 HU, dense bone up to about +2000 HU
# at 120 kVp (HU tables; Buzug 2008 gives bone as 700-3000 HU, the range of the scale
# rather than of tissue). Metal is taken as 2500 HU or more, a margin above dense bone
# and below the +3071 HU ceiling where 12-bit reconstructions clip metal. Unverified:
# no public source states this exact cut-off.
METAL_HU = 2500.0
# A metal object smaller than this is treated as a noise spike (project choice: two
# voxels of 0.5 x 0.5 x 3 mm make 1.5 mm^3).
METAL_MIN_MM3 = 1.0
# Metal within this distance of the heart (pericardium) puts its streaks on the
# coronary arteries, which run on the heart's surface: refusal. Project choice,
# unverified; the streak test below catches farther metal whose streaks still cross.
METAL_NEAR_HEART_MM = 20.0
# Dark streaks: nothing inside the pericardium is darker than fat (-50 to -100 HU,
# Buzug 2008), so heart voxels below -300 HU on a slice with metal are photon
# starvation streaks. More than this fraction of the eroded heart is a refusal.
STREAK_DARK_HU = -300.0
STREAK_FRACTION = 0.005

# --- gantry tilt -----------------------------------------------------------------
# Agatston 1990 and the multidetector protocol (McCollough 2007) score axial slices
# perpendicular to the table; a tilted slice cuts each lesion obliquely, changing its
# areas and the slices it spans. Any tilt beyond rounding is refused.
TILT_TOLERANCE_DEG = 0.05

# --- reconstruction kernel -------------------------------------------------------
# The standard calcium-scoring kernels: GE "STANDARD", Philips "B", Siemens "B35f" and
# Toshiba "FC12" from the multi-manufacturer protocol (McCollough 2007; the list as
# widely quoted from its protocol table, unverified against the paper here), and
# Siemens "Qr36" on third-generation scanners (Booij R et al. Eur Radiol 2020,
# doi:10.1007/s00330-020-06709-9: "the standard reconstruction technique (kernel
# Qr36)"). A Siemens kernel's sharpness is its number; the letters round it name the
# family and reconstruction mode (B35f, Qr36d), so only the stem is matched.
STANDARD_KERNELS = {
    "GE": re.compile(r"^STANDARD$"),
    "PHILIPS": re.compile(r"^B$"),
    "SIEMENS": re.compile(r"^(B35|QR36)[A-Z]?$"),
    "TOSHIBA": re.compile(r"^FC12$"),
}
# Known sharp (bone, lung, edge) kernels by each vendor's naming convention: they
# raise noise and peak HU, so noise crosses 130 HU and lesions change weight.
# Unverified: read from vendor naming, not from a published table.
SHARP_KERNELS = {
    "GE": re.compile(r"^(BONE|BONEPLUS|LUNG|EDGE|SHARP|DETAIL|CHEST)$"),
    "PHILIPS": re.compile(r"^(D|E|L)$"),
    "SIEMENS": re.compile(r"^[A-Z][A-Z]?(5[0-9]|[6-9][0-9])[A-Z]?$"),  # B60f, Br64, I70f
    "TOSHIBA": re.compile(r"^FC(3[0-9]|5[0-9]|8[0-9])$"),  # bone FC3x, lung FC5x, FC8x
}
# Manufacturer (0008,0070) spellings mapped to the vendor keys above ("GE" as a word;
# Canon writes "CANON_MEC").
VENDORS = ((re.compile(r"(^|[^A-Z])GE([^A-Z]|$)"), "GE"), (re.compile("PHILIPS"), "PHILIPS"),
           (re.compile("SIEMENS"), "SIEMENS"), (re.compile("TOSHIBA"), "TOSHIBA"),
           (re.compile("CANON"), "TOSHIBA"))

SOURCES = {
    "contrast": "Buzug 2008 (unenhanced blood); Abbara 2016 (SCCT CCTA enhancement)",
    "iodine": "project heuristic: bone's bright interior has a cortex, blood has none; "
              "unverified",
    "metal": "project choice above dense cortical bone; unverified",
    "gantry_tilt": MCCOLLOUGH_2007 + " (axial protocol)",
    "kernel": MCCOLLOUGH_2007 + " and Booij 2020 (standard kernels, unverified against "
              "McCollough's table); sharp kernels unverified",
    "field_of_view": "project rule: calcium outside the field of view cannot be counted",
}

QA_CONTRAST_UNCHECKED = "contrast-not-checked"
QA_POOL_MISSING = "blood-pool-not-found"
QA_BLOOD_DENSE = "blood-pool-dense"
QA_METAL_FAR = "metal-away-from-heart"
QA_FOV_UNCHECKED = "field-of-view-not-checked"
QA_KERNEL_UNKNOWN = "kernel-unknown"


@dataclass
class ImageQA:
    """The gate's verdict on one volume.

    ``refusal`` is the reason the volume is not scorable (the first rule that
    refused), or None; ``caveats`` go beside a score (``"code: message"``);
    ``measured`` holds what the rules measured (HU, mm, degrees; None where a
    measurement could not be made), for the record.
    """

    refusal: str | None
    caveats: list[str] = field(default_factory=list)
    measured: dict[str, float | None] = field(default_factory=dict)

    @property
    def scorable(self) -> bool:
        return self.refusal is None


@dataclass
class _Finding:
    refusal: str | None = None
    caveats: list[str] = field(default_factory=list)
    measured: dict[str, float | None] = field(default_factory=dict)


def image_qa(volume: Volume, anatomy: Anatomy) -> ImageQA:
    """Judge whether ``volume`` can be calcium-scored, from its pixels and anatomy.

    Parameters
    ----------
    volume : Volume
        HU on a (z, y, x) grid, padding already air (``imaging_core.volume``).
    anatomy : Anatomy
        Masks shaped like ``volume.hu``; ``missing`` names what was not found.

    Returns
    -------
    ImageQA with the first refusal in rule order (contrast, iodine without
    anatomy, metal, gantry tilt, field of view, kernel), every caveat, and the
    measurements. Rules and thresholds: module docstring and constants.

    Raises
    ------
    ValueError
        An anatomy mask not shaped like the volume.
    """
    _check_shapes(volume, anatomy)
    findings = [contrast_rule(volume, anatomy), iodine_rule(volume), metal_rule(volume, anatomy),
                tilt_rule(volume), field_of_view_rule(volume, anatomy), kernel_rule(volume)]
    refusals = [f.refusal for f in findings if f.refusal is not None]
    return ImageQA(refusal=refusals[0] if refusals else None,
                   caveats=[c for f in findings for c in f.caveats],
                   measured={k: v for f in findings for k, v in f.measured.items()})


def _check_shapes(volume: Volume, anatomy: Anatomy) -> None:
    for name in ("body", "lungs", "bone", "aorta", "aortic_root", "heart", "epicardial_fat",
                 "blood_pool"):
        mask = getattr(anatomy, name)
        if mask.shape != volume.shape:
            raise ValueError(f"anatomy mask {name} is {mask.shape}, the volume {volume.shape}")


def _found(anatomy: Anatomy, name: str) -> np.ndarray | None:
    """The mask, or None when the step failed (``missing`` holds ``name`` or a
    ``"name: why"`` line) or found nothing."""
    mask: np.ndarray = getattr(anatomy, name)
    failed = any(item == name or item.startswith(f"{name}:") for item in anatomy.missing)
    return None if failed or not mask.any() else mask


def contrast_rule(volume: Volume, anatomy: Anatomy) -> _Finding:
    """Contrast in the blood: median HU in the aorta and in the heart, two ways each.

    In each of the aorta and the heart, the median (robust to calcium and
    streaks) is taken over (1) the blood pool, eroded in-plane by
    BLOOD_POOL_EROSION_MM, and (2) the structure's interior, eroded the same
    way, fat (FAT_MAX_HU or below) left out: a segmentation tuned to
    unenhanced blood may leave iodinated blood out of its blood pool, and
    measuring only there would hide the contrast sought. Padding is never
    measured; a part needs BLOOD_POOL_MIN_MM3. Any median above CONTRAST_HU
    refuses; above HIGH_BLOOD_HU is a caveat; a structure with nothing to
    measure is a caveat, never a pass.
    """
    pool = _found(anatomy, "blood_pool")
    regions = {where: _found(anatomy, where) for where in ("aorta", "heart")}
    out = _Finding(measured={f"{kind}_{where}_hu": None for kind in ("blood_pool", "interior")
                             for where in regions})
    present = [mask for mask in (pool, *regions.values()) if mask is not None]
    if not present:
        out.caveats.append(f"{QA_CONTRAST_UNCHECKED}: neither the blood pool, the aorta nor "
                           "the heart was found, so contrast could not be checked")
        return out
    if pool is None:
        out.caveats.append(f"{QA_POOL_MISSING}: the blood pool was not found; contrast was "
                           "measured in the interior of the aorta and the heart only")
    box = bounding_box(np.logical_or.reduce(present))
    samples = _contrast_samples(volume, box, pool, [m for m in regions.values() if m is not None])
    for where, region in regions.items():
        _judge_contrast(out, where, region, samples, volume, box)
    return out


def _contrast_samples(volume: Volume, box: tuple[slice, slice, slice], pool: np.ndarray | None,
                      regions: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Eroded blood pool and eroded non-fat interior of the structures, within ``box``."""
    usable = ~volume.padding[box]
    out = {"interior": _eroded_in_plane(np.logical_or.reduce([r[box] for r in regions]),
                                        volume.spacing, BLOOD_POOL_EROSION_MM)
           & usable & (volume.hu[box] > FAT_MAX_HU)}
    if pool is not None:
        out["blood_pool"] = _eroded_in_plane(pool[box], volume.spacing,
                                             BLOOD_POOL_EROSION_MM) & usable
    return out


def _judge_contrast(out: _Finding, where: str, region: np.ndarray | None,
                    samples: dict[str, np.ndarray], volume: Volume,
                    box: tuple[slice, slice, slice]) -> None:
    if region is None:
        out.caveats.append(f"{QA_CONTRAST_UNCHECKED}: the {where} was not found, so contrast "
                           "in it could not be checked")
        return
    hu = volume.hu[box]
    medians = {kind: _median(hu, sample & region[box], volume.spacing)
               for kind, sample in samples.items()}
    out.measured.update({f"{kind}_{where}_hu": value for kind, value in medians.items()})
    known = {kind: value for kind, value in medians.items() if value is not None}
    if not known:
        out.caveats.append(f"{QA_CONTRAST_UNCHECKED}: too little blood in the {where} to "
                           f"measure (under {BLOOD_POOL_MIN_MM3:g} mm^3 after erosion)")
        return
    kind, worst = max(known.items(), key=lambda item: item[1])
    what = f"median {worst:.0f} HU in the {where}'s {kind.replace('_', ' ')}"
    if worst > CONTRAST_HU:
        out.refusal = out.refusal or (
            f"contrast in the blood: {what} (unenhanced blood is about 30-50 HU; over "
            f"{CONTRAST_HU:g} HU is iodine), whatever the ContrastBolusAgent tag says")
    elif worst > HIGH_BLOOD_HU:
        out.caveats.append(f"{QA_BLOOD_DENSE}: {what} is dense for unenhanced blood "
                           "(haemoconcentration or dilute contrast)")


def iodine_rule(volume: Volume) -> _Finding:
    """Iodinated blood seen without anatomy: a large bright region with no cortex.

    Connected regions (6-connectivity, every second row and column) of
    IODINE_MIN_HU to METAL_HU; one of IODINE_MIN_ML or more whose voxels are
    under CORTEX_FRACTION at CORTEX_HU or more and whose median is at least
    IODINE_MEDIAN_HU refuses. The largest such region is recorded.
    """
    hu = volume.hu[:, ::2, ::2]
    bright = (hu >= IODINE_MIN_HU) & (hu < METAL_HU)
    labels, count = ndimage.label(bright)
    out = _Finding(measured={"cortex_free_bright_ml": 0.0})
    if count == 0:
        return out
    flat, values = labels[bright], hu[bright]
    voxel_ml = volume.spacing[0] * 2 * volume.spacing[1] * 2 * volume.spacing[2] / 1000.0
    voxels = np.bincount(flat, minlength=count + 1)
    cortex = np.bincount(flat, weights=values >= CORTEX_HU, minlength=count + 1)
    suspects = np.flatnonzero((voxels * voxel_ml >= IODINE_MIN_ML)
                              & (cortex < CORTEX_FRACTION * voxels))
    for label in suspects[np.argsort(-voxels[suspects])]:
        median = float(np.median(values[flat == label]))
        if median >= IODINE_MEDIAN_HU:
            size = float(voxels[label] * voxel_ml)
            out.measured["cortex_free_bright_ml"] = size
            out.refusal = (f"contrast: a bright region of {size:.0f} mL at median {median:.0f} "
                           "HU with no cortical bone in it, i.e. iodinated blood, whatever the "
                           "ContrastBolusAgent tag and the anatomy say")
            break
    return out


def _median(hu: np.ndarray, where: np.ndarray, spacing: tuple[float, float, float]
            ) -> float | None:
    """Median HU over ``where``, or None when it holds under BLOOD_POOL_MIN_MM3."""
    if where.sum() * float(np.prod(spacing)) < BLOOD_POOL_MIN_MM3:
        return None
    return float(np.median(hu[where]))


def _eroded_in_plane(mask: np.ndarray, spacing: tuple[float, float, float],
                     margin_mm: float) -> np.ndarray:
    """Voxels of ``mask`` more than ``margin_mm`` from its edge within their own slice.

    Each slice's own 2-D distance transform (slices are 2.5-3 mm thick: a 3-D
    erosion would strip whole slices); the image edge counts as an edge.
    """
    out = np.zeros_like(mask)
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        box = bounding_box(mask[k][None])[1:]
        padded = np.pad(mask[k][box], 1)
        distance = ndimage.distance_transform_edt(padded, sampling=spacing[1:])
        out[k][box] = np.asarray(distance)[1:-1, 1:-1] > margin_mm
    return out


def metal_rule(volume: Volume, anatomy: Anatomy) -> _Finding:
    """Metal (>= METAL_HU, objects of METAL_MIN_MM3 or more) and its streaks.

    Refusal when metal lies within METAL_NEAR_HEART_MM of the heart, when
    slices with metal show dark streaks (< STREAK_DARK_HU) over more than
    STREAK_FRACTION of the eroded heart, or when there is metal and no heart
    to measure from; metal farther away without streaks is a caveat.
    """
    metal = _metal(volume)
    out = _Finding(measured={"metal_mm3": float(metal.sum() * np.prod(volume.spacing)),
                             "metal_to_heart_mm": None, "heart_streak_fraction": None})
    if not metal.any():
        return out
    heart = _found(anatomy, "heart")
    if heart is None:
        out.refusal = ("metal in the field of view and the heart was not found, so its "
                       "distance from the coronary arteries could not be judged")
        return out
    distance = _distance_to(heart, metal, volume.spacing, METAL_NEAR_HEART_MM)
    out.measured["metal_to_heart_mm"] = distance
    streaks = _streak_fraction(volume, heart, metal)
    out.measured["heart_streak_fraction"] = streaks
    if distance is not None and distance <= METAL_NEAR_HEART_MM:
        out.refusal = (f"metal ({METAL_HU:g} HU or more) {distance:.0f} mm from the heart: "
                       f"its streaks fall on the coronary arteries (limit "
                       f"{METAL_NEAR_HEART_MM:g} mm)")
    elif streaks > STREAK_FRACTION:
        out.refusal = (f"metal streaks cross the heart: {100 * streaks:.1f} % of the heart on "
                       f"the metal's slices is darker than {STREAK_DARK_HU:g} HU")
    else:
        far = "more than" if distance is None else f"{distance:.0f} mm,"
        out.caveats.append(f"{QA_METAL_FAR}: metal {far} {METAL_NEAR_HEART_MM:g} mm from the "
                           "heart, no streaks across it")
    return out


def _metal(volume: Volume) -> np.ndarray:
    """Metal voxels: at or above METAL_HU, in objects of at least METAL_MIN_MM3."""
    metal = volume.hu >= METAL_HU
    if not metal.any():
        return metal
    labels, count = ndimage.label(metal, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1) * float(np.prod(volume.spacing))
    keep = sizes >= METAL_MIN_MM3
    keep[0] = False
    return np.asarray(keep[labels])


def _distance_to(target: np.ndarray, points: np.ndarray, spacing: tuple[float, float, float],
                 reach_mm: float) -> float | None:
    """Shortest distance in mm from ``points`` to ``target``; None when beyond ``reach_mm``.

    Computed in the box around ``target`` grown by ``reach_mm``, so the cost
    does not grow with the field of view.
    """
    margin = tuple(int(np.ceil(reach_mm / s)) + 1 for s in spacing)
    box = bounding_box(target, (margin[0], margin[1], margin[2]))
    inside = points[box]
    if not inside.any():
        return None
    distance = ndimage.distance_transform_edt(~target[box], sampling=spacing)
    nearest = float(np.asarray(distance)[inside].min())
    return nearest if nearest <= reach_mm else None


def _streak_fraction(volume: Volume, heart: np.ndarray, metal: np.ndarray) -> float:
    """Share of the eroded heart, on slices holding metal, darker than STREAK_DARK_HU."""
    slices = metal.any(axis=(1, 2)) & heart.any(axis=(1, 2))
    if not slices.any():
        return 0.0
    core = _eroded_in_plane(heart[slices], volume.spacing, BLOOD_POOL_EROSION_MM)
    if not core.any():
        return 0.0
    return float((volume.hu[slices][core] < STREAK_DARK_HU).mean())


def tilt_rule(volume: Volume) -> _Finding:
    """Gantry/Detector Tilt (0018,1120) beyond TILT_TOLERANCE_DEG, or slice origins that
    drift off the normal (the loader's shear QA), refuse."""
    out = _Finding(measured={"gantry_tilt_deg": volume.gantry_tilt_deg})
    tilt = volume.gantry_tilt_deg
    if tilt is not None and abs(tilt) > TILT_TOLERANCE_DEG:
        out.refusal = (f"gantry tilted {tilt:g} degrees; the protocol scores untilted axial "
                       "slices")
    elif volume.has_qa(QA_SHEAR):
        out.refusal = ("slices are sheared (gantry tilt or a non-axial stack): "
                       + next(q for q in volume.qa if q.startswith(QA_SHEAR)))
    return out


def field_of_view_rule(volume: Volume, anatomy: Anatomy) -> _Finding:
    """The heart must lie wholly inside the field of view.

    Refusal when the heart mask touches pixel padding or the circle of the
    Reconstruction Diameter (the reconstruction circle, with or without
    padding tags), the edge of the image, or the first or last slice: coronary
    calcium beyond it cannot be counted, so the score would be a lower bound
    presented as a total. A heart that was not found is a caveat.
    """
    heart = _found(anatomy, "heart")
    out = _Finding()
    if heart is None:
        out.caveats.append(f"{QA_FOV_UNCHECKED}: the heart was not found, so whether the "
                           "field of view cuts it could not be checked")
        return out
    cuts = [name for name, touched in (
        ("the first slice", heart[0].any()), ("the last slice", heart[-1].any()),
        ("the image edge", _touches_edge(heart)),
        ("the reconstruction circle (pixel padding)", _touches(heart, volume.padding)),
        ("the reconstruction circle (Reconstruction Diameter)",
         _touches(heart, _outside_reconstruction(volume))),
    ) if touched]
    if cuts:
        out.refusal = f"the field of view cuts the heart: it reaches {', '.join(cuts)}"
    return out


def _outside_reconstruction(volume: Volume) -> np.ndarray:
    """Pixels outside the circle of Reconstruction Diameter (0018,1100) inscribed in the
    image, broadcast over the slices; none when the diameter is not recorded.

    The circle is centred on the image: a CT image is the square reconstructed
    round its reconstruction target (PS3.3 C.8.2.1, C.8.15.3.8).
    """
    diameter = volume.reconstruction_diameter_mm
    _, rows, cols = volume.shape
    if diameter is None:
        return np.zeros((1, rows, cols), dtype=bool)
    y = (np.arange(rows) - (rows - 1) / 2) * volume.spacing[1]
    x = (np.arange(cols) - (cols - 1) / 2) * volume.spacing[2]
    return np.asarray(np.hypot(y[:, None], x[None, :]) > diameter / 2)[None]


def _touches_edge(mask: np.ndarray) -> bool:
    return bool(mask[:, 0, :].any() or mask[:, -1, :].any() or mask[:, :, 0].any()
                or mask[:, :, -1].any())


def _touches(mask: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``mask`` overlaps or is in-plane adjacent to ``other`` (near ``mask`` only).

    ``other`` may have one slice, standing for every slice.
    """
    box = bounding_box(mask, (0, 1, 1))
    near = other[(slice(None) if other.shape[0] == 1 else box[0], box[1], box[2])]
    if not near.any():
        return False
    grown = ndimage.binary_dilation(near, structure=np.ones((1, 3, 3), dtype=bool))
    return bool((grown & mask[box]).any())


def kernel_rule(volume: Volume) -> _Finding:
    """The reconstruction kernel from Convolution Kernel (0018,1210) and Manufacturer.

    A vendor's standard calcium kernel passes; a known sharp kernel refuses;
    any other, or none recorded, is a caveat.
    """
    out = _Finding()
    kernel = (volume.convolution_kernel or "").split("\\")[0].strip().upper()
    vendor = _vendor(volume.manufacturer)
    if not kernel:
        out.caveats.append(f"{QA_KERNEL_UNKNOWN}: no ConvolutionKernel recorded; the "
                           "reconstruction kernel could not be checked")
    elif vendor is not None and STANDARD_KERNELS[vendor].match(kernel):
        pass
    elif vendor is not None and SHARP_KERNELS[vendor].match(kernel):
        out.refusal = (f"sharp reconstruction kernel {volume.convolution_kernel} "
                       f"({volume.manufacturer}); calcium scoring uses the vendor's standard "
                       "kernel")
    else:
        out.caveats.append(f"{QA_KERNEL_UNKNOWN}: kernel {volume.convolution_kernel} "
                           f"({volume.manufacturer or 'manufacturer not recorded'}) is not on "
                           "the standard or sharp lists; check it suits calcium scoring")
    return out


def _vendor(manufacturer: str) -> str | None:
    name = manufacturer.upper()
    return next((key for spelling, key in VENDORS if spelling.search(name)), None)
