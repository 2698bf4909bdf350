"""The decision: which imaging test, if any, for this patient, and why.

A pack's rules are compiled once (value sets into code sets, rules indexed by
reason code). A decision evaluates the rules whose reasons match, lets the
highest priority decide, ranks its options (appropriateness descending, then
radiation ascending), runs the safety checks on the procedure the order will
carry and on the recommended one, and keeps a trace of every rule considered
and every fact used. A rule that would outrank the decision but cannot be
judged because the record lacks the age or sex asks for them instead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rules.context import SNOMED, Code, Fact, PatientContext
from rules.packs import LoadedPack, active_packs, catalogue, safety_config
from rules.safety import Finding, Rated, latest, matching, merge_findings, run_checks
from rules.schema import FactTest, Missing, Procedure, Rule, SafetyConfig, ValueSet

DEFAULT_PACK = "uk-gp-imaging"
# HL7 v3 ObservationInterpretation codes read as a positive or negative result
# (https://terminology.hl7.org/CodeSystem-v3-ObservationInterpretation.html).
POSITIVE_FLAGS = frozenset({"H", "HH", "POS", "A", "AA", "DET"})
NEGATIVE_FLAGS = frozenset({"N", "NEG", "ND", "L"})
POSITIVE_VALUES = frozenset({(SNOMED, "10828004")})  # |Positive (qualifier value)|
NEGATIVE_VALUES = frozenset({(SNOMED, "260385009")})  # |Negative (qualifier value)|
DATE_OF_BIRTH = Missing(name="Date of birth", patient_element="birthDate")
SEX = Missing(name="Sex", patient_element="gender")


@dataclass(frozen=True)
class RankedOption:
    procedure: Procedure
    appropriateness: int
    category: str
    rationale: str
    rule_id: str

    def rrl(self, child: bool) -> int:
        return (self.procedure.paediatric if child else self.procedure.adult).rrl


@dataclass
class RuleTrace:
    rule: Rule
    matched: bool
    reasons: list[str]


@dataclass
class Decision:
    pack_id: str
    pack_version: str
    outcome: str  # imaging | no-imaging | emergency | data-requested | no-rule
    summary: str
    deciding: list[Rule] = field(default_factory=list)
    options: list[RankedOption] = field(default_factory=list)
    ordered: Procedure | None = None
    ordered_rating: RankedOption | None = None
    missing: list[Missing] = field(default_factory=list)
    safety: list[Finding] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    trace: list[RuleTrace] = field(default_factory=list)
    not_considered: int = 0

    @property
    def chosen(self) -> RankedOption | None:
        return self.options[0] if self.outcome == "imaging" and self.options else None

    @property
    def target(self) -> Procedure | None:
        """The procedure the order will carry: as ordered, else the chosen one."""
        chosen = self.chosen
        return self.ordered or (chosen.procedure if chosen else None)

    @property
    def better(self) -> RankedOption | None:
        """A better-rated option than the procedure the GP named, if any."""
        chosen = self.chosen
        if self.ordered is None or chosen is None or chosen.procedure.key == self.ordered.key:
            return None
        rating = self.ordered_rating.appropriateness if self.ordered_rating else 0
        return chosen if chosen.appropriateness > rating else None

    def digest(self) -> dict[str, Any]:
        """What a replay compares: outcome, ranking and safety."""
        return {"outcome": self.outcome,
                "chosen": self.chosen.procedure.key if self.chosen else None,
                "options": [[o.procedure.key, o.appropriateness] for o in self.options],
                "safety": sorted([f.check, f.severity, f.procedure] for f in self.safety),
                "rules": [r.id for r in self.deciding]}


@dataclass
class _Verdict:
    """Why a rule does not apply (empty when it does), the facts looked at, and the
    demographics it needs that the record lacks."""

    why: list[str]
    facts: list[Fact]
    unknown: list[Missing]
    only_unknown: bool  # nothing but the unknown demographics stops it

    @property
    def applies(self) -> bool:
        return not self.why


@dataclass(frozen=True)
class _Test:
    test: FactTest
    codes: frozenset[Code]
    values: frozenset[Code]  # value_in, compiled
    kind: str  # FactTest.kind, computed once: it is read on every decision


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    reasons: frozenset[Code]
    requires: tuple[_Test, ...]
    requires_any: tuple[_Test, ...]
    excludes: tuple[_Test, ...]


class Engine:
    """One compiled pack version and the catalogue it refers to."""

    def __init__(self, loaded: LoadedPack, procedures: dict[str, Procedure],
                 safety: SafetyConfig) -> None:
        self.loaded = loaded
        self.procedures = procedures
        self.safety = safety
        sets = {name: _codes(vs) for name, vs in loaded.pack.value_sets.items()}
        self.value_sets = sets
        self.rules = [_compile(rule, sets) for rule in loaded.pack.rules]
        self.by_reason: dict[Code, list[int]] = defaultdict(list)
        for index, compiled in enumerate(self.rules):
            for code in compiled.reasons:
                self.by_reason[code].append(index)
        self.by_code = _procedure_index(procedures)

    def decide(self, ctx: PatientContext) -> Decision:
        """The decision for ``ctx``, with its explanation."""
        candidates = sorted({i for c in ctx.reason_codes for i in self.by_reason.get(c, [])})
        decision = Decision(self.loaded.pack.id, self.loaded.version, "no-rule", "")
        decision.not_considered = len(self.rules) - len(candidates)
        used: dict[str, Fact] = {}
        verdicts = [(self.rules[i].rule, self._consider(self.rules[i], ctx, decision, used))
                    for i in candidates]
        matched = [rule for rule, verdict in verdicts if verdict.applies]
        top = max((rule.priority for rule in matched), default=-1)
        waiting = [(rule, v) for rule, v in verdicts if v.only_unknown and rule.priority > top]
        if waiting:
            _ask_demographics(decision, waiting)
        else:
            self._conclude(decision, matched, ctx)
        decision.ordered = self.resolve_codes(ctx.ordered_codes)
        decision.ordered_rating = next((o for o in decision.options if decision.ordered
                                        and o.procedure.key == decision.ordered.key), None)
        decision.safety = self._safety(decision, ctx)
        decision.facts = list(used.values())
        return decision

    def _consider(self, compiled: _Compiled, ctx: PatientContext, decision: Decision,
                  used: dict[str, Fact]) -> _Verdict:
        verdict = _applies(compiled, ctx)
        decision.trace.append(RuleTrace(compiled.rule, verdict.applies,
                                        verdict.why or ["all criteria met"]))
        for fact in verdict.facts:
            used[fact.reference or f"{fact.kind}:{fact.codes}"] = fact
        return verdict

    def _conclude(self, decision: Decision, matched: list[Rule], ctx: PatientContext) -> None:
        if not matched:
            decision.summary = "No rule covers these reasons; radiology will vet the request."
            return
        top = max(r.priority for r in matched)
        decision.deciding = [r for r in matched if r.priority == top]
        first = decision.deciding[0].outcome
        decision.outcome, decision.summary = first.kind, first.summary
        decision.missing = [m for r in decision.deciding for m in r.outcome.missing]
        decision.options = self._rank(decision.deciding, ctx)

    def _safety(self, decision: Decision, ctx: PatientContext) -> list[Finding]:
        """The checks on the procedure the order will carry and on the recommended one."""
        chosen = decision.chosen
        procedures = [p for p in (decision.target, chosen.procedure if chosen else None) if p]
        unique = list({p.key: p for p in procedures}.values())
        rated = [Rated(o.procedure, o.appropriateness) for o in decision.options]
        return merge_findings(f for proc in unique for f in run_checks(
            ctx, proc, self.safety, rated, self.resolve_fact))

    def _rank(self, rules: list[Rule], ctx: PatientContext) -> list[RankedOption]:
        best: dict[str, RankedOption] = {}
        for rule in rules:
            for option in rule.outcome.options:
                ranked = RankedOption(self.procedures[option.procedure], option.appropriateness,
                                      option.category, option.rationale, rule.id)
                if option.procedure not in best or \
                        ranked.appropriateness > best[option.procedure].appropriateness:
                    best[option.procedure] = ranked
        child = ctx.age is not None and ctx.age < self.safety.paediatric_dose.child_below_age
        return sorted(best.values(), key=lambda o: (-o.appropriateness, o.rrl(child),
                                                    o.procedure.key))

    def resolve_codes(self, codes: tuple[Code, ...]) -> Procedure | None:
        """The catalogue procedure named by any of ``codes``."""
        for system, code in codes:
            if system.endswith("/CodeSystem/procedure") and code in self.procedures:
                return self.procedures[code]
            found = self.by_code.get((system, code))
            if found:
                return found
        return None

    def resolve_fact(self, fact: Fact) -> Procedure | None:
        return self.resolve_codes(fact.codes)


def _codes(value_set: ValueSet) -> frozenset[Code]:
    return frozenset((c.system, c.code) for c in value_set.codes)


def _compile(rule: Rule, sets: dict[str, frozenset[Code]]) -> _Compiled:
    def tests(group: list[FactTest]) -> tuple[_Test, ...]:
        return tuple(_Test(t, sets[t.value_set],
                           sets[t.value_in] if t.value_in else frozenset(), t.kind)
                     for t in group)

    applies = rule.applies
    reasons = frozenset().union(*(sets[name] for name in applies.reasons))
    return _Compiled(rule, reasons, tests(applies.requires), tests(applies.requires_any),
                     tests(applies.excludes))


def _procedure_index(procedures: dict[str, Procedure]) -> dict[Code, Procedure]:
    return {(p.snomed.system, p.snomed.code): p for p in procedures.values()}


def _ask_demographics(decision: Decision, waiting: list[tuple[Rule, _Verdict]]) -> None:
    """Ask for the age or sex that the highest-priority unjudgeable rules need."""
    waiting = sorted(waiting, key=lambda pair: -pair[0].priority)
    missing = {m.name: m for _, verdict in waiting for m in verdict.unknown}
    names = " and ".join(m.name.lower() for m in missing.values())
    decision.outcome = "data-requested"
    decision.deciding = [rule for rule, _ in waiting]
    decision.missing = list(missing.values())
    pronoun = "them" if len(missing) > 1 else "it"
    decision.summary = (f"The guidance for these reasons depends on the patient's {names}, "
                        f"which the record does not hold ({waiting[0][0].title}). Record "
                        f"{pronoun} and ask again.")


def _applies(compiled: _Compiled, ctx: PatientContext) -> _Verdict:
    """Whether the rule applies to ``ctx``, and why not."""
    why, unknown = _demographics(compiled.rule, ctx)
    criteria, facts = _criteria(compiled, ctx)
    only_unknown = bool(unknown) and len(why) == len(unknown) and not criteria
    return _Verdict(why + criteria, facts, unknown, only_unknown)


def _demographics(rule: Rule, ctx: PatientContext) -> tuple[list[str], list[Missing]]:
    """Age and sex reasons the rule does not apply, and which of them are unknown."""
    band, sexes, age = rule.applies.age, rule.applies.sex, ctx.age
    why: list[str] = []
    unknown: list[Missing] = []
    if (band.min is not None or band.max is not None) and age is None:
        why.append("age unknown")
        unknown.append(DATE_OF_BIRTH)
    elif age is not None and band.min is not None and age < band.min:
        why.append(f"age {age} below {band.min}")
    elif age is not None and band.max is not None and age >= band.max:
        why.append(f"age {age} not below {band.max}")
    if sexes and ctx.sex not in sexes:
        why.append(f"sex {ctx.sex or 'unknown'} not in {', '.join(sexes)}")
        if ctx.sex in (None, "unknown"):
            unknown.append(SEX)
    return why, unknown


def _criteria(compiled: _Compiled, ctx: PatientContext) -> tuple[list[str], list[Fact]]:
    """Why the rule's history tests fail (empty when they pass), and the facts looked at."""
    why: list[str] = []
    facts = [f for f in ctx.reasons if compiled.reasons.intersection(f.codes)]
    for test in compiled.requires:
        ok, fact = _test(test, ctx)
        facts += [fact] if fact else []
        if not ok:
            why.append(f"requires {_describe(test.test)}")
    if compiled.requires_any:
        results = [_test(t, ctx) for t in compiled.requires_any]
        facts += [f for _, f in results if f]
        if not any(ok for ok, _ in results):
            why.append("requires one of " + "; ".join(_describe(t.test)
                                                     for t in compiled.requires_any))
    for test in compiled.excludes:
        ok, fact = _test(test, ctx)
        facts += [fact] if fact else []
        if ok:
            why.append(f"excluded by {_describe(test.test)}")
    return why, facts


