"""Loading: honest errors pinned to file:line:column, all at once, bad files refused cleanly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lawful.manifest import ManifestError, load_manifest, load_manifest_text
from lawful.manifest.duration import Duration
from tests.conftest import KERF

MINIMAL = """\
lawful: 1
organisation:
  name: Acme
  controllers:
    - id: acme
      name: Acme B.V.
      address: Main street 1, Amsterdam
      country: NL
"""


def problems(text: str, name: str = "m.yaml") -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest_text(text, name)
    return [str(p) for p in info.value.problems]


def test_kerf_loads_with_every_section() -> None:
    m = load_manifest(KERF)
    assert len(m.activities) == 14
    assert {r.id for r in m.recipients} >= {"hosting", "mailer", "manufacturers"}
    invoices = next(r for r in m.retention if r.id == "invoices")
    assert invoices.keep == Duration(7, "years") and invoices.after.value == "financial_year_end"
    assert m.systems[0].tables[0].fields[0].identity == "email"
    assert m.notice.effective == dt.date(2026, 1, 1)


def test_minimal_manifest_loads() -> None:
    m = load_manifest_text(MINIMAL)
    assert m.organisation.controllers[0].country == "NL"
    assert m.rights.response_time == Duration(1, "months")


def test_unknown_key_points_at_the_key_with_a_suggestion() -> None:
    text = MINIMAL + "activities:\n  - id: a\n    name: A\n    purpose: p\n    purpse: q\n"
    (only,) = problems(text)
    assert only.startswith("m.yaml:13:5: activities[0].purpse: unknown key 'purpse'")
    assert "did you mean purpose?" in only


def test_wrong_type_names_the_value() -> None:
    text = MINIMAL.replace("country: NL", "country: [NL]")
    (only,) = problems(text)
    assert "m.yaml:8:16: organisation.controllers[0].country" in only


def test_country_name_suggests_code() -> None:
    (only,) = problems(MINIMAL.replace("country: NL", "country: Netherlands"))
    assert "did you mean NL?" in only


def test_undeclared_references_all_reported_with_suggestions() -> None:
    text = MINIMAL + """\
subjects:
  - {id: customer, name: Customers, fideslang: custmer}
activities:
  - id: a
    name: A
    purpose: p
    subjects: [customr]
    categories: [user.contact.emial, email]
    legal_bases:
      - {basis: consent, consent_purpose: newsleter}
recipients:
  - {id: r, name: R, role: processor, activities: [b]}
retention:
  - {id: k, activities: [a], keep: 1 year}
systems:
  - id: db
    url: sqlite:///x.db
    tables:
      - name: t
        retention: [kk]
        fields: [{name: e, category: user.contact.email, retention: k2}]
        references: [{field: x_id, to: nowhere.id}]
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "did you mean user.contact.email?" in joined  # both the typo and the bare "email"
    assert sum("did you mean user.contact.email?" in p for p in found) == 2
    assert "unknown subject 'customr'" in joined and "did you mean customer?" in joined
    assert "unknown fideslang data subject 'custmer'" in joined
    assert "unknown consent purpose 'newsleter'" in joined
    assert "unknown activity 'b'" in joined
    assert "unknown retention rule 'kk'" in joined and "unknown retention rule 'k2'" in joined
    assert "unknown table 'nowhere'" in joined
    assert len(found) == 9
    # every problem is pinned to a real line of the file
    assert all(p.split(":")[1].isdigit() and int(p.split(":")[1]) > 8 for p in found)


def test_duplicate_ids_and_duplicate_keys() -> None:
    text = MINIMAL + "subjects:\n  - {id: c, name: A}\n  - {id: c, name: B}\n"
    (only,) = problems(text)
    assert "duplicate subject 'c'" in only and ":11:" in only
    dup_key = MINIMAL + "notice:\n  version: '1'\n  version: '2'\n"
    (only,) = problems(dup_key)
    assert "duplicate key 'version' (first at line 10)" in only and ":11:3:" in only


