"""SpacesBucket: a private, versioned bucket with expiring noncurrent versions and a key scoped to
it; bucket names derived from the domain; rclone volume options for Spaces."""

from __future__ import annotations

import re

import pulumi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.storage import SpacesBucket, bucket_name
from tests.harness.mock_engine import run

BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
KEY = "digitalocean:index/spacesKey:SpacesKey"


class TestBucketNames:
    def test_derived_from_domain_stack_and_role(self) -> None:
        assert bucket_name("zt.acme-identity.net", "prod", "spire") == "zt-acme-identity-net-prod-spire"

    @given(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,120}[a-z0-9])?", fullmatch=True), st.sampled_from(["spire", "ziti"]))
    def test_always_a_valid_spaces_name(self, domain: str, role: str) -> None:
        name = bucket_name(domain, "prod", role)
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name), name
        assert name.endswith(f"-prod-{role}")

    def test_bad_inputs_fail_at_construction(self) -> None:
        with pytest.raises(ValueError, match="bucket name"):
            run(lambda: SpacesBucket("b", bucket_name="Bad_Name", region="fra1", noncurrent_version_days=3))
        with pytest.raises(ValueError, match="at least 1"):
            run(lambda: SpacesBucket("b", bucket_name="good-name", region="fra1", noncurrent_version_days=0))


class TestSpacesBucket:
    @staticmethod
    def body() -> None:
        b = SpacesBucket("backups", bucket_name="acme-prod-spire", region="ams3", noncurrent_version_days=7)
        pulumi.export("secret_key", b.secret_key)
        pulumi.export("access_key_id", b.access_key_id)
        pulumi.export("endpoint", b.endpoint)
        pulumi.export("name", b.bucket_name)
        pulumi.export("rclone", b.rclone_driver_options("backups/x"))

    def test_children_and_outputs(self) -> None:
        r = run(self.body, stack="prod")
        comp = r.get("identity-platform:storage:SpacesBucket", "backups")
        bucket, key = r.get(BUCKET, "backups-bucket"), r.get(KEY, "backups-key")
        assert bucket.parent == comp.urn and key.parent == comp.urn
        assert bucket.inputs["name"] == "acme-prod-spire" and bucket.inputs["region"] == "ams3"
        assert bucket.inputs["acl"] == "private" and bucket.inputs["forceDestroy"] is False
        assert bucket.inputs["lifecycleRules"][0]["noncurrentVersionExpiration"] == {"days": 7}
        assert key.inputs["grants"] == [{"bucket": "acme-prod-spire", "permission": "readwrite"}]
        assert r.exports["secret_key"].secret and r.exports["secret_key"].value.startswith("mock-secret-value-")
        assert not r.exports["access_key_id"].secret
        assert r.exports["endpoint"].value == "https://ams3.digitaloceanspaces.com"
        opts = r.exports["rclone"]
        assert opts.secret
        assert opts.value["path"] == "acme-prod-spire/backups/x"
        assert opts.value["s3-endpoint"] == "ams3.digitaloceanspaces.com"
        assert opts.value["s3-access-key-id"] == r.exports["access_key_id"].value

    @pytest.mark.parametrize("path", ["/abs", "", "a/../b"])
    def test_rclone_paths_stay_inside_the_bucket(self, path: str) -> None:
        def body() -> None:
            SpacesBucket("b", bucket_name="good-name", region="fra1", noncurrent_version_days=1).rclone_driver_options(
                path
            )

        with pytest.raises(ValueError, match="relative to the bucket"):
            run(body)

    def test_versioned_and_the_secret_key_is_a_secret_output(self) -> None:
        r = run(self.body, stack="prod")
        bucket, key = r.get(BUCKET, "backups-bucket"), r.get(KEY, "backups-key")
        assert bucket.inputs["versioning"] == {"enabled": True}
        (rule,) = bucket.inputs["lifecycleRules"]
        assert rule["enabled"] is True and rule["abortIncompleteMultipartUploadDays"] == 7
        assert "secretKey" in key.additional_secret_outputs
        assert key.inputs["name"] == "acme-prod-spire-rw"
