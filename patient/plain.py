"""What a patient reads about their scan, as data with its sources (issue 13).

Wording follows the NHS digital service manual's content style guide (service-manual.nhs.uk
/content: "How we write", "Health literacy"; plain English, short sentences, active voice,
a medical word only with its explanation in the same place). The NHS website's audit found
an average reading age near 16 where most UK adults read below it (NHS Digital, "Creating
better content for users with low health literacy", 13 February 2019), so sentences here
aim at about 9 to 11 years.

Calcium scoring (CT-CAC): the Agatston score (Agatston AS et al., J Am Coll Cardiol 1990;
15:827-832) and its CAC-DRS category A0-A3 with N, the number of coronary arteries with
calcium (Hecht HS et al., CAC-DRS, J Cardiovasc Comput Tomogr 2018;12:185-191: the Agatston
categories, their risk wording and their treatment suggestions, Table 2). The treatment
suggestions are for doctors; the patient text says what their GP may talk to them about
and never tells them to start a medicine.

Coronary CT angiography (CTCA): the CAD-RADS 2.0 category (Cury RC et al., J Cardiovasc
Comput Tomogr 2022;16:536-557, Table 2: the stenosis ranges and what 4B and N mean) in
plain words. Cury's management suggestions are for doctors and are not repeated: the
patient reads the next step their radiologist wrote. FFR-CT and stent sizes are not shown
to patients (they are in the full report, for the doctors who act on them).

A report of a kind the page does not know is not explained: the page says the result is
available from the GP (:data:`RESULT_FROM_GP`) beside the radiologist's own words.

Nothing here reads FHIR: ``patient.page`` picks the texts for a report.
"""

from __future__ import annotations

from dataclasses import dataclass

from imaging_core.calcium import AGATSTON_1990, HECHT_2018
from imaging_core.terminology import CURY_2022

NHS_CONTENT_STYLE = ("NHS digital service manual, content style guide "
                     "(service-manual.nhs.uk/content): How we write; Health literacy")


@dataclass(frozen=True)
class Text:
    """A piece of patient text and where what it says comes from."""

    text: str
    source: str


@dataclass(frozen=True)
class Category:
    """One CAC-DRS Agatston category in a patient's words (Hecht 2018, Table 2).

    ``scores`` and ``risk`` are Hecht's (the range, and the risk of heart disease
    it states); ``plaque`` is its plaque burden word; ``meaning`` and ``treatment``
    are the patient's sentences built from them.
    """

    code: str
    scores: str
    risk: str
    plaque: str
    meaning: str
    treatment: str
    source: str = HECHT_2018 + ", Table 2"


# Hecht 2018 Table 2: A0 0 "very low" risk, statin generally not recommended (unless other
# risk such as diabetes, smoking or a family history of early heart disease); A1 1-99
# "mildly increased", moderate-intensity statin; A2 100-299 "moderately increased",
# moderate- to high-intensity statin and aspirin 81 mg; A3 300 or more "moderately to
# severely increased", high-intensity statin and aspirin 81 mg. The ranges and risk words
# are the paper's; the exceptions in A0's footnote are recalled, not re-read in a public copy
# during this work: unverified. UK practice decides aspirin for prevention with the patient
# (not verified against a NICE section here), so the patient text leaves it to the GP.
CATEGORIES: dict[str, Category] = {
    "A0": Category(
        "A0", "0", "very low", "no calcified plaque",
        "No calcium was found in the arteries of your heart. This means your risk of "
        "heart disease, such as a heart attack, is very low.",
        "Doctors do not usually suggest a statin (a medicine that lowers cholesterol) for "
        "this result. Your GP may still suggest one if you have other reasons, such as "
        "diabetes, smoking or heart disease in your close family."),
    "A1": Category(
        "A1", "1 to 99", "mildly increased", "mild calcified plaque",
        "A small amount of calcium was found in the arteries of your heart. This is called "
        "mild plaque. Your risk of heart disease, such as a heart attack, is mildly "
        "increased.",
        "Guidance for doctors suggests talking about a statin (a medicine that lowers "
        "cholesterol) for this result."),
    "A2": Category(
        "A2", "100 to 299", "moderately increased", "moderate calcified plaque",
        "A moderate amount of calcium was found in the arteries of your heart. This is "
        "called moderate plaque. Your risk of heart disease, such as a heart attack, is "
        "moderately increased.",
        "Guidance for doctors suggests talking about a statin (a medicine that lowers "
        "cholesterol) and sometimes a low dose of aspirin. Do not start taking aspirin "
        "without talking to your GP first, because it can cause bleeding."),
    "A3": Category(
        "A3", "300 or more", "moderately to severely increased", "severe calcified plaque",
        "A large amount of calcium was found in the arteries of your heart. This is called "
        "severe plaque. Your risk of heart disease, such as a heart attack, is moderately "
        "to severely increased.",
        "Guidance for doctors suggests talking about a stronger dose of a statin (a "
        "medicine that lowers cholesterol) and sometimes a low dose of aspirin. Do not "
        "start taking aspirin without talking to your GP first, because it can cause "
        "bleeding."),
}