def _describe(test: FactTest) -> str:
    value = f" {test.value:g}" if test.value is not None else ""
    window = f" within {test.within_days} days" if test.within_days else ""
    coded = f" with a value in {test.value_in}" if test.value_in else ""
    status = " (current or past)" if test.history else ""
    return f"{test.kind} {test.value_set}{status} {test.comparator}{value}{coded}{window}"


def _test(test: _Test, ctx: PatientContext) -> tuple[bool, Fact | None]:
    """Whether the patient meets ``test``, and the fact that decided it."""
    t = test.test
    pool = _pool(test.kind, ctx, t.history)
    if t.within_days:
        pool = [f for f in pool if f.when and 0 <= (ctx.today - f.when).days <= t.within_days]
    if test.kind != "observation":
        found = matching(pool, test.codes)
        present = bool(found)
        return (present if t.comparator == "present" else not present), \
            (found[0] if found else None)
    fact = latest(pool, test.codes)
    if t.value_in:
        return fact is not None and bool(test.values.intersection(fact.value_codes)), fact
    return _compare(t, fact), fact


def _pool(kind: str, ctx: PatientContext, history: bool) -> list[Fact]:
    """The facts a test of ``kind`` looks at: active ones, or all conditions for history."""
    if kind == "condition":
        return ctx.conditions if history else [c for c in ctx.conditions if c.active]
    if kind == "allergy":
        return [a for a in ctx.allergies if a.active]
    facts: list[Fact] = {"observation": ctx.observations, "reason": ctx.reasons,
                         "device": ctx.devices}[kind]
    return facts


