"""The decision: which imaging test, if any, for this patient, and why.

A pack's rules are compiled once (value sets into code sets, rules indexed by
reason code). A decision evaluates the rules whose reasons match, lets the
highest priority decide, ranks its options (appropriateness descending, then
radiation ascending), runs the safety checks on the procedure the order will
carry and on the recommended one, and keeps a trace of every rule considered
and every fact used. A rule that would outrank the decision but cannot be
judged because the record lacks the age or sex, or because history it reads
could not be read, asks for them instead. When a safety finding makes the
recommended option unsafe (``Finding.contraindicates``), the best safe option
the deciding rules allow is recommended instead and the trace says why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rules.context import SNOMED, Code, Fact, PatientContext
from rules.packs import LoadedPack, active_packs, catalogue, library, safety_config
from rules.safety import Finding, Rated, latest, merge_findings, run_checks
from rules.schema import FactTest, Missing, Procedure, Rule, SafetyConfig
from rules.valuesets import Compiled, ValueSets, matching, value_in

DEFAULT_PACK = "uk-gp-imaging"
# HL7 v3 ObservationInterpretation codes read as a positive or negative result
# (https://terminology.hl7.org/CodeSystem-v3-ObservationInterpretation.html).
POSITIVE_FLAGS = frozenset({"H", "HH", "POS", "A", "AA", "DET"})
NEGATIVE_FLAGS = frozenset({"N", "NEG", "ND", "L"})
POSITIVE_VALUES = frozenset({(SNOMED, "10828004")})  # |Positive (qualifier value)|
NEGATIVE_VALUES = frozenset({(SNOMED, "260385009")})  # |Negative (qualifier value)|
DATE_OF_BIRTH = Missing(name="Date of birth", patient_element="birthDate")
SEX = Missing(name="Sex", patient_element="gender")
# What a test of each kind reads (PatientContext.unknown names) and what to ask for.
# The lists a test of each kind reads: a condition test also reads observations,
# since findings may come as Observations (PatientContext.findings).
READS = {"condition": ("conditions", "observations"), "observation": ("observations",),
         "allergy": ("allergies",), "device": ("devices",)}
HISTORY = {"conditions": "Problems and diagnoses", "observations": "Observations and results",
           "allergies": "Allergies and intolerances", "devices": "Implanted devices",
           "imaging": "Previous imaging", "patient": "Date of birth and sex"}


@dataclass(frozen=True)
class RankedOption:
    procedure: Procedure
    appropriateness: int
    category: str
    rationale: str
    rule_id: str
    alternative: bool = False  # Option.alternative: offered when those above are unsafe

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
    # Options passed over because a safety finding makes them unsafe, with it.
    passed_over: list[tuple[RankedOption, Finding]] = field(default_factory=list)
    checked: dict[str, list[Finding]] = field(default_factory=dict, repr=False)

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
        """A better-rated option than the procedure the GP named, or a safe one when
        the named procedure is unsafe for this patient."""
        chosen = self.chosen
        if self.ordered is None or chosen is None or chosen.procedure.key == self.ordered.key:
            return None
        if self.ordered.key in {o.procedure.key for o, _ in self.passed_over}:
            return chosen
        rating = self.ordered_rating.appropriateness if self.ordered_rating else 0
        return chosen if chosen.appropriateness > rating else None

    def digest(self) -> dict[str, Any]:
        """What a replay compares: outcome, ranking and safety."""
        return {"outcome": self.outcome,
                "chosen": self.chosen.procedure.key if self.chosen else None,
                "options": [[o.procedure.key, o.appropriateness] for o in self.options],
                "safety": sorted([f.check, f.severity, f.procedure] for f in self.safety),
                "passedOver": [o.procedure.key for o, _ in self.passed_over],
                "rules": [r.id for r in self.deciding]}


@dataclass
class _Verdict:
    """Why a rule does not apply (empty when it does), the facts looked at, and the
    demographics it needs that the record lacks."""

    why: list[str]
    facts: list[Fact]
    unknown: list[Missing]
    only_unknown: bool  # nothing but unknown demographics or unread history stops it

    @property
    def applies(self) -> bool:
        return not self.why


@dataclass(frozen=True)
class _Test:
    test: FactTest
    value_set: Compiled
    values: frozenset[Code]  # value_in, compiled
    kind: str  # FactTest.kind, computed once: it is read on every decision

    @property
    def codes(self) -> frozenset[Code]:
        return self.value_set.codes


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
        # The pack's own value sets win: a stored version replays with its codes;
        # the library fills in what older versions never defined (safety checks).
        self.value_sets = ValueSets({**library(), **loaded.pack.value_sets})
        self.rules = [_compile(rule, self.value_sets) for rule in loaded.pack.rules]
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
            _ask_missing(decision, waiting)
        else:
            self._conclude(decision, matched, ctx)
        decision.ordered = self.resolve_codes(ctx.ordered_codes)
        decision.ordered_rating = next((o for o in decision.options if decision.ordered
                                        and o.procedure.key == decision.ordered.key), None)
        self._prefer_safe(decision, ctx)
        decision.safety = self._safety(decision, ctx)
        decision.facts = list(used.values())
        return decision

    def _prefer_safe(self, decision: Decision, ctx: PatientContext) -> None:
        """Recommend the best option that no safety finding makes unsafe, among those the
        deciding rules offer as alternatives (``Option.alternative``).

        When every allowed option is unsafe, the ranking stays as it was and the
        findings speak for themselves.
        """
        if decision.outcome != "imaging" or not decision.options:
            return
        passed: list[tuple[RankedOption, Finding]] = []
        for rank, option in enumerate(decision.options):
            if rank and not _allowed(option):
                continue
            unsafe = next((f for f in self._check(ctx, option.procedure, decision)
                           if f.contraindicates), None)
            if unsafe is None:
                break
            passed.append((option, unsafe))
        else:
            return
        if passed:
            skipped = {id(o) for o, _ in passed}
            decision.options = [o for o in decision.options if id(o) not in skipped] + \
                [o for o, _ in passed]
            decision.passed_over = passed
            decision.trace.append(_passed_over_trace(decision))

    def _check(self, ctx: PatientContext, proc: Procedure,
               decision: Decision) -> list[Finding]:
        """The safety findings on ``proc``, computed once per decision (the ranking
        and the final checks both ask; the rated options do not change between)."""
        found = decision.checked.get(proc.key)
        if found is None:
            rated = [Rated(o.procedure, o.appropriateness) for o in decision.options]
            found = decision.checked[proc.key] = run_checks(
                ctx, proc, self.safety, self.value_sets, rated, self.resolve_fact)
        return found

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
        return merge_findings(f for proc in unique for f in self._check(ctx, proc, decision))

    def _rank(self, rules: list[Rule], ctx: PatientContext) -> list[RankedOption]:
        best: dict[str, RankedOption] = {}
        for rule in rules:
            for option in rule.outcome.options:
                ranked = RankedOption(self.procedures[option.procedure], option.appropriateness,
                                      option.category, option.rationale, rule.id,
                                      option.alternative)
                if option.procedure not in best or \
                        ranked.appropriateness > best[option.procedure].appropriateness:
                    best[option.procedure] = ranked
        child = ctx.age is not None and ctx.age < self.safety.paediatric_dose.child_below_age
        return sorted(best.values(), key=lambda o: (-o.appropriateness, o.rrl(child),
                                                    o.procedure.key))

    def resolve_codes(self, codes: tuple[Code, ...]) -> Procedure | None:
        """The catalogue procedure named by any of ``codes``."""
        for system, code in codes:
            # A catalogue key sent without its system is still unmistakably one.
            if (not system or system.endswith("/CodeSystem/procedure")) and \
                    code in self.procedures:
                return self.procedures[code]
            found = self.by_code.get((system, code))
            if found:
                return found
        return None

    def resolve_fact(self, fact: Fact) -> Procedure | None:
        return self.resolve_codes(fact.codes)


def _allowed(option: RankedOption) -> bool:
    """Whether the deciding rule offers ``option`` in place of unsafe ones above it."""
    return option.alternative


def _passed_over_trace(decision: Decision) -> RuleTrace:
    """The explanation of a move to a safer option, as a trace entry of the deciding rule."""
    chosen = decision.options[0].procedure
    why = [f"{o.procedure.display} is not recommended: {f.summary}"
           for o, f in decision.passed_over]
    why.append(f"{chosen.display} is the best option the guidance allows that is safe "
               "for this patient")
    return RuleTrace(decision.deciding[0], True, why)


def _compile(rule: Rule, sets: ValueSets) -> _Compiled:
    def tests(group: list[FactTest]) -> tuple[_Test, ...]:
        return tuple(_Test(t, sets.get(t.value_set),
                           sets.codes(t.value_in) if t.value_in else frozenset(), t.kind)
                     for t in group)

    applies = rule.applies
    reasons = frozenset().union(*(sets.codes(name) for name in applies.reasons))
    return _Compiled(rule, reasons, tests(applies.requires), tests(applies.requires_any),
                     tests(applies.excludes))


def _procedure_index(procedures: dict[str, Procedure]) -> dict[Code, Procedure]:
    return {(p.snomed.system, p.snomed.code): p for p in procedures.values()}


def _ask_missing(decision: Decision, waiting: list[tuple[Rule, _Verdict]]) -> None:
    """Ask for what the highest-priority unjudgeable rules need: the age or sex the
    record lacks, history that could not be read, or a value that could not be read."""
    waiting = sorted(waiting, key=lambda pair: -pair[0].priority)
    missing = {m.name: m for _, verdict in waiting for m in verdict.unknown}
    names = " and ".join(_lower_first(m.name) for m in missing.values())
    decision.outcome = "data-requested"
    decision.deciding = [rule for rule, _ in waiting]
    decision.missing = list(missing.values())
    pronoun = "them" if len(missing) > 1 else "it"
    decision.summary = (f"The guidance for these reasons depends on the patient's {names}, "
                        f"which ScanPath could not read or the record does not hold "
                        f"({waiting[0][0].title}). Record or send {pronoun} and ask again.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _applies(compiled: _Compiled, ctx: PatientContext) -> _Verdict:
    """Whether the rule applies to ``ctx``, and why not.

    A rule stopped only by what is unknown (age, sex, history that could not
    be read, a value that could not be read) is ``only_unknown``: it may apply.
    """
    why, unknown = _demographics(compiled.rule, ctx)
    failed, unread, facts = _criteria(compiled, ctx)
    reasons = why + failed + [f"cannot judge: {m.name}" for m in unread]
    only_unknown = bool(unknown or unread) and len(why) == len(unknown) and not failed
    return _Verdict(reasons, facts, unknown + unread, only_unknown)


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


_Result = tuple[bool | None, Fact | None, Missing | None]


def _criteria(compiled: _Compiled,
              ctx: PatientContext) -> tuple[list[str], list[Missing], list[Fact]]:
    """Why the rule's history tests fail, what they could not judge, and the facts looked at."""
    failed: list[str] = []
    unread: list[Missing] = []
    facts = [f for f in ctx.reasons if compiled.reasons.intersection(f.codes)]

    def note(result: _Result, fails_when: bool, text: str) -> None:
        ok, fact, missing = result
        facts.extend([fact] if fact else [])
        if ok is None and missing is not None:
            unread.append(missing)
        elif ok is fails_when:
            failed.append(text)

    for test in compiled.requires:
        note(_test(test, ctx), False, f"requires {_describe(test.test)}")
    if compiled.requires_any:
        results = [_test(t, ctx) for t in compiled.requires_any]
        facts.extend(f for _, f, _ in results if f)
        if not any(ok for ok, _, _ in results):
            unread += [m for ok, _, m in results if ok is None and m is not None]
            if all(ok is False for ok, _, _ in results):
                failed.append("requires one of " + "; ".join(
                    _describe(t.test) for t in compiled.requires_any))
    for test in compiled.excludes:
        note(_test(test, ctx), True, f"excluded by {_describe(test.test)}")
    return failed, unread, facts


