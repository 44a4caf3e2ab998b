"""PII sanitization of CSV datasets (modelops.domain.sanitize) and the growers demo data."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from examples.governance.growers import DEMO_SANITIZE_CONFIG, growers_csv
from modelops.domain import sanitize
from modelops.domain.entities import PiiFlag, Transformation
from modelops.domain.sanitize import (
    CODE_REF,
    SANITIZER_FORMAT,
    ColumnRule,
    SanitizeConfig,
    SanitizeError,
    SanitizeResult,
    code_checksum,
    key_label,
    sanitize_csv,
)
from tests.unit.test_example_training import run_training

PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")


class FakeKms:
    """derive_key as KMS GenerateMac would do it, with a known root key; counts the calls."""

    def __init__(self, root: bytes = b"k") -> None:
        self.root = root
        self.labels: list[bytes] = []

    def __call__(self, label: bytes) -> bytes:
        self.labels.append(label)
        return hmac.new(self.root, label, "sha256").digest()


def derive(label: bytes) -> bytes:
    return hmac.new(b"k", label, "sha256").digest()


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def read(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def config(columns: dict[str, dict[str, Any]], **extra: Any) -> SanitizeConfig:
    return SanitizeConfig.model_validate({"columns": columns, "pseudonymScope": "people"} | extra)


FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
OUTWARD = ("SW1A", "EC1A", "M1", "B33", "LS1")


def people(n: int = 300, seed: int = 1) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            {
                "name": f"{first} {last}",
                "email": f"{first}.{last}{i}@mail.example.org".lower(),
                "phone": f"+44 7700 {rng.randint(0, 999999):06d}",
                "age": str(rng.randint(18, 90)),
                "postcode": f"{rng.choice(OUTWARD)} {rng.randint(1, 9)}AB",
                "score": f"{rng.random():.3f}",
            }
        )
    return rows


PEOPLE_RULES: dict[str, dict[str, Any]] = {
    "name": {"action": "drop", "piiFlag": "name"},
    "email": {"action": "pseudonymise", "piiFlag": "email"},
    "phone": {"action": "pseudonymise", "piiFlag": "phone"},
    "age": {"action": "generalise", "piiFlag": "demographic", "kind": "age", "width": 20},
    "postcode": {"action": "generalise", "piiFlag": "location", "kind": "postcode"},
    "score": {"action": "keep"},
}


def people_csv(rows: list[dict[str, str]]) -> bytes:
    header = list(rows[0])
    return csv_bytes(header, [[row[c] for c in header] for row in rows])


# --- what leaves ------------------------------------------------------------------------------


def test_no_identifier_value_survives_in_the_output() -> None:
    rows = people()
    kms = FakeKms()

    result = sanitize_csv(
        people_csv(rows), config(PEOPLE_RULES, quasiIdentifiers=["age", "postcode"]), kms
    )

    for row in rows:
        for column in ("name", "email", "phone"):
            assert row[column].encode() not in result.data, (column, row[column])
        assert row["email"].split("@")[0].encode() not in result.data
        assert row["phone"].replace(" ", "").encode() not in result.data
    assert result.outputColumns == ("email", "phone", "age", "postcode", "score")
    out = read(result.data)
    assert len(out) == len(rows)
    assert all(PSEUDONYM.match(r["email"]) and PSEUDONYM.match(r["phone"]) for r in out)
    assert [r["score"] for r in out] == [r["score"] for r in rows]  # kept, in input order
    assert {r["postcode"] for r in out} <= set(OUTWARD)
    assert {r["age"] for r in out} <= {"0", "20", "40", "60", "80"}


def test_derive_key_is_called_once_per_pseudonymised_column_with_the_documented_label() -> None:
    kms = FakeKms()

    sanitize_csv(people_csv(people()), config(PEOPLE_RULES), kms)

    assert kms.labels == [
        b"modelops-sanitize/1\x00people\x00email",
        b"modelops-sanitize/1\x00people\x00phone",
    ]
    assert key_label("people", "email") == kms.labels[0]


def test_pseudonym_is_the_truncated_hmac_of_the_stripped_value_under_the_column_key() -> None:
    raw = csv_bytes(["email"], [["  ada@example.org "], [""]])

    result = sanitize_csv(raw, config({"email": {"action": "pseudonymise"}}), derive)

    column_key = hmac.new(b"k", key_label("people", "email"), "sha256").digest()
    expected = hmac.new(column_key, b"ada@example.org", hashlib.sha256).hexdigest()[:32]
    assert result.data == f'email\n{expected}\n""\n'.encode()
    assert read(result.data) == [{"email": expected}, {"email": ""}]  # empty stays empty


def test_pseudonyms_are_stable_within_a_scope_and_differ_across_scopes() -> None:
    raw = csv_bytes(
        ["email", "manager_email"],
        [
            ["ada@example.org", "ada@example.org"],
            ["alan@example.org", "x@example.org"],
            ["ada@example.org", "y@example.org"],
        ],
    )
    rules = {"email": {"action": "pseudonymise"}, "manager_email": {"action": "pseudonymise"}}

    first = read(sanitize_csv(raw, config(rules), derive).data)
    again = read(sanitize_csv(raw, config(rules), derive).data)
    other = read(sanitize_csv(raw, config(rules, pseudonymScope="other"), derive).data)

    assert first == again
    assert first[0]["email"] == first[2]["email"] != first[1]["email"]
    assert first[0]["email"] != first[0]["manager_email"]  # a key per column
    assert {r["email"] for r in first}.isdisjoint(r["email"] for r in other)


def test_pseudonyms_depend_on_the_key() -> None:
    raw = people_csv(people(20))
    rules = config(PEOPLE_RULES)

    one = read(sanitize_csv(raw, rules, FakeKms(b"k")).data)
    two = read(sanitize_csv(raw, rules, FakeKms(b"another root key")).data)

    assert {r["email"] for r in one}.isdisjoint(r["email"] for r in two)
    assert [r["score"] for r in one] == [r["score"] for r in two]


def test_a_short_derived_key_is_refused() -> None:
    with pytest.raises(SanitizeError, match="at least 16 bytes"):
        sanitize_csv(people_csv(people(5)), config(PEOPLE_RULES), lambda label: b"short")


def test_output_is_deterministic() -> None:
    raw = people_csv(people())
    rules = config(PEOPLE_RULES, quasiIdentifiers=["age", "postcode"], suppressBelowK=True)

    first = sanitize_csv(raw, rules, FakeKms())
    second = sanitize_csv(raw, rules, FakeKms())

    assert first.data == second.data
    assert first.report == second.report
    assert first.params() == second.params()
    assert b"\r" not in first.data and first.data.endswith(b"\n")
    assert first.data.split(b"\n")[0] == b"email,phone,age,postcode,score"


# --- the config and the CSV fail closed ----------------------------------------------------------


def test_unlisted_column_is_refused() -> None:
    rows = people(5)
    rules = {k: v for k, v in PEOPLE_RULES.items() if k != "phone"}

    with pytest.raises(SanitizeError, match=r"column\(s\) without a rule: phone"):
        sanitize_csv(people_csv(rows), config(rules), derive)


def test_rule_for_a_column_not_in_the_csv_is_refused() -> None:
    with pytest.raises(SanitizeError, match=r"not in the CSV: ssn"):
        sanitize_csv(
            people_csv(people(5)), config(PEOPLE_RULES | {"ssn": {"action": "drop"}}), derive
        )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"action": "keep", "kind": "age"}, "for the generalise action only"),
        ({"action": "drop", "width": 3}, "for the generalise action only"),
        ({"action": "generalise"}, "needs a kind"),
        ({"action": "generalise", "kind": "number"}, "needs a band width"),
        ({"action": "generalise", "kind": "date", "width": 2}, "width is not used"),
        ({"action": "generalise", "kind": "postcode", "topCode": 3}, "topCode is for age"),
        ({"action": "generalise", "kind": "age", "width": 0}, "greater than or equal to 1"),
        ({"action": "mask"}, "action"),
    ],
)
def test_inconsistent_column_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ColumnRule.model_validate(rule)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"quasiIdentifiers": ["name"]}, "must be kept or generalised, not drop"),
        ({"quasiIdentifiers": ["email"]}, "must be kept or generalised, not pseudonymise"),
        ({"quasiIdentifiers": ["zip"]}, "has no column rule"),
        ({"quasiIdentifiers": ["age", "age"]}, "listed twice"),
        ({"kTarget": 1}, "greater than or equal to 2"),
        ({"pseudonymScope": ""}, "at least 1 character"),
    ],
)
def test_inconsistent_configs_are_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(PEOPLE_RULES, **extra)


def test_a_config_that_drops_everything_is_refused() -> None:
    with pytest.raises(ValidationError, match="every column is dropped"):
        config({"name": {"action": "drop"}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "no header row"),
        (b"name,age\nAda,36\nAlan\n", r"row 2 \(line 3\): 1 fields, expected 2"),
        (b"name,name\nAda,Ada\n", "repeats column"),
        (b"name,age\n\xff,36\n", "not UTF-8"),
        (b'name,age\n"Ada"x,36\n', "cannot be parsed"),
    ],
)
def test_malformed_csv_is_refused(raw: bytes, message: str) -> None:
    rules = {"name": {"action": "drop"}, "age": {"action": "keep"}}

    with pytest.raises(SanitizeError, match=message):
        sanitize_csv(raw, config(rules), derive)


def test_unparsable_age_names_column_and_row_but_not_the_value() -> None:
    raw = csv_bytes(["name", "age"], [["Ada", "36"], ["Alan", "41"], ["Grace", "eighty-five"]])
    rules = {"name": {"action": "drop"}, "age": {"action": "generalise", "kind": "age"}}

    with pytest.raises(SanitizeError) as caught:
        sanitize_csv(raw, config(rules), derive)

    message = str(caught.value)
    assert "column 'age', row 3 (line 4)" in message
    assert "eighty-five" not in message and "Grace" not in message


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("age", "-3"),
        ("age", "nan"),
        ("age", "1e3"),
        ("number", "12,5"),
        ("postcode", "SW1"),
        ("postcode", "SW1A 1AA 1"),
        ("postcode", "SW-1 1AA"),
        ("date", "2024-02-30"),
        ("date", "20240201"),
    ],
)
def test_values_a_generaliser_cannot_read_are_refused(kind: str, value: str) -> None:
    rule: dict[str, Any] = {"action": "generalise", "kind": kind}
    if kind == "number":
        rule["width"] = 10
    with pytest.raises(SanitizeError, match=f"column 'v', row 1 \\(line 2\\).*{kind}"):
        sanitize_csv(csv_bytes(["v"], [[value]]), config({"v": rule}), derive)


# --- generalisation and k ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        (
            {"kind": "age"},
            ["0", "9", "10", "34.9", " 35 ", "+41", ""],
            ["0", "0", "10", "30", "30", "40", ""],
        ),
        (
            {"kind": "age", "width": 20, "topCode": 80},
            ["18", "39.5", "79", "80", "104"],
            ["0", "20", "60", "80", "80"],
        ),
        (
            {"kind": "number", "width": 1000},
            ["12345.6", "999", "-1", "-1000", "0"],
            ["12000", "0", "-1000", "-1000", "0"],
        ),
        (
            {"kind": "postcode"},
            ["SW1A 1AA", "sw1a1aa", " M1  1AE ", "EC1A 1BB"],
            ["SW1A", "SW1A", "M1", "EC1A"],
        ),
        ({"kind": "postcode", "width": 3}, ["SW1A 1AA", "M1 1AE"], ["SW1", "M1"]),
        ({"kind": "date"}, ["1984-02-29", "2024-12-31", ""], ["1984", "2024", ""]),
    ],
)
def test_generalisers(rule: dict[str, Any], values: list[str], expected: list[str]) -> None:
    raw = csv_bytes(["v"], [[v] for v in values])

    result = sanitize_csv(raw, config({"v": {"action": "generalise"} | rule}), derive)

    assert [r["v"] for r in read(result.data)] == expected


# A hand-counted table: (age, postcode) pairs are all distinct as given; after generalising
# (age to 10-year bands, postcode to the outward code) rows 1-3 share (30, SW1A) and rows 4-5
# share (50, EC1A), while rows 6 and 7 are alone in their groups.
SMALL = [
    ["34", "SW1A 1AA", "a"],
    ["36", "SW1A 2BB", "b"],
    ["31", "sw1a 9zz", "c"],
    ["52", "EC1A 1BB", "d"],
    ["58", "EC1A1BB", "e"],
    ["45", "M1 1AE", "f"],
    ["71", "SW1A 1AA", "g"],
]
SMALL_RULES: dict[str, dict[str, Any]] = {
    "age": {"action": "generalise", "piiFlag": "demographic", "kind": "age"},
    "postcode": {"action": "generalise", "piiFlag": "location", "kind": "postcode"},
    "note": {"action": "keep"},
}


def small(rows: list[list[str]], **extra: Any) -> SanitizeResult:
    return sanitize_csv(
        csv_bytes(["age", "postcode", "note"], rows),
        config(SMALL_RULES, quasiIdentifiers=["age", "postcode"], kTarget=2, **extra),
        derive,
    )


def test_generalising_age_and_postcode_raises_k_and_report_counts_unique_rows() -> None:
    result = small(SMALL[:5])
    report = result.report

    assert [(r["age"], r["postcode"]) for r in read(result.data)] == [
        ("30", "SW1A"), ("30", "SW1A"), ("30", "SW1A"), ("50", "EC1A"), ("50", "EC1A"),
    ]  # fmt: skip
    assert report.rows == 5 and report.kTarget == 2
    assert report.quasiIdentifiers == ("age", "postcode")
    assert report.before.model_dump() == {
        "equivalenceClasses": 5,
        "minK": 1,
        "uniqueRows": 5,
        "uniqueFraction": 1.0,
        "rowsBelowK": 5,
    }
    assert report.after.model_dump() == {
        "equivalenceClasses": 2,
        "minK": 2,
        "uniqueRows": 0,
        "uniqueFraction": 0.0,
        "rowsBelowK": 0,
    }
    assert report.suppressedRows == 0
    assert report.kAchieved


def test_report_counts_the_groups_left_below_k_without_suppression() -> None:
    report = small(SMALL).report

    assert report.before.model_dump() == {
        "equivalenceClasses": 7,
        "minK": 1,
        "uniqueRows": 7,
        "uniqueFraction": 1.0,
        "rowsBelowK": 7,
    }
    assert report.after.model_dump() == {
        "equivalenceClasses": 4,
        "minK": 1,
        "uniqueRows": 2,
        "uniqueFraction": 2 / 7,
        "rowsBelowK": 2,
    }
    assert report.suppressedRows == 0
    assert not report.kAchieved


def test_suppression_removes_rows_below_k() -> None:
    result = small(SMALL, suppressBelowK=True)
    report = result.report

    assert [r["note"] for r in read(result.data)] == ["a", "b", "c", "d", "e"]
    assert report.rows == 7
    assert report.suppressedRows == 2
    assert report.before.uniqueRows == 7
    assert report.after.model_dump() == {
        "equivalenceClasses": 2,
        "minK": 2,
        "uniqueRows": 0,
        "uniqueFraction": 0.0,
        "rowsBelowK": 0,
    }
    assert report.kAchieved


def test_without_quasi_identifiers_or_rows_k_is_vacuous_and_nothing_is_suppressed() -> None:
    rules = config(SMALL_RULES, suppressBelowK=True)
    result = sanitize_csv(csv_bytes(["age", "postcode", "note"], SMALL), rules, derive)

    assert result.report.suppressedRows == 0
    assert result.report.kAchieved
    assert result.report.after.minK == 0 and result.report.after.equivalenceClasses == 0
    assert len(read(result.data)) == 7

    empty = small([])
    assert empty.report.kAchieved and empty.report.rows == 0
    assert empty.data == b"age,postcode,note\n"


# --- what personal data is left -----------------------------------------------------------------


def test_remaining_flags() -> None:
    rules = SMALL_RULES | {
        "note": {"action": "keep", "piiFlag": "health"},
        "name": {"action": "drop", "piiFlag": "name"},
        "email": {"action": "pseudonymise", "piiFlag": "email"},
        "born": {"action": "generalise", "piiFlag": "other", "kind": "date"},
    }
    rows = [[*row, f"N{i}", f"n{i}@example.org", "1980-01-02"] for i, row in enumerate(SMALL)]
    raw = csv_bytes(["age", "postcode", "note", "name", "email", "born"], rows)

    def run(**extra: Any) -> SanitizeResult:
        rules_config = config(rules, quasiIdentifiers=["age", "postcode"], kTarget=2, **extra)
        return sanitize_csv(raw, rules_config, derive)

    missed, achieved = run(), run(suppressBelowK=True)

    assert not missed.report.kAchieved
    # Kept stays; generalised quasi-identifiers stay while k is missed; 'born' is generalised
    # but no quasi-identifier, so k says nothing about it and its flag stays either way.
    assert missed.remainingPiiFlags == (
        PiiFlag.DEMOGRAPHIC, PiiFlag.HEALTH, PiiFlag.LOCATION, PiiFlag.OTHER,
    )  # fmt: skip
    assert achieved.report.kAchieved
    assert achieved.remainingPiiFlags == (PiiFlag.HEALTH, PiiFlag.OTHER)
    assert achieved.droppedColumns == ("name",)
    assert achieved.pseudonymisedColumns == ("email",)
    assert achieved.generalisedColumns == ("age", "postcode", "born")


def test_params_fit_a_lineage_transformation() -> None:
    result = small(SMALL, suppressBelowK=True)

    step = Transformation(
        name="sanitize", codeRef=CODE_REF, checksum=code_checksum(), params=result.params()
    )

    assert step.params["format"] == SANITIZER_FORMAT
    assert step.params["generalised"] == "age,postcode"
    assert step.params["dropped"] == "" and step.params["pseudonymised"] == ""
    assert step.params["kAchieved"] is True
    assert (step.params["minKBefore"], step.params["minKAfter"]) == (1, 2)
    assert (step.params["uniqueFractionBefore"], step.params["uniqueFractionAfter"]) == (1.0, 0.0)
    assert step.params["suppressedRows"] == 2
    assert step.params["kTarget"] == 2
    assert re.fullmatch(r"[0-9a-f]{64}", str(step.params["configSha256"]))


def test_code_checksum_is_the_module_source_digest() -> None:
    source = Path(sanitize.__file__).read_bytes()

    assert code_checksum() == hashlib.sha256(source).hexdigest()
    assert sanitize.__name__ == CODE_REF


# --- the growers demo dataset -------------------------------------------------------------------


def test_growers_csv_is_deterministic_per_seed_and_holds_personal_data() -> None:
    raw = growers_csv()
    rows = read(raw)

    assert raw == growers_csv(7) != growers_csv(8)
    assert list(rows[0]) == [
        "grower_name", "grower_email", "grower_age", "postcode",
        "sepal_length", "sepal_width", "petal_length", "petal_width", "species",
    ]  # fmt: skip
    assert len(rows) == 150
    assert len({r["grower_email"] for r in rows}) == 150
    assert all(18 <= int(r["grower_age"]) <= 90 for r in rows)
    assert all(re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}", r["postcode"]) for r in rows)
    assert {r["species"] for r in rows} == {"setosa", "versicolor", "virginica"}


@pytest.fixture(scope="module")
def sanitized_growers() -> tuple[list[dict[str, str]], SanitizeResult]:
    raw = growers_csv()
    return read(raw), sanitize_csv(raw, SanitizeConfig.model_validate(DEMO_SANITIZE_CONFIG), derive)


def test_demo_config_makes_growers_k_anonymous_with_no_personal_data_left(
    sanitized_growers: tuple[list[dict[str, str]], SanitizeResult],
) -> None:
    rows, result = sanitized_growers
    report = result.report

    assert report.kAchieved and report.kTarget == 5
    assert report.after.minK >= 5 and report.after.uniqueRows == 0
    assert report.before.minK == 1
    assert 0 < report.suppressedRows < len(rows) // 2
    assert result.remainingPiiFlags == ()
    assert result.outputColumns[:3] == ("grower_email", "grower_age", "postcode")
    for row in rows:
        assert row["grower_name"].encode() not in result.data
        assert row["grower_email"].encode() not in result.data
    out = read(result.data)
    assert {r["species"] for r in out} == {"setosa", "versicolor", "virginica"}


def test_sanitized_growers_train_once_the_non_numeric_columns_are_excluded(
    sanitized_growers: tuple[list[dict[str, str]], SanitizeResult], tmp_path: Path
) -> None:
    _, result = sanitized_growers
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_bytes(result.data)
    hyperparameters = {"epochs": "5", "seed": "3"}

    refused = run_training(tmp_path / "refused", data, hyperparameters)
    trained = run_training(
        tmp_path / "trained", data, hyperparameters | {"exclude_columns": "grower_email,postcode"}
    )

    assert refused.returncode != 0, refused.stdout
    assert "column 'grower_email' is not a number" in refused.failure_text, refused.stderr
    assert trained.returncode == 0, trained.stderr
    assert trained.model["features"] == [
        "grower_age", "sepal_length", "sepal_width", "petal_length", "petal_width",
    ]  # fmt: skip
    assert trained.model["train_data_sha256"] == hashlib.sha256(result.data).hexdigest()
