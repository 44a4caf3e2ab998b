"""The registry slice over signed HTTP against the local cloud (API Gateway -> Lambda ->
DynamoDB/S3), as a client sees it."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from localcloud.cloud import LocalCloud
from modelops.domain.manifest import Manifest
from modelops_cli.client import ModelOpsClient


@pytest.fixture(scope="module")
def client(local_cloud: LocalCloud) -> ModelOpsClient:
    engineer = local_cloud.principals["ml-engineer"]
    return ModelOpsClient(local_cloud.api_url, engineer.session(local_cloud.region))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_dir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def model_body(artifact: dict[str, Any], family: str, **extra: Any) -> dict[str, Any]:
    """A minimal model registration for ``artifact``, plus ``extra`` fields."""
    return {
        "family": family,
        "version": "1.0.0",
        "artifactId": artifact["artifactId"],
        "codeRef": "c",
        **extra,
    }


def upload(client: ModelOpsClient, tmp_path: Path, content: bytes | None = None) -> dict[str, Any]:
    data = content if content is not None else uuid.uuid4().bytes
    return client.upload_artifact(make_dir(tmp_path, {"model.bin": data}), unique("art"))


def test_directory_upload_is_verified_and_downloads_byte_identical(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    files = {"config.json": b'{"layers": 2}', "weights/part-0.bin": bytes(range(256)) * 50}
    source = make_dir(tmp_path, files)
    artifact = client.upload_artifact(source, "two-files")
    assert artifact["rootDigest"] == Manifest.of_directory(source).root_digest
    assert [f["path"] for f in artifact["files"]] == sorted(files)
    fetched = client.get_artifact(artifact["artifactId"], download=True)
    for path, url in fetched["downloads"].items():
        assert requests.get(url, timeout=10).content == files[path]


def test_large_file_goes_multipart_and_its_sha256_is_verified(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    data = uuid.uuid4().bytes * (12 * 1024 * 1024 // 16 + 3)
    (tmp_path / "big.bin").write_bytes(data)
    sent: list[int] = []
    artifact = client.upload_artifact(
        tmp_path / "big.bin",
        "big",
        part_bytes=5 * 1024 * 1024,
        progress=lambda _, n: sent.append(n),
    )
    assert len(sent) == 3 and sum(sent) == len(data)
    assert artifact["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_whose_bytes_differ_from_the_declared_digest_is_rejected_and_not_registered(
    client: ModelOpsClient,
) -> None:
    declared = {"path": "w.bin", "size": 4, "sha256": hashlib.sha256(b"good").hexdigest()}
    started = client.call("POST", "/artifact/upload", {"name": "tampered", "files": [declared]})
    assert requests.put(started["targets"][0]["url"], data=b"evil", timeout=10).ok
    status, body = client.request("POST", f"/artifact/upload/{started['uploadId']}/complete", {})
    assert status == 422 and body["error"]["code"] == "DIGEST_MISMATCH"
    assert body["error"]["details"][0]["actualSha256"] == hashlib.sha256(b"evil").hexdigest()
    status, body = client.request("POST", f"/artifact/upload/{started['uploadId']}/complete", {})
    assert status == 409


def test_dataset_registration_is_idempotent_and_new_content_is_a_new_version(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    name = unique("iris")
    first_art = upload(client, tmp_path / "a")
    body = {
        "name": name,
        "artifactId": first_art["artifactId"],
        "license": "BSD-3-Clause",
        "sourceRefs": ["sklearn://iris"],
        "usageRestrictions": {"exportRegions": ["eu"]},
    }
    status, first = client.request("POST", "/dataset/register", body)
    assert status == 201 and first["created"] and first["dataset"]["version"] == 1
    status, again = client.request("POST", "/dataset/register", body)
    assert status == 200 and again["dataset"] == first["dataset"]
    second_art = upload(client, tmp_path / "b")
    status, second = client.request(
        "POST", "/dataset/register", {**body, "artifactId": second_art["artifactId"]}
    )
    assert status == 201 and second["dataset"]["version"] == 2
    stored = client.get_dataset(first["dataset"]["datasetId"])
    assert stored["usageRestrictions"]["exportRegions"] == ["eu"]
    listed = client.call("GET", "/dataset", query={"name": name})
    assert [d["version"] for d in listed["items"]] == [1, 2]


def test_model_registration_records_principal_and_full_lineage(
    client: ModelOpsClient, tmp_path: Path, local_cloud: LocalCloud
) -> None:
    data_art = upload(client, tmp_path / "d")
    raw = client.register_dataset(
        name=unique("raw"),
        artifactId=data_art["artifactId"],
        license="CC-BY-4.0",
        sourceRefs=["s3://lake/raw.csv"],
    )["dataset"]
    clean_art = upload(client, tmp_path / "c")
    clean = client.register_dataset(
        name=unique("clean"),
        artifactId=clean_art["artifactId"],
        license="CC-BY-4.0",
        sourceRefs=[raw["datasetId"]],
        transformations=[
            {"name": "dedupe", "codeRef": "git+https://x/y@abc#clean.py", "checksum": "b" * 64}
        ],
    )["dataset"]
    base_art = upload(client, tmp_path / "m1")
    family = unique("clf")
    base = client.register_model(
        family=family,
        version="1.0.0",
        artifactId=base_art["artifactId"],
        codeRef="git+https://x/y@abc",
        lineage={"datasets": [clean["datasetId"]]},
    )["model"]
    tuned_art = upload(client, tmp_path / "m2")
    tuned = client.register_model(
        family=family,
        version="1.1.0",
        artifactId=tuned_art["artifactId"],
        codeRef="git+https://x/y@def",
        metrics={"accuracy": 0.97},
        lineage={"parentModels": [base["modelId"]]},
    )["model"]
    assert tuned["createdBy"] == local_cloud.principals["ml-engineer"].arn
    detail = client.get_model(tuned["modelId"])
    ids = {n["nodeId"] for n in detail["lineage"]["nodes"]}
    assert {tuned["modelId"], base["modelId"], clean["datasetId"], raw["datasetId"]} <= ids
    assert detail["lineage"]["depth"] == 4  # model -> model -> clean -> raw -> s3 source
    assert detail["lineage"]["roundTrips"] == 5
    events = client.model_lineage(tuned["modelId"], openlineage=True)["events"]
    assert {e["job"]["name"].split(":")[0] for e in events} == {"train", "derive"}
    consumers = client.call("GET", f"/dataset/{raw['datasetId']}/consumers")["consumers"]
    assert [c["nodeId"] for c in consumers] == [clean["datasetId"]]
    fine_tunes = client.call("GET", f"/models/{base['modelId']}/consumers")["consumers"]
    assert [c["nodeId"] for c in fine_tunes] == [tuned["modelId"]]
    by_prefix = client.call("GET", "/models", query={"familyPrefix": family[:-2]})["items"]
    assert {m["modelId"] for m in by_prefix} >= {base["modelId"], tuned["modelId"]}


def test_created_by_cannot_be_forged_in_the_body(client: ModelOpsClient, tmp_path: Path) -> None:
    art = upload(client, tmp_path)
    forged = model_body(art, unique("f"), createdBy="arn:aws:iam::1:user/ceo")
    status, body = client.request("POST", "/models/register", forged)
    assert status == 400 and body["error"]["details"][0]["field"] == "createdBy"


def test_a_model_with_an_unknown_parent_is_rejected_and_nothing_is_written(
    client: ModelOpsClient, tmp_path: Path, local_cloud: LocalCloud
) -> None:
    art = upload(client, tmp_path)
    family = unique("f")
    orphan = model_body(art, family, lineage={"datasets": ["ds-" + "0" * 24]})
    status, body = client.request("POST", "/models/register", orphan)
    assert status == 422 and body["error"]["code"] == "REFERENCE_NOT_FOUND"
    table = local_cloud.names["RegistryTable"]
    items = local_cloud.client("dynamodb").scan(TableName=table)["Items"]
    assert not [i for i in items if family in str(i)]


def test_concurrent_conflicting_registrations_have_exactly_one_winner(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    art = upload(client, tmp_path)
    family = unique("race")

    def register(i: int) -> tuple[int, Any]:
        body = model_body(art, family, metrics={"run": float(i)})
        return client.request("POST", "/models/register", body)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(register, range(8)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [201] + [409] * 7
    winner = next(b for s, b in results if s == 201)["model"]
    assert client.get_model(winner["modelId"])["model"]["metrics"] == winner["metrics"]


def test_concurrent_identical_registrations_all_succeed_with_one_creation(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    art = upload(client, tmp_path)
    body = {"name": unique("same"), "artifactId": art["artifactId"], "license": "MIT"}
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(lambda _: client.request("POST", "/dataset/register", body), range(6))
        )
    assert sorted(s for s, _ in results) == [200] * 5 + [201]
    assert len({b["dataset"]["datasetId"] for _, b in results}) == 1


def test_idempotency_key_replays_the_first_response_and_refuses_a_different_body(
    client: ModelOpsClient,
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "idem", "files": [{"path": "a", "size": 1, "sha256": "a" * 64}]}
    first = client.request("POST", "/artifact/upload", body, headers=key)
    again = client.request("POST", "/artifact/upload", body, headers=key)
    assert first[0] == again[0] == 201
    assert first[1]["uploadId"] == again[1]["uploadId"]
    status, error = client.request(
        "POST", "/artifact/upload", {**body, "name": "other"}, headers=key
    )
    assert status == 422 and error["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_model_listing_paginates_in_semver_order_and_rejects_foreign_tokens(
    client: ModelOpsClient, tmp_path: Path
) -> None:
    family = unique("pages")
    versions = ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.1.0", "2.0.0"]
    for i, version in enumerate(versions):
        art = upload(client, tmp_path / str(i))
        client.register_model(
            family=family, version=version, artifactId=art["artifactId"], codeRef="c"
        )
    listed = [m["version"] for m in client.iter_models(family=family, page_size=2)]
    assert listed == ["0.1.0", "1.2.0-rc.1", "1.2.0", "1.10.0", "2.0.0"]
    status, body = client.request("GET", "/models", query={"nextToken": "bm90LWEtdG9rZW4="})
    assert status == 400 and body["error"]["details"][0]["field"] == "nextToken"
    status, body = client.request(
        "GET", "/models", query={"status": "draft", "family": family, "limit": 100}
    )
    assert status == 200 and len(body["items"]) == 5


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/models/mdl-000000000000000000000000", 404, "NOT_FOUND"),
        ("GET", "/artifact/art-00000000000000000000000000000000", 404, "NOT_FOUND"),
        ("GET", "/dataset/ds-000000000000000000000000", 404, "NOT_FOUND"),
        ("GET", "/models/nope/unknown/route", 404, "NOT_FOUND"),
        ("GET", "/models?limit=0", 400, "VALIDATION_FAILED"),
    ],
)
def test_unknown_ids_and_bad_queries_get_typed_errors(
    client: ModelOpsClient, method: str, path: str, status: int, code: str
) -> None:
    path, _, query = path.partition("?")
    got, body = client.request(method, path, query=dict([query.split("=")]) if query else None)
    assert (got, body["error"]["code"]) == (status, code)


def test_unsigned_and_wrongly_signed_requests_are_refused_by_the_gateway(
    local_cloud: LocalCloud,
) -> None:
    assert requests.get(local_cloud.api_url + "/models", timeout=10).status_code == 403
    impostor = ModelOpsClient(
        local_cloud.api_url,
        local_cloud.principals["kernel"]
        .session(local_cloud.region)
        .__class__(
            aws_access_key_id=local_cloud.principals["kernel"].access_key_id,
            aws_secret_access_key="wrong",
            region_name=local_cloud.region,
        ),
    )
    status, _ = impostor.request("GET", "/models")
    assert status == 403


def test_local_cloud_provisions_what_the_platform_definition_declares(
    local_cloud: LocalCloud,
) -> None:
    from modelops import platform

    kms = local_cloud.client("kms")
    for key in platform.KEYS:
        metadata = kms.describe_key(KeyId=local_cloud.key_arns[key.logical_id])["KeyMetadata"]
        assert (metadata["KeySpec"], metadata["KeyUsage"]) == (key.key_spec, key.key_usage)
    ddb = local_cloud.client("dynamodb")
    for table in platform.TABLES:
        described = ddb.describe_table(TableName=local_cloud.names[table.logical_id])["Table"]
        assert {k["AttributeName"] for k in described["KeySchema"]} == {
            table.partition_key,
            table.sort_key,
        } - {None}
        assert [i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])] == [
            i.name for i in table.indexes
        ]
        assert (
            described["SSEDescription"]["KMSMasterKeyArn"]
            == local_cloud.key_arns[platform.DATA_KEY.logical_id]
        )
    s3 = local_cloud.client("s3")
    for bucket in platform.BUCKETS:
        name = local_cloud.names[bucket.logical_id]
        if bucket.lifecycle_rules():
            rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
            assert [r["ID"] for r in rules] == [r.rule_id for r in bucket.lifecycle_rules()]
        if bucket.object_lock_days:
            lock = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
            assert lock["Rule"]["DefaultRetention"]["Days"] == bucket.object_lock_days
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    lam = local_cloud.client("lambda")
    for fn in platform.FUNCTIONS:
        config = lam.get_function_configuration(FunctionName=fn.name)
        variables = config["Environment"]["Variables"]
        assert variables == local_cloud.function_environment(fn)
        assert variables == platform.function_environment(
            fn,
            {**local_cloud.names, **local_cloud.key_arns},
            local_cloud.role_bindings,
            local_cloud.parameters,
        )
        assert (config["Handler"], config["Architectures"]) == (fn.handler, ["arm64"])
    events = local_cloud.client("events")
    for bus in platform.BUSES:
        described = events.describe_event_bus(Name=local_cloud.names[bus.logical_id])
        assert described["Name"] == local_cloud.names[bus.logical_id]
    sfn = local_cloud.client("stepfunctions")
    for machine in platform.STATE_MACHINES:
        definition = sfn.describe_state_machine(
            stateMachineArn=local_cloud.names[machine.logical_id]
        )["definition"]
        assert "${" not in definition
        assert all(f"function:{task}" in definition for task in machine.tasks)
    iam = local_cloud.client("iam")
    for role in platform.ROLES:
        arn = local_cloud.names[role.logical_id]
        trust = iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
        expected = (
            {"Service": role.service}
            if role.service is not None
            else {"AWS": f"arn:aws:iam::{local_cloud.account_id}:root"}  # people, with MFA
        )
        assert trust["Statement"][0]["Principal"] == expected


def test_correlation_id_is_taken_from_the_caller_and_returned(client: ModelOpsClient) -> None:
    response = client.send(
        "GET", "/models", query={"limit": 1}, headers={"X-Correlation-Id": "kernel-flow-42"}
    )
    assert response.status_code == 200
    assert response.headers["X-Correlation-Id"] == "kernel-flow-42"


def test_unbound_principals_are_refused_and_roles_gate_every_mutating_route(
    local_cloud: LocalCloud, tmp_path: Path, client: ModelOpsClient
) -> None:
    iam = local_cloud.client("iam")
    iam.create_user(UserName="stranger")
    keys = iam.create_access_key(UserName="stranger")["AccessKey"]
    stranger = ModelOpsClient(
        local_cloud.api_url,
        boto3.session.Session(
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            region_name=local_cloud.region,
        ),
    )
    status, body = stranger.request("GET", "/models")
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")

    approver = local_cloud.principals["approver"]
    as_approver = ModelOpsClient(local_cloud.api_url, approver.session(local_cloud.region))
    art = upload(client, tmp_path)
    family = unique("gated")
    attempts = [
        (
            "/artifact/upload",
            {"name": "x", "files": [{"path": "a", "size": 1, "sha256": "a" * 64}]},
        ),
        ("/dataset/register", {"name": family, "artifactId": art["artifactId"], "license": "MIT"}),
        ("/models/register", model_body(art, family)),
    ]
    for path, body in attempts:
        status, answer = as_approver.request("POST", path, body)
        assert (status, answer["error"]["code"]) == (403, "FORBIDDEN"), path
    assert as_approver.call("GET", "/models", query={"family": family})["items"] == []
    assert as_approver.call("GET", "/dataset", query={"name": family})["items"] == []