def test_category_parent_cycle() -> None:
    text = MINIMAL + """\
categories:
  - {id: a.one, name: One, parent: a.two}
  - {id: a.two, name: Two, parent: a.one}
"""
    found = problems(text)
    assert len(found) == 2 and all("cycle of parents" in p for p in found)


def test_unknown_fideslang_category_and_data_use() -> None:
    text = MINIMAL + """\
activities:
  - {id: a, name: A, purpose: p, data_use: marketing.comunications, categories: [user.nme]}
"""
    joined = "\n".join(problems(text))
    assert "did you mean marketing.communications?" in joined
    assert "did you mean user.name?" in joined


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("   \n# only a comment\n", "holds no YAML document"),
    ("organisation: [unclosed\n", "malformed YAML"),
    ("key: value\n  bad indent: x\n", "malformed YAML"),
    ("- a list\n- not a mapping\n", "must be a mapping"),
    ("a: 1\n---\nb: 2\n", "several YAML documents"),
    ("a: !!python/object:os.system ls\n", "cannot read value"),
    ("a: &x {b: 1}\nc:\n  <<: *x\n", "merge keys"),
])
def test_malformed_files_are_refused(text: str, message: str) -> None:
    (only,) = problems(text)
    assert message in only


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    (only,) = problems("\n".join(lines) + "\n")
    assert "expands to more than" in only


def test_deep_nesting_is_refused() -> None:
    (only,) = problems("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nesting deeper" in only


def test_ten_megabyte_file_is_refused_without_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (10 * 1024 * 1024) + "\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(big)
    assert "MB" in str(info.value) and str(big) in str(info.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "absent.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(binary)


def test_missing_required_key_is_named() -> None:
    text = MINIMAL.replace("      name: Acme B.V.\n", "")
    (only,) = problems(text)
    assert "missing required key 'name'" in only and "organisation.controllers[0]" in only


@given(st.sampled_from(["days", "day", "weeks", "months", "month", "years"]),
       st.integers(min_value=0, max_value=500))
def test_duration_round_trips(unit: str, count: int) -> None:
    parsed = Duration.parse(f"{count} {unit}")
    assert Duration.parse(str(parsed)) == parsed
    assert parsed.count == count


@settings(max_examples=60)
@given(st.text(min_size=1, max_size=30))
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    try:
        load_manifest_text(MINIMAL + text)
    except ManifestError as exc:
        assert exc.problems and all(p.line >= 1 for p in exc.problems)


@settings(max_examples=40)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12))
def test_arbitrary_structures_under_organisation_give_problems_not_crashes(value: Any) -> None:
    text = yaml.safe_dump({"lawful": 1, "organisation": value, "activities": value})
    with pytest.raises(ManifestError):
        load_manifest_text(text)


def test_shape_and_reference_problems_are_reported_together() -> None:
    text = MINIMAL + """\
subjects:
  - {id: customer, name: Customers}
activities:
  - {id: broken, name: B, purpose: p, legal_bases: [consnt]}
  - {id: a, name: A, purpose: p, subjects: [custmer], categories: [user.contact.emial]}
recipients:
  - {id: r, name: R, role: procesor}
  - {id: s, name: S, role: processor, activities: [nope], country: Nowhereland}
"""
    found = problems(text)
    joined = "\n".join(found)
    assert "activities[0].legal_bases[0].basis: 'consnt'" in joined
    assert "recipients[0].role: 'procesor'" in joined
    assert "recipients[1].country: 'Nowhereland'" in joined
    # the items after a broken one keep their own index, line and column
    assert "m.yaml:13:45: activities[1].subjects[0]: unknown subject 'custmer'" in joined
    assert "activities[1].categories[0]: unknown data category 'user.contact.emial'" in joined
    assert "m.yaml:16:52: recipients[1].activities[0]: unknown activity 'nope'" in joined
    assert len(found) == 6
