"""PII sanitization of CSV datasets: a sanitized derivative of a raw CSV and a uniqueness
report, as a pure function of the raw bytes, the config and the pseudonym key.

The scheme (``modelops.sanitizer/1``). Every input column has a rule (fail closed: a column
the config does not name is an error, so a new identifier column is never passed through):

* ``keep``: copied as is.
* ``drop``: left out of the output. Its cells are never read after the CSV is parsed.
* ``pseudonymise``: each non-empty cell becomes the first 32 hex characters (128 bits) of
  HMAC-SHA256(column key, UTF-8 of the stripped cell). The column key is ``derive_key`` of
  ``key_label(pseudonymScope, column)``, asked once per pseudonymised column; in production
  that is KMS GenerateMac with an HMAC_256 key, so the root key never leaves KMS. Equal
  values give equal pseudonyms within a scope and column (the column stays joinable and
  countable), different pseudonyms across scopes or columns. Empty cells stay empty.
* ``generalise``: each non-empty cell is coarsened. ``age``: the lower bound of its band
  (width 10 unless set; ``34`` -> ``30``), or ``topCode`` when at or above it; ``number``:
  the lower bound of its ``width`` band; ``postcode``: the outward code (upper-cased; the
  text before the space, or all but the last 3 characters without one), cut to ``width``
  characters if set (``SW1A 1AA`` -> ``SW1A``, width 3 -> ``SW1``); ``date``
  (``YYYY-MM-DD``) -> ``YYYY``. Bands stay numbers so numeric training code can use them.
  A cell a generaliser cannot parse is an error naming the column and the row.

Guarantees:

* No cell of a dropped or pseudonymised column is copied into the output; pseudonymised
  cells are only ever written as their keyed digest. (A value that also occurs in a kept
  column, or in a header, is of course still there.)
* Pseudonyms are keyed: without the key (i.e. without being allowed to call KMS with it),
  nobody can test guesses against them, so a dictionary of likely e-mail addresses or phone
  numbers does not reverse them. Whoever can derive the key can: pseudonymisation is not
  anonymisation, and pseudonyms still link the rows of one person within a scope.
* The output is deterministic: the same input, config and key give the same bytes (rows in
  input order, columns in input order minus the dropped ones, ``\\n`` line endings).
* Error messages name columns and rows, never a cell's value.

k-anonymity here: the output rows are grouped by their values of the declared
``quasiIdentifiers`` (after generalisation); ``minK`` is the size of the smallest group and
k is achieved when it is at least ``kTarget``, i.e. each row shares its quasi-identifier
values with at least ``kTarget - 1`` others. With ``suppressBelowK`` the rows of smaller
groups are dropped, which achieves k by construction. It promises nothing more: not about
columns not declared as quasi-identifiers, not against a group whose rows share a sensitive
value (attribute disclosure, no l-diversity or t-closeness), not against linking with other
releases or background knowledge, and not about the kept columns' content. It is a measure
for the release decision, not a proof of anonymity. A generalised column's PII flag is only
cleared when the column is a quasi-identifier and k is achieved.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from modelops.domain.digests import canonical_digest
from modelops.domain.entities import Entity, PiiFlag

SANITIZER_FORMAT = "modelops.sanitizer/1"
CODE_REF = "modelops.domain.sanitize"
KEY_LABEL_PREFIX = b"modelops-sanitize/1\x00"
PSEUDONYM_HEX_CHARS = 32
MIN_KEY_BYTES = 16
DEFAULT_AGE_WIDTH = 10
POSTCODE_INWARD_CHARS = 3

Action = Literal["keep", "drop", "pseudonymise", "generalise"]
Kind = Literal["age", "postcode", "date", "number"]

_DECIMAL = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_POSTCODE_PART = re.compile(r"^[A-Z0-9]+$")


@cache
def code_checksum() -> str:
    """SHA-256 hex of this module's source: the lineage ``Transformation.checksum``."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


class SanitizeError(ValueError):
    """Bad CSV, config/column mismatch, or a value a generaliser cannot parse."""


