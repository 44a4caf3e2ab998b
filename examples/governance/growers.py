"""A synthetic dataset with personal data, for sanitization demos and tests.

``growers_csv(seed)`` is the Iris dataset (scikit-learn's bundled copy, as the demo
registers it; nothing is downloaded) with made-up growers: each flower gets a
``grower_name``, a ``grower_email`` (unique per row), a ``grower_age`` (18 to 90, around 45) and a
UK-style ``postcode`` drawn from 15 outward codes, followed by the four features and
``species``. Every person is fictitious and the e-mail domain is reserved (RFC 2606).

``DEMO_SANITIZE_CONFIG`` is the ``modelops.domain.sanitize.SanitizeConfig`` (as JSON) that
releases it: the name dropped, the e-mail pseudonymised, age and postcode generalised and
k-anonymous (k=5) on those two, rows of smaller groups suppressed. What is left that a
numeric model cannot use (the e-mail pseudonym and the postcode district) is for
``exclude_columns`` of examples/iris_train.
"""

from __future__ import annotations

import csv
import io
import random
from typing import Any

FIRST_NAMES = (
    "Amara", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas",
    "Kemi", "Liam", "Maya", "Noah", "Olu", "Priya", "Quinn", "Rosa", "Sami", "Tara",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Brennan", "Costa", "Dubois", "Evans", "Fischer", "Gupta", "Hughes",
    "Ibrahim", "Jones", "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Patel",
    "Quigley", "Rossi", "Smith", "Thompson",
)  # fmt: skip
# Outward codes, each about 3/4 as common as the one before (growers cluster in a few
# districts), so that generalising to the outward code can reach k with little suppression.
OUTWARD_CODES = (
    "SW1A", "EC1A", "M1", "B33", "LS1", "G1", "CF10", "BS1", "NE1", "L1",
    "EH1", "CB2", "OX1", "BN1", "YO1",
)  # fmt: skip
OUTWARD_WEIGHTS = (40, 30, 22, 17, 13, 9, 7, 5, 4, 3, 2, 2, 1, 1, 1)
AGE_RANGE, AGE_MEAN, AGE_SD = (18, 90), 45, 12  # ages: a normal curve, clipped
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters a UK inward code uses
EMAIL_DOMAIN = "growers.example.com"
PERSONAL_COLUMNS = ("grower_name", "grower_email", "grower_age", "postcode")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"

DEMO_SANITIZE_CONFIG: dict[str, Any] = {
    "columns": {
        "grower_name": {"action": "drop", "piiFlag": "name"},
        "grower_email": {"action": "pseudonymise", "piiFlag": "email"},
        "grower_age": {
            "action": "generalise",
            "piiFlag": "demographic",
            "kind": "age",
            "width": 20,
        },
        "postcode": {"action": "generalise", "piiFlag": "location", "kind": "postcode"},
        **{name: {"action": "keep"} for name in (*FEATURES, LABEL)},
    },
    "quasiIdentifiers": ["grower_age", "postcode"],
    "kTarget": 5,
    "suppressBelowK": True,
    "pseudonymScope": "growers",
}


def _iris() -> list[tuple[list[float], str]]:
    from sklearn.datasets import load_iris

    iris = load_iris()
    return [
        ([float(v) for v in features], str(iris.target_names[target]))
        for features, target in zip(iris.data, iris.target, strict=True)
    ]


def growers_csv(seed: int = 7) -> bytes:
    """The Iris CSV with fictitious growers' personal data; the same bytes for a seed."""
    rng = random.Random(seed)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*PERSONAL_COLUMNS, *FEATURES, LABEL])
    for number, (features, species) in enumerate(_iris(), start=1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        outward = rng.choices(OUTWARD_CODES, weights=OUTWARD_WEIGHTS)[0]
        inward = f"{rng.randint(0, 9)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
        age = min(max(round(rng.gauss(AGE_MEAN, AGE_SD)), AGE_RANGE[0]), AGE_RANGE[1])
        writer.writerow(
            [
                f"{first} {last}",
                f"{first}.{last}.{number}@{EMAIL_DOMAIN}".lower(),
                age,
                f"{outward} {inward}",
                *(f"{v:.1f}" for v in features),
                species,
            ]
        )
    return buffer.getvalue().encode("utf-8")