WHAT_CALCIUM_SCORING_IS = Text(
    "You had a CT scan of your heart. A CT scan uses X-rays to take detailed pictures "
    "inside your body. This scan looked for calcium in the arteries that supply your "
    "heart with blood (the coronary arteries). Calcium there is a sign of plaque, a "
    "build-up of fatty material that can narrow the arteries.",
    f"{HECHT_2018}, introduction; {NHS_CONTENT_STYLE}")

WHAT_THE_SCORE_IS = Text(
    "The amount of calcium is given as a number called the calcium score (Agatston "
    "score). A score of 0 means no calcium was found. The higher the score, the more "
    "calcium there is.",
    f"{AGATSTON_1990}; {HECHT_2018}")

WHAT_OTHER_SCANS_SHOW = Text(
    "Below is the conclusion the radiologist (a doctor who specialises in scans) wrote "
    "in your report. Your GP or the team who asked for the scan can explain it.",
    NHS_CONTENT_STYLE)

ARTERIES = ("left main", "left anterior descending", "left circumflex", "right coronary")
NOT_AVAILABLE = "Not available"


def arteries_text(count: int | None) -> str:
    """How many of the 4 main heart arteries have calcium (CAC-DRS N, Hecht 2018), in words.

    None (not known) says so; it never reads as "none".
    """
    if count is None:
        return "We could not tell how many of the arteries of your heart have calcium."
    if count == 0:
        return "None of the 4 main arteries of your heart has calcium."
    arteries = "artery" if count == 1 else "arteries"
    return f"Calcium was found in {count} of the 4 main {arteries} of your heart."


# Why a scan could not be scored, matched on the words the imaging core's reasons use
# (imaging_core.calcium.protocol_refusal, imaging_core.scanqa, imaging_core.chest); the
# first match wins. Each says what happened, without jargon (NHS content style guide).
UNSCORABLE_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("contrast",), "The scan showed contrast dye in your blood. The dye looks like "
                    "calcium on the pictures, so the calcium could not be measured."),
    (("metal",), "Metal in your chest, such as a clip or a wire, made marks on the "
                 "pictures around your heart."),
    (("field of view", "cuts the heart", "heart was not found", "heart not found"),
     "The pictures did not show the whole of your heart."),
    (("slice", "kvp", "tube voltage", "kernel", "tilt", "sheared", "modality"),
     "The scan was not taken in the standard way needed to measure calcium."),
)
UNSCORABLE_OTHER = "The pictures could not be measured reliably."


def unscorable_text(reason: str | None) -> str:
    """Why the score could not be measured, in plain words, and what happens next."""
    lowered = (reason or "").lower()
    why = next((text for words, text in UNSCORABLE_REASONS
                if any(word in lowered for word in words)), UNSCORABLE_OTHER)
    return (f"We could not measure your calcium score. {why} This does not mean your "
            "arteries are clear. The radiologist's report below says what happens next.")


NEXT_STEP_NOT_STATED = Text(
    "The radiologist has not written a next step for you on this page. Your GP or the team "
    "who asked for the scan has your full report and will contact you if you need to do "
    "anything. If you have questions about your result, contact your GP surgery.",
    NHS_CONTENT_STYLE)

GP_WILL_CONTACT = Text(
    "Your GP or the team who asked for the scan has your full report. They may contact "
    "you to talk about it.",
    NHS_CONTENT_STYLE)


# --- coronary CT angiography (CTCA) ---------------------------------------------------

CAD_RADS_SOURCE = f"{CURY_2022}, Table 2"

