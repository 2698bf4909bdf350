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

Nothing here reads FHIR: ``patient.page`` picks the texts for a report.
"""

from __future__ import annotations

from dataclasses import dataclass

from imaging_core.calcium import AGATSTON_1990, HECHT_2018

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
