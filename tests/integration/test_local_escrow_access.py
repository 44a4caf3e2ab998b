"""Raw PII in escrow on the local cloud: only the escrow's readers may read it, as AWS enforces
the bucket and key policies the platform deploys (modelops.platform.ESCROW_BUCKET,
reader_statements; localcloud.resource_policies).

Roles are assumed with STS as the platform administrator (LocalCloud.role_session), the way
people and services get sessions of them in AWS. SageMaker jobs and endpoints read their data
as their execution role.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain.archive import targz_bytes

RAW_CSV = b"name,email,label\nAda,ada@example.com,1\nBob,bob@example.com,0\n"
ARTIFACT_BYTES = b"weights that any training job may read"
# A training script that proves it had the raw rows: their count and digest go in the model.
COUNT_ROWS = """
import hashlib, json, os, pathlib
channel = pathlib.Path(os.environ["SM_CHANNEL_RAW"])
data = b"".join(p.read_bytes() for p in sorted(channel.rglob("*")) if p.is_file())
report = {"rows": data.count(b"\\n") - 1, "sha256": hashlib.sha256(data).hexdigest()}
(pathlib.Path(os.environ["SM_MODEL_DIR"]) / "report.json").write_text(json.dumps(report))
print("counted", report["rows"], flush=True)
"""


@dataclass(frozen=True)
class Escrow:
    cloud: LocalCloud
    bucket: str
    key: str  # an object of raw PII in escrow
    artifact_bucket: str
    artifact_key: str
    ciphertext: bytes  # "secret" encrypted under the escrow key
    source: str  # the training script's archive, in the artifact bucket

    clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, role_arn: str, service: str) -> Any:
        """A client of a session of ``role_arn`` (one session per role, for speed)."""
        if (role_arn, service) not in self.clients:
            session = self.cloud.role_session(role_arn, f"test-{uuid.uuid4().hex[:6]}")
            self.clients[role_arn, service] = session.client(
                service,
                endpoint_url=self.cloud.endpoint_url,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
            )
        return self.clients[role_arn, service]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@pytest.fixture(scope="module")
def escrow(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Escrow:
    cloud = local_cloud
    admin_s3 = cloud.client("s3")
    bucket = cloud.names[platform.ESCROW_BUCKET.logical_id]
    key = f"tests/{uuid.uuid4().hex[:8]}/people.csv"
    admin_s3.put_object(Bucket=bucket, Key=key, Body=RAW_CSV)  # writing is not restricted
    artifact_bucket = cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    artifact_key = f"tests/{uuid.uuid4().hex[:8]}/weights.bin"
    admin_s3.put_object(Bucket=artifact_bucket, Key=artifact_key, Body=ARTIFACT_BYTES)
    ciphertext = cloud.client("kms").encrypt(
        KeyId=cloud.key_arns[platform.ESCROW_KEY.logical_id], Plaintext=b"secret"
    )["CiphertextBlob"]
    code = tmp_path_factory.mktemp("escrow-code")
    (code / "count_rows.py").write_text(COUNT_ROWS)
    source_key = f"tests/{uuid.uuid4().hex[:8]}/count_rows.tar.gz"
    admin_s3.put_object(Bucket=artifact_bucket, Key=source_key, Body=targz_bytes(code))
    return Escrow(
        cloud=cloud,
        bucket=bucket,
        key=key,
        artifact_bucket=artifact_bucket,
        artifact_key=artifact_key,
        ciphertext=ciphertext,
        source=f"s3://{artifact_bucket}/{source_key}",
    )


def training_role(escrow: Escrow) -> str:
    return escrow.cloud.names[platform.TRAINING_ROLE.logical_id]


def reader_roles(cloud: LocalCloud) -> dict[str, str]:
    return {
        "break-glass": cloud.names[platform.BREAK_GLASS_ROLE.logical_id],
        "raw-pii-job": cloud.names[platform.RAW_PII_JOB_ROLE.logical_id],
        "dataset-sanitizer": cloud.execution_roles[platform.SANITIZER_FUNCTION],
    }


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: dict[str, Any] = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# --- what is provisioned -------------------------------------------------------------------


def test_escrow_is_encrypted_with_its_own_key_and_its_policies_name_the_readers(
    escrow: Escrow,
) -> None:
    cloud = escrow.cloud
    s3 = cloud.client("s3")
    rules = s3.get_bucket_encryption(Bucket=escrow.bucket)["ServerSideEncryptionConfiguration"]
    default = rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default["KMSMasterKeyID"] == cloud.key_arns[platform.ESCROW_KEY.logical_id]
    artifact_rules = s3.get_bucket_encryption(Bucket=escrow.artifact_bucket)
    artifact_default = artifact_rules["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert (
        artifact_default["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"]
        == (cloud.key_arns[platform.DATA_KEY.logical_id])
    )
    readers = sorted(reader_roles(cloud).values())
    expected_bucket, expected_key = platform.reader_statements(
        f"arn:aws:s3:::{escrow.bucket}", readers
    )
    policy = json.loads(s3.get_bucket_policy(Bucket=escrow.bucket)["Policy"])
    assert policy["Statement"] == [expected_bucket]
    key_policy = json.loads(
        cloud.client("kms").get_key_policy(
            KeyId=cloud.key_arns[platform.ESCROW_KEY.logical_id], PolicyName="default"
        )["Policy"]
    )
    assert expected_key in key_policy["Statement"]
    assert all(arn.startswith(f"arn:aws:iam::{cloud.account_id}:role/") for arn in readers), readers


def test_break_glass_role_is_assumed_by_people_of_the_account(escrow: Escrow) -> None:
    cloud = escrow.cloud
    role = cloud.client("iam").get_role(RoleName="BreakGlassRole-role")["Role"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{cloud.account_id}:root"}
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert role["MaxSessionDuration"] == 3600


# --- S3 and KMS, as each caller -------------------------------------------------------------


def test_training_role_is_refused_escrow_objects(escrow: Escrow) -> None:
    s3 = escrow.client(training_role(escrow), "s3")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=escrow.bucket, Key=escrow.key)
    assert error_code(refused) == ("AccessDenied", 403)
    message = refused.value.response["Error"]["Message"]
    assert ":assumed-role/TrainingRole-role/" in message
    assert "explicit deny in a resource-based policy" in message
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=escrow.bucket, Key=escrow.key)  # HEAD needs s3:GetObject too
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # What the policy does not cover stays open: listing, attributes, writing.
    listed = s3.list_objects_v2(Bucket=escrow.bucket, Prefix=escrow.key)
    assert [o["Key"] for o in listed["Contents"]] == [escrow.key]
    size = s3.get_object_attributes(
        Bucket=escrow.bucket, Key=escrow.key, ObjectAttributes=["ObjectSize"]
    )["ObjectSize"]
    assert size == len(RAW_CSV)


def test_training_role_is_refused_decrypt_with_the_escrow_key(escrow: Escrow) -> None:
    kms = escrow.client(training_role(escrow), "kms")
    with pytest.raises(ClientError) as refused:
        kms.decrypt(CiphertextBlob=escrow.ciphertext)
    assert error_code(refused) == ("AccessDeniedException", 400)
    assert "kms:Decrypt" in refused.value.response["Error"]["Message"]
    # Encrypting is not reading: the key policy denies Decrypt only.
    kms.encrypt(KeyId=escrow.cloud.key_arns[platform.ESCROW_KEY.logical_id], Plaintext=b"x")


def test_platform_admin_and_unknown_credentials_are_refused_too(escrow: Escrow) -> None:
    with pytest.raises(ClientError) as admin:
        escrow.cloud.client("s3").get_object(Bucket=escrow.bucket, Key=escrow.key)
    assert error_code(admin) == ("AccessDenied", 403)
    anonymous = boto3.client(
        "s3",
        region_name=escrow.cloud.region,
        endpoint_url=escrow.cloud.endpoint_url,
        aws_access_key_id="AKIANOTKNOWNTOMOTO00",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as root:
        anonymous.get_object(Bucket=escrow.bucket, Key=escrow.key)
    assert error_code(root) == ("AccessDenied", 403)
    assert f"arn:aws:iam::{escrow.cloud.account_id}:root" in root.value.response["Error"]["Message"]


@pytest.mark.parametrize("reader", ["break-glass", "raw-pii-job", "dataset-sanitizer"])
def test_escrow_readers_can_read_objects_and_decrypt(escrow: Escrow, reader: str) -> None:
    role = reader_roles(escrow.cloud)[reader]
    s3 = escrow.client(role, "s3")
    assert s3.get_object(Bucket=escrow.bucket, Key=escrow.key)["Body"].read() == RAW_CSV
    assert s3.head_object(Bucket=escrow.bucket, Key=escrow.key)["ContentLength"] == len(RAW_CSV)
    kms = escrow.client(role, "kms")
    assert kms.decrypt(CiphertextBlob=escrow.ciphertext)["Plaintext"] == b"secret"


def test_presigned_get_signed_by_training_role_is_refused(escrow: Escrow) -> None:
    url = escrow.client(training_role(escrow), "s3").generate_presigned_url(
        "get_object", Params={"Bucket": escrow.bucket, "Key": escrow.key}, ExpiresIn=300
    )
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 403
    assert b"<Code>AccessDenied</Code>" in refused.content
    assert RAW_CSV not in refused.content
    reader = reader_roles(escrow.cloud)["break-glass"]
    allowed_url = escrow.client(reader, "s3").generate_presigned_url(
        "get_object", Params={"Bucket": escrow.bucket, "Key": escrow.key}, ExpiresIn=300
    )
    allowed = requests.get(allowed_url, timeout=10)
    assert (allowed.status_code, allowed.content) == (200, RAW_CSV)


def test_copying_out_of_escrow_is_refused_to_non_readers(escrow: Escrow) -> None:
    target = f"tests/{uuid.uuid4().hex[:8]}/copied.csv"
    s3 = escrow.client(training_role(escrow), "s3")
    with pytest.raises(ClientError) as refused:
        s3.copy_object(
            Bucket=escrow.artifact_bucket,
            Key=target,
            CopySource={"Bucket": escrow.bucket, "Key": escrow.key},
        )
    assert error_code(refused) == ("AccessDenied", 403)
    upload = s3.create_multipart_upload(Bucket=escrow.artifact_bucket, Key=target)["UploadId"]
    with pytest.raises(ClientError) as part:
        s3.upload_part_copy(
            Bucket=escrow.artifact_bucket,
            Key=target,
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": escrow.bucket, "Key": escrow.key},
        )
    assert error_code(part) == ("AccessDenied", 403)
    s3.abort_multipart_upload(Bucket=escrow.artifact_bucket, Key=target, UploadId=upload)


def test_training_role_still_reads_the_artifact_bucket(escrow: Escrow) -> None:
    s3 = escrow.client(training_role(escrow), "s3")
    body = s3.get_object(Bucket=escrow.artifact_bucket, Key=escrow.artifact_key)["Body"].read()
    assert body == ARTIFACT_BYTES
    kms = escrow.client(training_role(escrow), "kms")
    data_key = escrow.cloud.key_arns[platform.DATA_KEY.logical_id]
    blob = kms.encrypt(KeyId=data_key, Plaintext=b"data")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"data"


def test_pseudonym_key_generates_verifiable_macs(escrow: Escrow) -> None:
    cloud = escrow.cloud
    key = cloud.key_arns[platform.PSEUDONYM_KEY.logical_id]
    kms = escrow.client(cloud.execution_roles[platform.SANITIZER_FUNCTION], "kms")
    described = cloud.client("kms").describe_key(KeyId=key)["KeyMetadata"]
    assert (described["KeySpec"], described["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    assert cloud.client("kms").get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False
    first = kms.generate_mac(KeyId=key, Message=b"ada@example.com", MacAlgorithm="HMAC_SHA_256")
    again = kms.generate_mac(KeyId=key, Message=b"ada@example.com", MacAlgorithm="HMAC_SHA_256")
    other = kms.generate_mac(KeyId=key, Message=b"bob@example.com", MacAlgorithm="HMAC_SHA_256")
    assert len(first["Mac"]) == 32 and first["Mac"] == again["Mac"] != other["Mac"]
    verified = kms.verify_mac(
        KeyId=key, Message=b"ada@example.com", MacAlgorithm="HMAC_SHA_256", Mac=first["Mac"]
    )
    assert verified["MacValid"] is True


def test_only_the_sanitizer_may_generate_macs_with_the_pseudonym_key(escrow: Escrow) -> None:
    key = escrow.cloud.key_arns[platform.PSEUDONYM_KEY.logical_id]
    for role in (training_role(escrow), escrow.cloud.execution_roles[platform.REGISTRY_API.name]):
        kms = escrow.client(role, "kms")
        with pytest.raises(ClientError) as refused:
            kms.generate_mac(KeyId=key, Message=b"ada@example.com", MacAlgorithm="HMAC_SHA_256")
        assert error_code(refused) == ("AccessDeniedException", 400)


# --- SageMaker, as the job's or the model's execution role -------------------------------


def _training_request(escrow: Escrow, name: str, role_arn: str, channel: str) -> dict[str, Any]:
    cloud = escrow.cloud
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": cloud.parameters[platform.TRAINING_IMAGE_PARAMETER],
            "TrainingInputMode": "File",
        },
        "RoleArn": role_arn,
        "HyperParameters": {
            "sagemaker_program": json.dumps("count_rows.py"),
            "sagemaker_submit_directory": json.dumps(escrow.source),
        },
        "InputDataConfig": [
            {
                "ChannelName": "raw",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": channel,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{escrow.artifact_bucket}/tests/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }


def _run_training(escrow: Escrow, role_arn: str) -> dict[str, Any]:
    cloud = escrow.cloud
    assert cloud.sagemaker is not None
    name = f"{platform.TRAINING_JOB_PREFIX}escrow-{uuid.uuid4().hex[:8]}"
    channel = f"s3://{escrow.bucket}/{escrow.key.rsplit('/', 1)[0]}"
    sagemaker = cloud.client("sagemaker")
    sagemaker.create_training_job(**_training_request(escrow, name, role_arn, channel))
    cloud.sagemaker.wait(name, 90)
    described: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=name)
    return described


@pytest.mark.slow
def test_training_job_as_training_role_fails_to_download_an_escrow_channel(
    escrow: Escrow,
) -> None:
    job = _run_training(escrow, training_role(escrow))
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("ClientError: Data download failed:"), reason
    assert "AccessDenied" in reason and escrow.uri in reason, reason
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Failed",
    ]


@pytest.mark.slow
def test_training_job_as_raw_pii_job_role_downloads_the_escrow_channel(escrow: Escrow) -> None:
    job = _run_training(escrow, escrow.cloud.names[platform.RAW_PII_JOB_ROLE.logical_id])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = job["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = model.removeprefix("s3://").partition("/")
    archive = escrow.cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile("report.json")
        assert member is not None
        report = json.loads(member.read())
    assert report == {"rows": 2, "sha256": hashlib.sha256(RAW_CSV).hexdigest()}


@pytest.mark.slow
def test_endpoint_whose_model_role_cannot_read_escrow_model_data_fails(
    escrow: Escrow, tmp_path: Path
) -> None:
    cloud = escrow.cloud
    assert cloud.endpoints is not None
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    key = f"tests/{uuid.uuid4().hex[:8]}/model.tar.gz"
    cloud.client("s3").put_object(Bucket=escrow.bucket, Key=key, Body=targz_bytes(folder))
    name = f"{platform.SERVING_PREFIX}escrow-{uuid.uuid4().hex[:8]}"
    sagemaker = cloud.client("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=training_role(escrow),
        PrimaryContainer={
            "Image": cloud.parameters[platform.TRAINING_IMAGE_PARAMETER],
            "ModelDataUrl": f"s3://{escrow.bucket}/{key}",
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert cloud.endpoints.wait(name, 60) == "Failed"
    reason = sagemaker.describe_endpoint(EndpointName=name)["FailureReason"]
    assert reason.startswith("ClientError: Failed to download model data"), reason
    assert "AccessDenied" in reason and f"s3://{escrow.bucket}/{key}" in reason, reason