class ColumnRule(Entity):
    action: Action
    piiFlag: PiiFlag | None = Field(
        default=None, description="What personal data the column holds; None: not personal."
    )
    kind: Kind | None = Field(default=None, description="The generaliser (generalise only).")
    width: int | None = Field(
        default=None,
        ge=1,
        description="age/number: band width (age: 10 by default; number: required); "
        "postcode: characters of the outward code kept (default: all).",
    )
    topCode: int | None = Field(
        default=None, ge=0, description="age/number: values >= topCode become topCode."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        if self.action != "generalise":
            if self.kind is not None or self.width is not None or self.topCode is not None:
                raise ValueError("kind, width and topCode are for the generalise action only")
            return self
        if self.kind is None:
            raise ValueError("the generalise action needs a kind (age, postcode, date, number)")
        if self.kind == "date" and self.width is not None:
            raise ValueError("a date generalises to its year: width is not used")
        if self.kind in ("postcode", "date") and self.topCode is not None:
            raise ValueError(f"topCode is for age and number, not {self.kind}")
        if self.kind == "number" and self.width is None:
            raise ValueError("the number generaliser needs a band width")
        return self


class SanitizeConfig(Entity):
    columns: dict[str, ColumnRule] = Field(
        min_length=1, description="A rule for every input column, and only for those."
    )
    quasiIdentifiers: tuple[str, ...] = Field(
        default=(), description="Kept or generalised columns whose combination could re-identify."
    )
    kTarget: int = Field(default=5, ge=2)
    suppressBelowK: bool = Field(
        default=False, description="Drop rows whose quasi-identifier group is below kTarget."
    )
    pseudonymScope: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00]+$",
        description="Key derivation context: equal values pseudonymise equally within a scope.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SanitizeConfig:
        for name in self.columns:
            if not name or name != name.strip() or "\x00" in name:
                raise ValueError(f"column name {name!r} is empty, padded or holds NUL")
        if all(rule.action == "drop" for rule in self.columns.values()):
            raise ValueError("every column is dropped: nothing would be left")
        seen: set[str] = set()
        for name in self.quasiIdentifiers:
            if name in seen:
                raise ValueError(f"quasi-identifier {name!r} is listed twice")
            seen.add(name)
            rule = self.columns.get(name)
            if rule is None:
                raise ValueError(f"quasi-identifier {name!r} has no column rule")
            if rule.action not in ("keep", "generalise"):
                raise ValueError(
                    f"quasi-identifier {name!r} must be kept or generalised, not {rule.action}"
                )
        return self


class Uniqueness(Entity):
    """Groups of rows by their quasi-identifier values. ``minK`` is 0 when there is no group
    (no rows, or no quasi-identifiers)."""

    equivalenceClasses: int
    minK: int
    uniqueRows: int
    uniqueFraction: float
    rowsBelowK: int


class UniquenessReport(Entity):
    rows: int = Field(description="Input data rows.")
    quasiIdentifiers: tuple[str, ...]
    kTarget: int
    before: Uniqueness = Field(description="On the raw values of the input rows.")
    after: Uniqueness = Field(description="On the output values of the output rows.")
    suppressedRows: int
    kAchieved: bool = Field(
        description="after.minK >= kTarget; vacuously true without quasi-identifiers or rows."
    )


@dataclass(frozen=True)
class SanitizeResult:
    data: bytes
    report: UniquenessReport
    outputColumns: tuple[str, ...]
    droppedColumns: tuple[str, ...]
    pseudonymisedColumns: tuple[str, ...]
    generalisedColumns: tuple[str, ...]
    remainingPiiFlags: tuple[PiiFlag, ...]
    configDigest: str  # RFC 8785 SHA-256 of the config (JSON mode)

    def params(self) -> dict[str, str | int | float | bool]:
        """A flat summary for a lineage ``Transformation.params``."""
        report = self.report
        return {
            "format": SANITIZER_FORMAT,
            "configSha256": self.configDigest,
            "dropped": ",".join(self.droppedColumns),
            "pseudonymised": ",".join(self.pseudonymisedColumns),
            "generalised": ",".join(self.generalisedColumns),
            "quasiIdentifiers": ",".join(report.quasiIdentifiers),
            "kTarget": report.kTarget,
            "kAchieved": report.kAchieved,
            "minKBefore": report.before.minK,
            "minKAfter": report.after.minK,
            "uniqueFractionBefore": report.before.uniqueFraction,
            "uniqueFractionAfter": report.after.uniqueFraction,
            "rows": report.rows,
            "suppressedRows": report.suppressedRows,
            "remainingPiiFlags": ",".join(self.remainingPiiFlags),
        }


