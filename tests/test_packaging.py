"""The project's ``fhir`` package lives beside the ``fhir.resources`` distribution's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_fhir_resources_and_project_fhir_import_in_one_process():
    import fhir.registry
    import fhir.resources.R4B.servicerequest as r4b_servicerequest
    import fhir.store

    assert r4b_servicerequest.ServiceRequest.__name__ == "ServiceRequest"
    assert "ServiceRequest" in fhir.registry.REGISTRY
    assert callable(fhir.store.register_write_hook)


def test_installed_entry_points_resolve_both_from_outside_the_tree(tmp_path: Path):
    """As the console script does: sys.path starts elsewhere, ``core`` comes first."""
    code = ("import core, fhir.resources.R4B.patient, fhir.store, scanpath.cli;"
            "print(fhir.store.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip().endswith("fhir/store.py")


def test_every_setting_is_documented_in_the_readme():
    """An operator finds each SCANPATH_* variable in the README's Configuration table."""
    from core.settings import OTHER_VARIABLES, Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = [f"SCANPATH_{field.upper()}" for field in Settings.model_fields]
    missing = [name for name in [*names, *OTHER_VARIABLES[:1]] if f"| `{name}` |" not in readme]
    assert not missing
