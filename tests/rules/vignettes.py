"""Loading GP vignettes (shared/vignettes/README.md) and checking a CDS Hooks answer."""

from __future__ import annotations

import calendar
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "vignettes"
OURS = Path(__file__).resolve().parent / "vignettes"
SAFETY_SYSTEM = "https://scanpath.example/fhir/CodeSystem/safety-check"
PROCEDURE_SYSTEM = "https://scanpath.example/fhir/CodeSystem/procedure"
_PLACEHOLDER = re.compile(r"\{\{today([+-])(\d+)([dy])\}\}")


def vignette_files() -> list[Path]:
    shared = sorted(SHARED.glob("*.json")) if SHARED.is_dir() else []
    if not shared and os.environ.get("CI") == "true":
        raise RuntimeError(f"shared vignettes missing at {SHARED}")
    return shared + sorted(OURS.glob("*.json"))


def shift(today: date, sign: str, amount: int, unit: str) -> date:
    """``today`` moved by days, or by whole years (29 February becoming 28)."""
    step = amount if sign == "+" else -amount
    if unit == "d":
        return today + timedelta(days=step)
    year = today.year + step
    day = min(today.day, calendar.monthrange(year, today.month)[1])
    return today.replace(year=year, day=day)


def fill(text: str, today: date) -> str:
    return _PLACEHOLDER.sub(lambda m: shift(today, m[1], int(m[2]), m[3]).isoformat(), text)


def load(path: Path, today: date) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fill(path.read_text(encoding="utf-8"), today))
    return data


def safety_codes(cards: list[dict[str, Any]]) -> set[str]:
    return {c["source"]["topic"]["code"] for c in cards
            if (c.get("source", {}).get("topic") or {}).get("system") == SAFETY_SYSTEM}


def outcome_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if (c.get("source", {}).get("topic") or {}).get("system")
            != SAFETY_SYSTEM]


def recommended(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for c in cards for s in c.get("suggestions", []) if s.get("isRecommended")]


def check(expect: dict[str, Any], cards: list[dict[str, Any]]) -> list[str]:
    """What in ``cards`` contradicts ``expect`` (empty when the answer is right)."""
    outcome = expect.get("outcome")
    problems = _outcome_problems(outcome, expect.get("procedure"), cards) if outcome else []
    present = safety_codes(cards)
    problems += [f"missing safety card {s}" for s in expect.get("safety", []) if s not in present]
    problems += [f"unexpected safety card {s}" for s in expect.get("no_safety", [])
                 if s in present]
    return problems


def _outcome_problems(outcome: str, procedure: str | None,
                      cards: list[dict[str, Any]]) -> list[str]:
    picks = recommended(cards)
    indicators = {c["indicator"] for c in outcome_cards(cards)}
    if outcome == "imaging":
        if len(picks) != 1:
            return [f"expected exactly one recommended suggestion, got {len(picks)}"]
        keys = [c["code"] for a in picks[0]["actions"] for c in a["resource"]["code"]["coding"]
                if c["system"] == PROCEDURE_SYSTEM]
        return [] if procedure in keys else [f"recommended {keys}, expected {procedure}"]
    wanted = {"no-imaging": "warning", "emergency": "critical", "data-requested": "info"}[outcome]
    if wanted not in indicators or (picks and outcome != "emergency"):
        return [f"expected a {wanted} card and no recommended suggestion for {outcome}"]
    return []
