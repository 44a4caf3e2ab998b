"""The event contract check of the integration tier: after every test that ran on the local
cloud, each event the platform published meanwhile (the tap on its bus) must validate against
its generated JSON Schema, so every flow these tests drive is a contract test too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcloud.integrations import validate_event


@pytest.fixture(autouse=True)
def published_events_keep_their_contracts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "local_cloud" not in request.fixturenames:
        return
    published = request.getfixturevalue("local_cloud").integrations.published()
    if request.node.get_closest_marker("hand_made_events") is not None:
        return  # what it put on the bus by hand is not the platform's to answer for
    for event in published:
        validate_event(event["detail-type"], event["detail"], event["source"])
