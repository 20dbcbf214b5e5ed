"""SpacesBucket: a private, versioned DigitalOcean Spaces bucket with its own read-write key,
and the rclone Docker volumes that put its objects on a node.

One bucket per stack (spire, keycloak, ziti), each with a key that can reach only that bucket:
a leaked key exposes one stack's backups, not the others', and each stack's retention can differ.
(Spaces keys grant per bucket; there is no prefix-scoped grant, so "one bucket with prefixes"
would give every stack's key access to every stack's data.) See docs/architecture.md, "Storage policy".

What goes on an rclone volume: files written whole and then closed (backups, archives). rclone
uploads a file only after it is closed and coordinates no locks, so live databases never run on
one; they use node-local volumes and write backups here.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_digitalocean as digitalocean

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def bucket_name(domain: str, stack: str, role: str) -> str:
    """A DNS-safe, globally distinctive bucket name: `<domain-slug>-<stack>-<role>`, at most 63 chars."""
    slug = re.sub(r"[^a-z0-9]+", "-", domain.lower()).strip("-")
    suffix = f"-{stack}-{role}"
    name = (slug[: 63 - len(suffix)].rstrip("-") + suffix).lstrip("-")
    if not _BUCKET_RE.match(name):
        raise ValueError(
            f"cannot derive a valid Spaces bucket name from domain {domain!r}, stack {stack!r}, role {role!r}"
        )
    return name


class SpacesBucket(pulumi.ComponentResource):
    """A private bucket (versioning on, noncurrent versions expire) and a key for it alone."""

    bucket_name: pulumi.Output[str]
    region: str
    endpoint: str
    access_key_id: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        bucket_name: str,
        region: str,
        noncurrent_version_days: int,
        force_destroy: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("identity-platform:storage:SpacesBucket", resource_name, None, opts)
        if not _BUCKET_RE.match(bucket_name):
            raise ValueError(f"bucket name {bucket_name!r}: use 3-63 lowercase letters, digits and '-'")
        if noncurrent_version_days < 1:
            raise ValueError("noncurrent_version_days must be at least 1")
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = digitalocean.SpacesBucket(
            f"{resource_name}-bucket",
            name=bucket_name,
            region=region,
            acl="private",
            versioning=digitalocean.SpacesBucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                digitalocean.SpacesBucketLifecycleRuleArgs(
                    id="expire-noncurrent-versions",
                    enabled=True,
                    noncurrent_version_expiration=digitalocean.SpacesBucketLifecycleRuleNoncurrentVersionExpirationArgs(
                        days=noncurrent_version_days
                    ),
                    abort_incomplete_multipart_upload_days=7,
                )
            ],
            force_destroy=force_destroy,
            # The provider has no rename: a new name must be a new bucket.
            # The backups live here: `pulumi destroy` must not take them (unprotect on purpose first).
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["name", "region"], protect=True),
        )
        self.key = digitalocean.SpacesKey(
            f"{resource_name}-key",
            name=f"{bucket_name}-rw",
            grants=[digitalocean.SpacesKeyGrantArgs(bucket=self.bucket.name, permission="readwrite")],
            opts=child.merge(pulumi.ResourceOptions(additional_secret_outputs=["secret_key"])),
        )
        self.bucket_name = self.bucket.name
        self.region = region
        self.endpoint = f"https://{region}.digitaloceanspaces.com"
        self.access_key_id = self.key.access_key
        self.secret_key = pulumi.Output.secret(self.key.secret_key)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "region": self.region,
                "endpoint": self.endpoint,
                "access_key_id": self.access_key_id,
                "secret_key": self.secret_key,
            }
        )

    def rclone_driver_options(self, path: str, *, cache_mode: str = "writes") -> pulumi.Output[dict[str, str]]:
        """rclone volume options for `<bucket>/<path>` on Spaces (a secret: it holds the key).

        `vfs-cache-mode=writes` buffers each file locally until it is closed, then uploads it whole:
        what backup archives need. `s3-no-check-bucket`: the key may not create buckets, and the
        bucket exists. `allow-other`: containers run as non-root users (postgres, ziggy).
        """
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"rclone path {path!r} must be relative to the bucket")
        if cache_mode not in ("writes", "full"):
            raise ValueError("rclone volumes here hold whole files that are written then read back: use writes or full")
        opts = pulumi.Output.all(self.bucket_name, self.access_key_id, self.secret_key).apply(
            lambda v: {
                "type": "s3",
                "path": f"{v[0]}/{path}",
                "s3-provider": "DigitalOcean",
                "s3-endpoint": f"{self.region}.digitaloceanspaces.com",
                "s3-env-auth": "false",
                "s3-access-key-id": v[1],
                "s3-secret-access-key": v[2],
                "s3-acl": "private",
                "s3-no-check-bucket": "true",
                "vfs-cache-mode": cache_mode,
                "allow-other": "true",
            }
        )
        return pulumi.Output.secret(opts)
