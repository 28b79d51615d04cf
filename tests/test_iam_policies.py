"""The IAM policies of deploy/iam/ are enough, and each add-on is needed: checked on moto with IAM enforced.

moto's server checks every request's signature and the IAM policies of the
caller once /moto-api/reset-auth has been told to (`INITIAL_NO_AUTH_ACTION_COUNT`
in server mode). Each test runs a moto server of its own: the buckets, users
and policies are made while it still lets anyone in, then enforcement starts
and s3s3 runs with the users' keys only.

moto (5.2) authorizes an S3 request by its operation's name (s3:HeadObject,
s3:ListObjectsV2, s3:CreateMultipartUpload), where AWS uses IAM actions
(s3:GetObject, s3:ListBucket, s3:PutObject). So each shipped policy is
installed translated: every action becomes the operations AWS authorizes
with it (TO_OPERATIONS, from AWS's "Actions, resources, and condition keys
for Amazon S3"). What moto then proves is that s3s3 sends no operation
outside the policy's actions; that table, and AWS's own checks moto does not
make (x-amz-tagging on a PUT needs s3:PutObjectTagging), it cannot prove.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s3s3.api import upload
from s3s3.cli import main
from s3s3.config import Config
from s3s3.store import open_store
from tests.helpers import endpoint_section
from tests.servers.base import Server
from tests.servers.moto import start_moto

pytestmark = pytest.mark.timeout(120)

IAM = Path(__file__).resolve().parent.parent / "deploy" / "iam"
MiB = 1024 * 1024


# Each IAM action of the policies -> the S3 operations AWS authorizes with it, named as moto checks them.
TO_OPERATIONS = {
    "s3:ListBucket": ["s3:ListObjects", "s3:ListObjectsV2", "s3:HeadBucket"],
    "s3:GetObject": ["s3:GetObject", "s3:HeadObject"],
    "s3:GetObjectTagging": ["s3:GetObjectTagging"],
    "s3:PutObject": ["s3:PutObject", "s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload",
                     "s3:CopyObject", "s3:UploadPartCopy"],
    "s3:PutObjectTagging": ["s3:PutObjectTagging"],
    "s3:PutObjectAcl": ["s3:PutObjectAcl"],
    "s3:AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "s3:ListBucketMultipartUploads": ["s3:ListMultipartUploads"],
    "s3:DeleteObject": ["s3:DeleteObject"],
    "kms:GenerateDataKey": ["kms:GenerateDataKey"],
    "kms:Decrypt": ["kms:Decrypt"],
}  # fmt: skip


def policy(name: str, **buckets: str) -> str:
    """A shipped policy, its SOURCE-BUCKET / DEST-BUCKET filled in and its actions as moto names them."""
    text = (IAM / name).read_text()
    for placeholder, bucket in buckets.items():
        text = text.replace(placeholder.replace("_", "-"), bucket)
    document = json.loads(text)
    for statement in list(document["Statement"]):
        if "s3:DeleteObject" in statement["Action"]:
            # AWS authorizes DeleteObjects key by key with s3:DeleteObject; moto asks for the operation on the
            # bucket first, then checks each key.
            buckets = [resource.removesuffix("/*") for resource in statement["Resource"]]
            document["Statement"].append({"Effect": "Allow", "Action": ["s3:DeleteObjects"], "Resource": buckets})
        statement["Action"] = [op for action in statement["Action"] for op in TO_OPERATIONS[action]]
    return json.dumps(document)


@dataclass
class Enforced:
    """A moto server that enforces IAM, with a source and a destination bucket and one user per policy set."""

    server: Server
    source: str
    dest: str
    users: dict[str, Server]  # user name -> the server as that user signs in

    def config(self, tmp_path: Path, dest_user: str) -> Config:
        text = endpoint_section("source", self.users["source"], self.source)
        text += endpoint_section("dest1", self.users[dest_user], self.dest)
        text += "[pubsub]\nurl = redis://127.0.0.1:1/0\n"
        path = tmp_path / f"{dest_user}.ini"
        path.write_text(text)
        return Config.from_file(path)


USERS = {
    "source": ("source-read.json",),
    "copy": ("dest-copy.json",),
    "copy-delete": ("dest-copy.json", "dest-delete.json"),
    "copy-abort": ("dest-copy.json", "dest-abort-uploads.json"),
}


@pytest.fixture
def enforced(tmp_path: Path) -> Iterator[Enforced]:
    server = start_moto(str(tmp_path))
    try:
        yield _set_up(server)
    finally:
        server.stop()


def _set_up(server: Server) -> Enforced:
    # Given, while moto lets anyone in: the buckets, their objects, and a user per policy set
    root = server.client()
    source, dest = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    root.create_bucket(Bucket=source)
    root.create_bucket(Bucket=dest)
    root.put_object(Bucket=source, Key="small.txt", Body=b"small", Tagging="team=backup")
    root.put_object(Bucket=source, Key="big.bin", Body=b"b" * (9 * MiB), Tagging="size=big")  # copied in parts
    root.put_object(Bucket=source, Key="later.txt", Body=b"later")
    root.put_object(Bucket=dest, Key="orphan.txt", Body=b"the source never had me")
    root.create_multipart_upload(Bucket=dest, Key="big.bin")  # left incomplete
    iam = _iam(server)
    users = {}
    for user, files in USERS.items():
        iam.create_user(UserName=user)
        for index, name in enumerate(files):
            document = policy(name, SOURCE_BUCKET=source, DEST_BUCKET=dest)
            iam.put_user_policy(UserName=user, PolicyName=f"p{index}", PolicyDocument=document)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        users[user] = Server(user, server.endpoint_url, key["AccessKeyId"], key["SecretAccessKey"])
    # When enforcement starts: from now on every request needs a user's keys and its policies' leave
    request = urllib.request.Request(f"{server.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})  # not a form: moto reads the raw body
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    return Enforced(server, source, dest, users)


def _iam(server: Server) -> Any:
    import boto3

    return boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)  # fmt: skip


def run_sync(capsys: pytest.CaptureFixture[str], config: Config, *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["bucket", "--config", config.path, "--json", "--workers", "4", *args])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1])


def test_every_policy_parses_and_names_only_actions_s3s3_needs() -> None:
    for path in sorted(IAM.glob("*.json")):
        document = json.loads(path.read_text())
        assert document["Version"] == "2012-10-17", path.name
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and set(statement["Action"]) <= set(TO_OPERATIONS), path.name
            assert all(re.match(r"arn:aws:(s3:::(SOURCE|DEST)-BUCKET|kms:)", r) for r in statement["Resource"])


@pytest.mark.slow
def test_with_the_source_and_copy_policies_a_copy_and_a_bucket_sync_succeed(
    enforced: Enforced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = enforced.config(tmp_path, "copy")
    source, dest = open_store(config.source), open_store(config.dests[0])

    # When the source user's and the copy user's keys copy one key, then sync the bucket
    (outcome,) = upload(source, [dest], "small.txt")
    code, summary = run_sync(capsys, config)

    # Then every key is copied, tags included (a copy in parts sets them with PutObjectTagging)
    assert outcome.action == "copied", outcome
    assert (code, summary["copied"], summary["failed"], summary["failures"]) == (0, 2, 0, []), summary
    assert dest.head("big.bin").tag_count == dest.head("small.txt").tag_count == 1

    # And a second sync finds nothing to do
    code, again = run_sync(capsys, config)
    assert (code, again["copied"], again["failed"]) == (0, 0, 0), again


@pytest.mark.slow
def test_deleting_at_the_destination_needs_the_delete_policy(
    enforced: Enforced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the copy-only user: --delete is refused (moto enforces), the copies are done
    code, refused = run_sync(capsys, enforced.config(tmp_path, "copy"), "--delete")
    assert code == 1 and refused["deleted"] == 0 and "Access Denied" in json.dumps(refused["failures"]), refused

    # When the user also has dest-delete.json
    code, summary = run_sync(capsys, enforced.config(tmp_path, "copy-delete"), "--delete")

    # Then the key the source never had is deleted, and so is the Content-MD5 probe the copy-only user could
    # not delete (moto keeps a PUT whose Content-MD5 is wrong; AWS refuses it and keeps nothing)
    assert (code, summary["deleted"], summary["failed"]) == (0, 2, 0), (summary["failures"], summary["errors"])


@pytest.mark.slow
def test_aborting_incomplete_uploads_needs_the_abort_policy(
    enforced: Enforced, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the copy-only user: the incomplete uploads cannot even be listed
    code, refused = run_sync(capsys, enforced.config(tmp_path, "copy"), "--abort-incomplete-uploads", "0")
    assert code == 1 and refused["aborted"] == 0, refused

    # When the user also has dest-abort-uploads.json
    code, summary = run_sync(capsys, enforced.config(tmp_path, "copy-abort"), "--abort-incomplete-uploads", "0")

    # Then the upload left incomplete is aborted
    assert (code, summary["aborted"], summary["failed"]) == (0, 1, 0), summary
