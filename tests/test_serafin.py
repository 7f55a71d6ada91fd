"""The SERAFIN-PH nomenclature: counts, hierarchy, look-ups and search (specs §9)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from mappings.serafin import FAMILIES, FHIR_SYSTEM, Concept, nomenclature

REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared/reference/serafin_ph.csv"


@pytest.fixture(scope="module")
def terms():
    return nomenclature()


# ----------------------------------------------------------------------------- counts


def test_the_nomenclature_has_107_codes(terms):
    assert len(terms) == 107
    assert len({c.code for c in terms}) == 107


@pytest.mark.parametrize("family, count", [("besoin", 35), ("prestation_directe", 37),
                                           ("prestation_indirecte", 35)])
def test_each_family_has_its_published_number_of_codes(terms, family, count):
    assert len(terms.family(family)) == count


@pytest.mark.parametrize("family, levels", [
    ("besoin", (1, 3, 16, 15)),
    ("prestation_directe", (1, 4, 11, 21)),
    ("prestation_indirecte", (1, 2, 11, 21)),
])
def test_codes_per_level_match_the_specs(terms, family, levels):
    counts = Counter(c.level for c in terms.family(family))
    assert tuple(counts[level] for level in (1, 2, 3, 4)) == levels


def test_the_family_roots_are_real_codes(terms):
    assert [terms.get(root).family for root in ("1", "2", "3")] == list(FAMILIES.values())
    assert all(terms.get(root).parent is None and terms.get(root).level == 1 for root in FAMILIES)


def test_the_code_system_is_the_ans_terminology(terms):
    assert FHIR_SYSTEM == "https://smt.esante.gouv.fr/terminologie-SERAFINPH"
    assert terms.fhir_system == FHIR_SYSTEM
    assert terms.code_system_oid == "1.2.250.1.213.3.3.60"


# ---------------------------------------------------------------- against the reference


@pytest.mark.skipif(not REFERENCE_CSV.is_file(),
                    reason=f"reference extract {REFERENCE_CSV} absent (shared/reference not checked out)")
def test_every_code_label_parent_and_family_matches_the_reference_csv(terms):
    with REFERENCE_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {r["code"]: (r["label"], r["parent"] or None, r["family"]) for r in rows}
    actual = {c.code: (c.label, c.parent, c.family) for c in terms}
    assert sorted(actual) == sorted(expected)
    differences = {code: (actual[code], expected[code]) for code in expected if actual[code] != expected[code]}
    assert differences == {}


# ------------------------------------------------------------------------- look-ups


def test_lookup_returns_the_concept_with_label_parent_family_level_and_leafness(terms):
    concept = terms.get("2.3.3.1")
    assert concept == Concept(
        code="2.3.3.1", label="Accompagnements pour mener sa vie d'élève, d'étudiant ou d'apprenti",
        parent="2.3.3", family="prestation_directe", level=4, is_leaf=True)


@pytest.mark.parametrize("code", ["9", "1.1.1.4", "2.3.3.9", "", "2.3.3.1 ", "1.01"])
def test_unknown_codes_are_not_found(terms, code):
    assert terms.get(code) is None
    assert code not in terms


def test_membership_is_by_code(terms):
    assert "1.1.10" in terms
    assert "1.1.1.10" not in terms


def test_health_needs_use_the_national_three_level_numbering(terms):
    # NOS flattens the CNSA 1.1.1.x health needs to 1.1.x (specs §9)
    assert terms.get("1.1.4").label.startswith("Besoins relatifs à la voix")
    assert [c.code for c in terms.children("1.1.1")] == []
    assert len(terms.children("1.1")) == 10


def test_children_are_listed_in_numeric_order(terms):
    assert [c.code for c in terms.children("1.1")] == [f"1.1.{i}" for i in range(1, 11)]
    assert [c.code for c in terms.children("2.3.3")] == [f"2.3.3.{i}" for i in range(1, 7)]


def test_a_leaf_has_no_children(terms):
    assert terms.children("2.4.1") == []
    assert terms.children("not-a-code") == []


def test_ancestors_go_from_the_root_down_to_the_parent(terms):
    assert [c.code for c in terms.ancestors("3.2.4.1")] == ["3", "3.2", "3.2.4"]
    assert terms.ancestors("1") == []
    assert terms.ancestors("not-a-code") == []


def test_descendants_include_every_level_depth_first(terms):
    assert [c.code for c in terms.descendants("1.3.4")] == ["1.3.4.1", "1.3.4.2"]
    assert [c.code for c in terms.descendants("2.1")] == ["2.1.1", "2.1.1.1", "2.1.1.2", "2.1.1.3", "2.1.1.4",
                                                            "2.1.2", "2.1.2.1"]
    assert len(terms.descendants("1")) == 34


def test_leaves_are_exactly_the_codes_without_children(terms):
    for concept in terms:
        assert concept.is_leaf == (terms.children(concept.code) == [])
    assert {c.code for c in terms if c.is_leaf and c.code.startswith("3.2.4")} == {"3.2.4.1", "3.2.4.2", "3.2.4.3"}
    # codes that stop at level 3 are leaves too
    assert terms.get("2.2.1").is_leaf and terms.get("3.1.6").is_leaf and terms.get("3.2.5").is_leaf


def test_parent_is_the_code_minus_its_last_segment(terms):
    for concept in terms:
        expected = concept.code.rpartition(".")[0] or None
        assert concept.parent == expected
        assert concept.level == concept.code.count(".") + 1
        assert concept.family == FAMILIES[concept.code[0]]


def test_iteration_is_in_numeric_code_order(terms):
    codes = [c.code for c in terms]
    assert codes == sorted(codes, key=lambda code: tuple(int(p) for p in code.split(".")))
    assert codes.index("1.1.9") < codes.index("1.1.10")


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("query", ["scolaire", "Scolaire", "SCOLAIRE", "scolaïre", "  scolaire  "])
def test_search_ignores_case_and_accents(terms, query):
    assert [c.code for c in terms.search(query)] == ["1.3.3.1"]


@pytest.mark.parametrize("query", ["vie d eleve", "vie d'élève", "VIE D’ÉLÈVE", "eleve apprenti"])
def test_search_matches_every_word_without_accents(terms, query):
    assert [c.code for c in terms.search(query)] == ["2.3.3.1"]


def test_search_words_may_appear_in_any_order(terms):
    assert [c.code for c in terms.search("apprenti étudiant")] == ["2.3.3.1"]


def test_search_ranks_shallow_codes_first(terms):
    hits = [c.code for c in terms.search("autonomie")]
    levels = [terms.get(code).level for code in hits]
    assert levels == sorted(levels)
    assert hits[0] == "1.2"


def test_search_can_be_limited_to_one_family(terms):
    hits = terms.search("logement", family="prestation_directe")
    assert [c.code for c in hits] == ["2.3.2", "2.3.2.1"]
    assert all(c.family == "besoin" for c in terms.search("logement", family="besoin"))
    assert terms.search("logement", family="prestation_indirecte") == []


def test_search_by_code_prefix_returns_the_code_then_its_descendants(terms):
    hits = [c.code for c in terms.search("2.3.4")]
    assert hits == ["2.3.4", "2.3.4.1", "2.3.4.2", "2.3.4.3"]


def test_code_prefix_search_stops_at_segment_boundaries(terms):
    hits = [c.code for c in terms.search("1.1.1")]
    assert hits == ["1.1.1"]  # not 1.1.10


def test_search_honours_the_limit(terms):
    assert len(terms.search("besoins", limit=5)) == 5
    assert len(terms.search("besoins")) > 5


@pytest.mark.parametrize("query", ["", "   ", "zzz-aucun-libellé"])
def test_search_with_nothing_to_match_returns_nothing(terms, query):
    assert terms.search(query) == []