def _compare(test: FactTest, fact: Fact | None) -> bool:
    if test.comparator == "absent":
        return fact is None
    if fact is None:
        return False
    if test.comparator == "present":
        return True
    if test.comparator == "positive":
        return bool(POSITIVE_FLAGS.intersection(fact.interpretation) or
                    POSITIVE_VALUES.intersection(fact.value_codes))
    if test.comparator == "negative":
        return bool(NEGATIVE_FLAGS.intersection(fact.interpretation) or
                    NEGATIVE_VALUES.intersection(fact.value_codes))
    if fact.value is None or test.value is None:
        return False
    return {"<": fact.value < test.value, "<=": fact.value <= test.value,
            ">": fact.value > test.value, ">=": fact.value >= test.value,
            "=": fact.value == test.value}[test.comparator]


_ENGINES: dict[str, Engine] = {}
_ENGINE_CACHE_SIZE = 8


def _engine_for(loaded: LoadedPack) -> Engine:
    """Compile each pack version once per process."""
    found = _ENGINES.get(loaded.version)
    if found is None:
        if len(_ENGINES) >= _ENGINE_CACHE_SIZE:
            _ENGINES.pop(next(iter(_ENGINES)))
        found = _ENGINES[loaded.version] = Engine(loaded, catalogue(), safety_config())
    return found


def engine(pack_id: str = DEFAULT_PACK, loaded: LoadedPack | None = None) -> Engine:
    """The compiled engine for a pack (the shipped version unless ``loaded`` is given)."""
    if loaded is None:
        loaded = next((p for p in active_packs() if p.pack.id == pack_id), None)
        if loaded is None:
            raise LookupError(f"no rule pack '{pack_id}' is installed")
    return _engine_for(loaded)

