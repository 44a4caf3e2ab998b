"""The demo's retention part: a finished training job's checkpoints expire, their objects
are deleted (downloads answer 410 GONE), and their existence and content are proven from
the ledger alone: the tombstone's record, its Merkle inclusion in a signed checkpoint, the
checkpoint's Ed25519 signature, checked offline from the public key."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modelops import platform
from modelops_cli.audit import fetch_public_keys
from modelops_cli.client import ModelOpsClient
from modelops_cli.verify import verify_tombstone_proof

Say = Callable[[str], None]


def run_retention_flow(
    admin: ModelOpsClient,
    reader: ModelOpsClient,
    job: Mapping[str, Any],
    workdir: Path,
    say: Say,
    *,
    also: Sequence[Mapping[str, Any]] = (),
    step: int = 26,
) -> dict[str, Any]:
    """Expire ``job``'s checkpoints (a finished training job record, as GET /train/jobs/{id}
    returns it) and prove they existed. ``also``: more finished jobs whose checkpoints
    expire in the same run (one signed checkpoint seals them all, so the proof's audit path
    has nodes). ``admin`` is a platform-admin (runs retention, with ``asOf`` just past the
    checkpoints' period instead of waiting 30 days); ``reader`` any bound principal
    (downloads, fetches the proof and the public keys)."""
    ref = next(r for r in job["artifactRefs"] if r["kind"] == "checkpoints")
    jobs = [job, *also]
    days = platform.RETENTION_CHECKPOINTS.expire_after_days or 0
    ended = max(datetime.fromisoformat(j["endTs"]) for j in jobs)
    as_of = ended + timedelta(days=days, seconds=1)
    say(
        f"{step}. Retention: checkpoints expire {days} days after their job ends; run the job "
        f"as of {as_of:%Y-%m-%d %H:%M} (POST /retention/run, platform-admin)"
    )
    report = admin.call(
        "POST",
        "/retention/run",
        {
            "classes": ["checkpoints"],
            "trainingJobIds": [j["jobId"] for j in jobs],
            "asOf": as_of.isoformat(),
        },
    )
    outcome = next(o for o in report["outcomes"] if o["artifactId"] == ref["artifactId"])
    if outcome["action"] != "expired":
        raise RuntimeError(f"the checkpoints did not expire: {outcome}")
    tomb_id = outcome["tombstoneId"]
    document = reader.call("GET", f"/retention/tombstones/{tomb_id}")
    tomb = document["tombstone"]
    expired = [o for o in report["outcomes"] if o["action"] == "expired"]
    kept = len(tomb["sharedBlobsKept"])
    say(
        f"   checkpoints of {len(expired)} job(s) expired as {report['expired']} artifact(s) "
        f"(identical content is stored once); {ref['files']} file(s) of {job['jobId']}: "
        f"tombstone {tomb_id} at retention seq {tomb['ledgerSeq']}, sealed by "
        f"the signed checkpoint to seq {tomb['checkpointToSeq']}, then "
        f"{len(tomb['deletedKeys'])} object(s) deleted, every version"
        + (f" ({kept} blob(s) kept: a retained artifact has the same bytes)" if kept else "")
    )

    status, body = reader.request(
        "GET", f"/artifact/{ref['artifactId']}", query={"download": "true"}
    )
    error = body["error"]
    gone_tomb = (error.get("details") or [{}])[0].get("tombstoneId")
    say(f"   download of {ref['artifactId']}: {status} {error['code']}, tombstone {gone_tomb}")

    saved = workdir / f"{tomb_id}.json"
    saved.write_text(json.dumps(document, indent=2))
    keys = fetch_public_keys(reader)
    say(f"   modelops verify tombstone {tomb_id} --proof {saved.name} (offline, public key only):")
    verified = verify_tombstone_proof(document, keys, lambda line: say(f"     {line}"))
    say(
        "   the archived checkpoint's existence and content are proven from the ledger after "
        f"deletion: {'VERIFIED' if verified else 'FAILED'}"
    )

    tampered = json.loads(json.dumps(document))
    tampered["proof"]["tombstone"]["files"][0]["sha256"] = "0" * 64
    rejected = not verify_tombstone_proof(tampered, keys, lambda _: None)
    say(f"   the same proof with one file digest altered: {'REJECTED' if rejected else 'ACCEPTED'}")
    return {
        "tombstoneId": tomb_id,
        "artifactId": ref["artifactId"],
        "downloadStatus": status,
        "verified": verified,
        "tamperedRejected": rejected,
        "proof": saved,
    }