def key_label(scope: str, column: str) -> bytes:
    """The message to MAC to derive ``column``'s pseudonym key within ``scope``."""
    if "\x00" in scope or "\x00" in column:
        raise ValueError("scope and column must not contain NUL")
    return KEY_LABEL_PREFIX + scope.encode() + b"\x00" + column.encode()


# --- generalisers -----------------------------------------------------------------------------


class _Unparsable(Exception):
    """A cell a generaliser cannot read; becomes a SanitizeError naming column and row."""


def _decimal(value: str, *, negative: bool) -> Fraction:
    if not _DECIMAL.match(value) or (not negative and value.startswith("-")):
        raise _Unparsable("not a " + ("number" if negative else "non-negative number"))
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):  # e.g. beyond int's digit limit
        raise _Unparsable("not a number") from None


def _band(number: Fraction, width: int, top_code: int | None) -> str:
    if top_code is not None and number >= top_code:
        return str(top_code)
    return str((number // width) * width)


def _postcode(value: str, width: int | None) -> str:
    parts = value.upper().split()
    if len(parts) == 2:
        outward, inward = parts
        if len(inward) != POSTCODE_INWARD_CHARS:
            raise _Unparsable(f"the inward code must have {POSTCODE_INWARD_CHARS} characters")
    elif len(parts) == 1 and len(parts[0]) > POSTCODE_INWARD_CHARS:
        outward, inward = parts[0][:-POSTCODE_INWARD_CHARS], parts[0][-POSTCODE_INWARD_CHARS:]
    else:
        raise _Unparsable("not a postcode (outward code, optional space, 3-character inward code)")
    if not (_POSTCODE_PART.match(outward) and _POSTCODE_PART.match(inward)):
        raise _Unparsable("a postcode holds letters and digits only")
    return outward[:width] if width is not None else outward


def _year(value: str) -> str:
    if not _DATE.match(value):
        raise _Unparsable("not a YYYY-MM-DD date")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _Unparsable("not a valid calendar date") from None
    return value[:4]


def _generalise(rule: ColumnRule, raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    if rule.kind == "age":
        return _band(_decimal(value, negative=False), rule.width or DEFAULT_AGE_WIDTH, rule.topCode)
    if rule.kind == "number":
        assert rule.width is not None  # the rule's validator requires it
        return _band(_decimal(value, negative=True), rule.width, rule.topCode)
    if rule.kind == "postcode":
        return _postcode(value, rule.width)
    return _year(value)


def _pseudonym(key: bytes, raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]


# --- uniqueness -------------------------------------------------------------------------------


def _uniqueness(keys: Sequence[tuple[str, ...]], k_target: int, enabled: bool) -> Uniqueness:
    sizes = Counter(keys) if enabled else Counter[tuple[str, ...]]()
    unique = sum(1 for size in sizes.values() if size == 1)
    return Uniqueness(
        equivalenceClasses=len(sizes),
        minK=min(sizes.values(), default=0),
        uniqueRows=unique,
        uniqueFraction=unique / len(keys) if enabled and keys else 0.0,
        rowsBelowK=sum(size for size in sizes.values() if size < k_target),
    )


# --- the CSV ----------------------------------------------------------------------------------


def _parse(raw: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of each non-blank data row."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SanitizeError(f"the CSV is not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SanitizeError("the CSV is empty: no header row")
        names = [name.strip() for name in header]
        rows: list[tuple[int, list[str]]] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(names):
                raise SanitizeError(
                    f"row {len(rows) + 1} (line {reader.line_num}): {len(row)} fields, "
                    f"expected {len(names)}"
                )
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise SanitizeError(f"the CSV cannot be parsed at line {reader.line_num}: {exc}") from None
    if any(not name for name in names):
        raise SanitizeError("the header has an empty column name")
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicates:
        raise SanitizeError(f"the header repeats column(s): {', '.join(duplicates)}")
    return names, rows


def _check_columns(names: list[str], config: SanitizeConfig) -> None:
    unlisted = [name for name in names if name not in config.columns]
    missing = sorted(set(config.columns) - set(names))
    problems = []
    if unlisted:
        problems.append(
            f"column(s) without a rule: {', '.join(unlisted)} (every column needs one: "
            "keep, drop, pseudonymise or generalise)"
        )
    if missing:
        problems.append(f"rule(s) for column(s) not in the CSV: {', '.join(missing)}")
    if problems:
        raise SanitizeError("; ".join(problems))


def sanitize_csv(
    raw: bytes, config: SanitizeConfig, derive_key: Callable[[bytes], bytes]
) -> SanitizeResult:
    """The sanitized derivative of ``raw`` (UTF-8 CSV with a header row) and its report.

    ``derive_key(label)`` returns the secret key for ``label`` (see ``key_label``); it is
    called once per pseudonymised column. Raises SanitizeError."""
    names, rows = _parse(raw)
    _check_columns(names, config)
    rules = [config.columns[name] for name in names]
    keys: dict[str, bytes] = {}
    for name, rule in zip(names, rules, strict=True):
        if rule.action == "pseudonymise":
            key = derive_key(key_label(config.pseudonymScope, name))
            if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
                raise SanitizeError(
                    f"the key derived for column {name!r} is not at least {MIN_KEY_BYTES} bytes"
                )
            keys[name] = key

    kept = [i for i, rule in enumerate(rules) if rule.action != "drop"]
    output_columns = tuple(names[i] for i in kept)
    qi_in = [names.index(name) for name in config.quasiIdentifiers]
    qi_out = [output_columns.index(name) for name in config.quasiIdentifiers]
    has_qi = bool(config.quasiIdentifiers)

    out_rows: list[list[str]] = []
    for row_no, (line_no, row) in enumerate(rows, start=1):
        out: list[str] = []
        for i in kept:
            rule, value = rules[i], row[i]
            if rule.action == "pseudonymise":
                out.append(_pseudonym(keys[names[i]], value))
            elif rule.action == "generalise":
                try:
                    out.append(_generalise(rule, value))
                except _Unparsable as exc:
                    raise SanitizeError(
                        f"column {names[i]!r}, row {row_no} (line {line_no}): {exc} "
                        f"(generaliser {rule.kind})"
                    ) from None
            else:
                out.append(value)
        out_rows.append(out)

    before = _uniqueness([tuple(row[i] for i in qi_in) for _, row in rows], config.kTarget, has_qi)
    groups = [tuple(out[i] for i in qi_out) for out in out_rows]
    if has_qi and config.suppressBelowK:
        sizes = Counter(groups)
        chosen = [n for n, group in enumerate(groups) if sizes[group] >= config.kTarget]
        out_rows = [out_rows[n] for n in chosen]
        groups = [groups[n] for n in chosen]
    after = _uniqueness(groups, config.kTarget, has_qi)
    k_achieved = not has_qi or not out_rows or after.minK >= config.kTarget
    report = UniquenessReport(
        rows=len(rows),
        quasiIdentifiers=config.quasiIdentifiers,
        kTarget=config.kTarget,
        before=before,
        after=after,
        suppressedRows=len(rows) - len(out_rows),
        kAchieved=k_achieved,
    )

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(output_columns)
    writer.writerows(out_rows)

    def named(action: Action) -> tuple[str, ...]:
        return tuple(name for name, rule in zip(names, rules, strict=True) if rule.action == action)

    flags: set[PiiFlag] = set()
    for name, rule in zip(names, rules, strict=True):
        if rule.piiFlag is None:
            continue
        if rule.action == "keep" or (
            rule.action == "generalise"
            and not (k_achieved and has_qi and name in config.quasiIdentifiers)
        ):
            flags.add(rule.piiFlag)
    return SanitizeResult(
        data=buffer.getvalue().encode("utf-8"),
        report=report,
        outputColumns=output_columns,
        droppedColumns=named("drop"),
        pseudonymisedColumns=named("pseudonymise"),
        generalisedColumns=named("generalise"),
        remainingPiiFlags=tuple(sorted(flags)),
        configDigest=canonical_digest(config.model_dump(mode="json")),
    )