def _describe(test: FactTest) -> str:
    value = f" {test.value:g}" if test.value is not None else ""
    window = f" within {test.within_days} days" if test.within_days else ""
    coded = f" with a value in {test.value_in}" if test.value_in else ""
    status = " (current or past)" if test.history else ""
    return f"{test.kind} {test.value_set}{status} {test.comparator}{value}{coded}{window}"


def _test(test: _Test, ctx: PatientContext) -> _Result:
    """Whether the patient meets ``test`` (None: cannot tell), the fact that decided it,
    and what would let it be judged."""
    t = test.test
    # A fact of this kind whose value, date or status could not be read may be the
    # one that decides: it is unknown, never absent.
    every = ctx.allergies if test.kind == "allergy" else _pool(test.kind, ctx, True)
    bad = [f for f in matching(every, test.codes) if _unreadable_for(test, f)]
    pool = [f for f in _pool(test.kind, ctx, t.history) if not _unreadable_for(test, f)]
    if t.within_days:
        pool = [f for f in pool if f.when and 0 <= (ctx.today - f.when).days <= t.within_days]
    unread = _unread(test.kind, ctx) or (_unreadable_fact(test, bad[0]) if bad else None)
    if test.kind != "observation":
        found = matching(pool, test.codes)
        if not found:
            return (None, None, unread) if unread else (t.comparator != "present", None, None)
        return t.comparator == "present", found[0], None
    fact = latest(pool, test.codes)
    if bad and not (fact and t.comparator == "present"):  # it may be the latest
        return None, fact or bad[0], unread
    if fact is None:
        return (None, None, unread) if unread else (t.comparator == "absent", None, None)
    result = _compare(test, fact)
    return result, fact, None if result is not None else _unreadable(test)