WHAT_CTCA_IS = Text(
    "You had a CT scan of the arteries of your heart (the coronary arteries), with a dye "
    "injected into a vein to make the blood show up on the pictures. A CT scan uses X-rays "
    "to take detailed pictures inside your body. The scan looked for plaque, a build-up of "
    "fatty material in the artery walls, and for places where plaque makes an artery "
    "narrower.",
    f"{CURY_2022}; {NHS_CONTENT_STYLE}")

WHAT_CAD_RADS_IS = Text(
    "Doctors put the result in a group called CAD-RADS, from 0 (no plaque or narrowing) "
    "to 5 (an artery is completely blocked). The group depends on the narrowest place "
    "found.",
    CAD_RADS_SOURCE)

# Cury 2022 Table 2: 0 = 0 % (no plaque or stenosis); 1 = 1-24 % (minimal stenosis, or
# plaque with no stenosis); 2 = 25-49 % (mild); 3 = 50-69 % (moderate); 4A = 70-99 %
# (severe); 4B = left main > 50 % or three-vessel obstructive (>= 70 %) disease; 5 = 100 %
# (total occlusion); N = non-diagnostic study. As imaging_core.terminology's categories.
CAD_RADS: dict[str, str] = {
    "0": "No plaque and no narrowing were seen in the arteries of your heart.",
    "1": "A very small amount of plaque was seen. It narrows the artery by less than a "
         "quarter (less than 25 %), or not at all.",
    "2": "Some plaque was seen. It narrows an artery by a quarter to a half (25 to 49 %). "
         "Doctors call this mild narrowing.",
    "3": "Plaque narrows an artery by a half to two thirds (50 to 69 %). Doctors call "
         "this moderate narrowing.",
    "4A": "Plaque narrows an artery by 70 to 99 %. Doctors call this severe narrowing.",
    "4B": "Doctors call this severe narrowing. It means one of two things. The main artery "
          "on the left side of your heart (the left main artery) is narrowed by more than a "
          "half. Or all 3 main arteries are narrowed by 70 % or more.",
    "5": "One of the arteries of your heart is completely blocked.",
    "N": "The pictures were not clear enough to tell how narrow the arteries of your "
         "heart are.",
}

CTCA_NOT_ASSESSED = ("We could not check the arteries of your heart on these pictures. "
                     "This does not mean your arteries are clear. The radiologist's report "
                     "below says what happens next.")

VESSEL_WORDS = {"LM": "the left main artery", "LAD": "the left anterior descending artery",
                "LCX": "the left circumflex artery", "RCA": "the right coronary artery"}


def not_assessed_text(vessels: list[str]) -> str | None:
    """Which arteries could not be checked, in words; None when all were."""
    if not vessels:
        return None
    names = [VESSEL_WORDS.get(v, v) for v in vessels]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (f"Part of the scan could not be checked: {listed}. This does not mean "
            "it is clear. The group above is for the arteries that were checked.")


RESULT_FROM_GP = Text(
    "This page cannot explain this kind of scan in plain words. Your result is available "
    "from your GP surgery, or the team who asked for the scan: they can explain it.",
    NHS_CONTENT_STYLE)


@dataclass(frozen=True)
class ModelText:
    """What the page says about the 3D model: heading, description and alternative texts."""

    heading: str
    text: str
    alt: str
    still_alt: str


CALCIUM_MODEL = ModelText(
    "3D model of the calcium in your heart",
    "The model shows the calcium found in the arteries of your heart, with the tissue "
    "around it shown faintly. It is seen from the front, as if you were facing someone. "
    "You can turn it with your finger or mouse.",
    "3D model of the calcium found in the arteries of your heart",
    "Picture of the 3D model from the front: the calcium in the arteries of your heart, "
    "with the tissue around it shown faintly")

CTCA_MODEL = ModelText(
    "3D model of the arteries of your heart",
    "The model shows the arteries of your heart that the scan could follow. Their colour "
    "is an estimate, from a computer model, of how well blood can flow along them: green "
    "where the estimate shows no important drop, yellow or red where a narrowing may "
    "reduce the flow, grey where it could not be estimated. You can turn it with your "
    "finger or mouse.",
    "3D model of the arteries of your heart, coloured by the estimated blood flow",
    "Picture of the 3D model from the front: the arteries of your heart, coloured by the "
    "estimated blood flow")
