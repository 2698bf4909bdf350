"""Decisions per second per core: the shipped pack against the same pack grown to 200 rules.

Run: ``.venv/bin/python bench/rules_decisions.py [--before REF]``. Contexts
come from every vignette (shared and ours); each decision is
``Engine.decide`` with its safety checks and trace. The extra rules are
copies of shipped rules at a lower priority, so they are candidates for the
same reasons and are evaluated in full: a worst case for the reason index.
The baseline is the shipped pack in the same process; ``--before`` also runs
the pack as it was at a git revision (default: the 67-rule pack of 0dd578c)
on the same contexts and engine, for the ratio against the earlier pack.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core  # noqa: E402,F401
from rules.context import PatientContext, build_context, bundle_resources, today_utc  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.packs import (  # noqa: E402
    PACKS_DIR,
    LoadedPack,
    active_packs,
    catalogue,
    parse_pack,
    safety_config,
)
from rules.schema import Pack  # noqa: E402
from tests.rules.vignettes import load, vignette_files  # noqa: E402

TARGET_RULES = 200
SECONDS = 3.0


def contexts() -> list[PatientContext]:
    built = []
    for path in vignette_files():
        request = load(path, today_utc())["request"]
        order = bundle_resources(request["context"]["draftOrders"])[0]
        resources = [r for bundle in request.get("prefetch", {}).values()
                     for r in bundle_resources(bundle)]
        built.append(build_context(order, resources, today_utc()))
    return built


def grown(loaded: LoadedPack, size: int) -> LoadedPack:
    rules = list(loaded.pack.rules)
    index = 0
    while len(rules) < size:
        source = loaded.pack.rules[index % len(loaded.pack.rules)]
        rules.append(source.model_copy(update={"id": f"{source.id}-copy-{index}",
                                               "priority": max(0, source.priority - 1)}))
        index += 1
    pack = Pack.model_validate({**loaded.pack.model_dump(), "rules": [r.model_dump()
                                                                       for r in rules]})
    return LoadedPack(pack, f"{loaded.version}-x{size}", loaded.source)


def rate(engine: Engine, batch: list[PatientContext]) -> float:
    """Decisions per second on one core, over about SECONDS of work."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        for ctx in batch:
            engine.decide(ctx)
        done += len(batch)
    return done / (time.perf_counter() - started)


def earlier(ref: str) -> LoadedPack | None:
    """The shipped pack as it was at git revision ``ref`` (None without git or that file)."""
    path = (PACKS_DIR / "uk-gp-imaging.yaml").relative_to(Path(__file__).resolve().parent.parent)
    try:
        text = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True,
                              check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return parse_pack(text, f"{path}@{ref}", catalogue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="0dd578c",
                        help="git revision of the earlier pack to compare with")
    args = parser.parse_args()
    shipped = active_packs()[0]
    batch = contexts()
    base = Engine(shipped, catalogue(), safety_config())
    big = Engine(grown(shipped, TARGET_RULES), catalogue(), safety_config())
    old = earlier(args.before)
    rate(base, batch[:10])  # warm up
    baseline, large = rate(base, batch), rate(big, batch)
    print(f"contexts: {len(batch)} vignettes; one process, one core")
    print(f"{'pack':<28}{'rules':>7}{'decisions/s':>14}{'ratio':>8}")
    print(f"{'shipped (baseline)':<28}{len(shipped.pack.rules):>7}{baseline:>14,.0f}{1:>8.2f}")
    print(f"{'grown':<28}{TARGET_RULES:>7}{large:>14,.0f}{large / baseline:>8.2f}")
    if old is not None:
        before = rate(Engine(old, catalogue(), safety_config()), batch)
        label = f"pack at {args.before}"
        print(f"{label:<28}{len(old.pack.rules):>7}{before:>14,.0f}{before / baseline:>8.2f}")
        print(f"grown {TARGET_RULES} rules vs the pack at {args.before}: "
              f"{large / before:.2f}")
    print(f"target >= 10,000 decisions/s/core with {TARGET_RULES} rules: "
          f"{'met' if large >= 10_000 else 'MISSED'}")


if __name__ == "__main__":
    main()