def _unread(kind: str, ctx: PatientContext) -> Missing | None:
    """What to ask for when the list a test of ``kind`` reads could not be read."""
    name = next((n for n in READS.get(kind, ()) if n in ctx.unknown), None)
    if name is None:
        return None
    return Missing.model_validate({"name": f"{HISTORY[name]} ({ctx.unknown[name]})",
                                   "history": name})


# Elements that only date a fact: a test that neither windows by date nor picks
# the latest value (observation tests do) does not need them.
_DATES = ("onsetDateTime", "onsetPeriod", "recordedDate", "abatementDateTime",
          "manufactureDate", "started", "occurrenceDateTime", "occurrencePeriod", "authoredOn")


def _unreadable_for(test: _Test, fact: Fact) -> bool:
    """Whether ``fact`` has an element ``test`` needs that could not be read."""
    if test.kind == "observation" or test.test.within_days:
        return bool(fact.unreadable)
    return any(not p.startswith(_DATES) for p in fact.unreadable)


def _unreadable_fact(test: _Test, fact: Fact) -> Missing:
    """What to ask for when a fact the test reads is present but could not be read."""
    why = "; ".join(fact.unreadable)
    name = f"{test.test.value_set} ({fact.reference or fact.display}: {why})"
    if test.kind == "observation":
        return Missing(name=name, observation=test.test.value_set)
    history = {"condition": "conditions", "allergy": "allergies",
               "device": "devices"}.get(test.kind, "observations")
    if fact.kind == "observation":
        history = "observations"
    return Missing.model_validate({"name": name, "history": history})


