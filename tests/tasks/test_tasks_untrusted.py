"""A user's structure dict can never make the loader import a module of its choosing.

pymatgen's decoder (MontyDecoder, also run by `PeriodicSite.from_dict` on site
properties) imports whatever ``@module`` a dict names. The planted module below
records its import in a flag file; every crafted row must be skipped with the
usual bad-row warning (or stop a strict load) without it ever being imported.
"""

from __future__ import annotations

import csv
import json
import sys
import uuid
from pathlib import Path

import pytest
from helpers import recording_reporter
from pymatgen.core import Lattice, Species, Structure

from crystalbench.contract.context import RunContext
from crystalbench.contract.errors import BadInputError
from crystalbench.tasks import readers as R
from crystalbench.tasks import user as U


class Planted:
    """A module on sys.path that writes `flag` when imported."""

    def __init__(self, folder: Path, stem: str) -> None:
        self.name = f"{stem}_{uuid.uuid4().hex[:8]}"
        self.flag = folder / f"{self.name}.imported"
        (folder / f"{self.name}.py").write_text(
            f"from pathlib import Path\nPath({str(self.flag)!r}).write_text('imported')\nclass Gadget:\n    pass\n"
        )

    @property
    def imported(self) -> bool:
        return self.flag.exists() or self.name in sys.modules


@pytest.fixture
def planted(tmp_path, monkeypatch) -> Planted:
    R.clear_memos()
    monkeypatch.syspath_prepend(str(tmp_path))
    return Planted(tmp_path, "cb_planted")


@pytest.fixture
def reported(tmp_path) -> tuple[RunContext, list[str]]:
    reporter, lines = recording_reporter()
    return RunContext(data_dir=tmp_path, cache_dir=tmp_path / "cache", reporter=reporter), lines


def nacl(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def crafted(module: str) -> dict[str, dict]:
    """Structure dicts that each name `module` somewhere pymatgen would decode or trust."""
    top = nacl().as_dict()
    top["@module"] = module
    nested = nacl(5.5).as_dict()
    nested["sites"][0]["properties"] = {"magmom": {"@module": module, "@class": "Gadget"}}
    callable_ = nacl(5.4).as_dict()
    callable_["sites"][1]["properties"] = {"x": {"@module": module, "@callable": "Gadget"}}
    entry = {"@module": module, "@class": "Gadget", "structure": nacl(5.3).as_dict(), "energy": -1.0}
    return {"top": top, "nested": nested, "callable": callable_, "entry": entry}


@pytest.mark.filterwarnings("ignore")
def test_the_planted_module_would_be_imported_by_pymatgens_decoder(tmp_path, monkeypatch):
    """The threat is real: decoding a crafted site property with pymatgen imports the module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = Planted(tmp_path, "cb_probe")
    try:
        Structure.from_dict(crafted(probe.name)["nested"])
    except Exception:
        pass
    assert probe.imported
    sys.modules.pop(probe.name, None)


def test_crafted_dicts_in_a_csv_are_skipped_rows_and_import_nothing(tmp_path, planted, reported):
    ctx, err = reported
    p = tmp_path / "d.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "y"])
        w.writerow(["good", repr(nacl().as_dict()), 1.0])
        for i, (kind, d) in enumerate(crafted(planted.name).items()):
            w.writerow([kind, repr(d) if i % 2 else json.dumps(d), 2.0 + i])
        w.writerow(["good2", json.dumps(nacl(6.0).as_dict()), 0.5])
    data = U.load_user_dataset(p, ctx, target="y")
    assert data.ids == ("good", "good2")
    assert {b["id"] for b in data.meta["skipped"]} == {"top", "nested", "callable", "entry"}
    assert {b["kind"] for b in data.meta["skipped"]} == {"foreign object"}
    assert any("line 3 (id 'top'): structure dict names module" in line for line in err)
    assert not planted.imported


def test_crafted_json_records_and_strict_mode(tmp_path, planted, reported):
    ctx, _ = reported
    recs = [{"id": "good", "structure": nacl().as_dict(), "y": 1.0}]
    recs += [{"id": kind, "structure": d, "y": 2.0} for kind, d in crafted(planted.name).items()]
    recs.append({"id": "good2", "structure": nacl(6.0).as_dict(), "y": 3.0})
    p = tmp_path / "r.json"
    p.write_text(json.dumps(recs))
    with pytest.raises(BadInputError, match=r"record 2 \(id 'top'\): structure dict names module .*strict mode"):
        U.load_user_dataset(p, ctx, target="y", strict=True)
    data = U.load_user_dataset(p, ctx, target="y", quiet=True)
    assert data.ids == ("good", "good2") and data.meta["skipped_count"] == 4
    assert not planted.imported


def test_crafted_entries_of_a_structure_collection_are_skipped(tmp_path, planted, reported, data_dir):
    from crystalbench.tasks.collection import load_collection

    ctx, err = reported
    mapping = {"ok-1": nacl().as_dict(), "ok-2": nacl(6.1).as_dict(), **crafted(planted.name)}
    p = tmp_path / "collection.json"
    p.write_text(json.dumps(mapping))
    coll = load_collection(ctx.with_(options={"learnability_structures": str(p)}))
    assert coll.ids == ("ok-1", "ok-2")
    assert any("skipped 4 unusable entries" in line and "top (" in line for line in err)
    assert not planted.imported


def test_only_structure_dicts_are_decoded_but_real_pymatgen_dicts_still_are():
    from monty.json import MontyEncoder
    from pymatgen.electronic_structure.core import Magmom

    with pytest.raises(R.RowError, match="Molecule"):
        R.parse_structure({"@module": "pymatgen.core.structure", "@class": "Molecule", "sites": [], "lattice": {}})
    s = Structure(Lattice.cubic(4), [Species("Fe", 2), "O"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                  site_properties={"magmom": [Magmom([0, 0, 1]), Magmom([0, 0, 0])]})
    text = json.dumps(s.as_dict(), cls=MontyEncoder)  # Magmom + numpy arrays nested in site properties
    assert R.parse_structure(text).composition.reduced_formula == "FeO"
    odd = nacl().as_dict()
    odd["sites"][0]["properties"] = {"x": {"@module": ["not", "a", "name"], "@class": {"x": 1}}}
    with pytest.raises(R.RowError, match="contains an object of module"):
        R.parse_structure(odd)
    legacy = nacl().as_dict()  # matminer's older dicts tag species with their periodic_table class
    legacy["sites"][0]["species"][0].update({"@module": "pymatgen.core.periodic_table", "@class": "Element"})
    assert len(R.parse_structure(repr(legacy))) == 2