def _unreadable(test: _Test) -> Missing:
    wanted = "positive or negative" if test.test.comparator in ("positive", "negative") \
        else f"a value in {test.value_set.unit}" if test.value_set.unit else "a value"
    return Missing(name=f"{test.test.value_set} recorded as {wanted}",
                   observation=test.test.value_set)


def _pool(kind: str, ctx: PatientContext, history: bool) -> list[Fact]:
    """The facts a test of ``kind`` looks at: active ones, or all findings for history."""
    if kind == "condition":
        return ctx.findings if history else [c for c in ctx.findings if c.active]
    if kind == "allergy":
        return [a for a in ctx.allergies if a.active]
    facts: list[Fact] = {"observation": ctx.observations, "reason": ctx.reasons,
                         "device": ctx.devices}[kind]
    return facts


def _compare(test: _Test, fact: Fact) -> bool | None:
    """The observation test on ``fact`` (None: its value cannot be read for this test)."""
    comparator = test.test.comparator
    if test.test.value_in:
        return bool(test.values.intersection(fact.value_codes)) if fact.value_codes else None
    if comparator in ("present", "absent"):
        return comparator == "present"
    if comparator in ("positive", "negative"):
        return _sign(fact) is (comparator == "positive") if _sign(fact) is not None else None
    value = value_in(fact, test.value_set)
    if value is None or test.test.value is None:
        return None
    limit = test.test.value
    return {"<": value < limit, "<=": value <= limit, ">": value > limit, ">=": value >= limit,
            "=": value == limit}[comparator]


def _sign(fact: Fact) -> bool | None:
    """Positive (True), negative (False), or not stated, from flags or a coded value."""
    if POSITIVE_FLAGS.intersection(fact.interpretation) or \
            POSITIVE_VALUES.intersection(fact.value_codes):
        return True
    if NEGATIVE_FLAGS.intersection(fact.interpretation) or \
            NEGATIVE_VALUES.intersection(fact.value_codes):
        return False
    return None


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

