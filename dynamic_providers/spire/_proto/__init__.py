"""Generated SPIRE Entry API messages (see scripts/gen_protos.py), in a private descriptor pool.

The message and service names match spiffe/spire-api-sdk, so registering them in protobuf's
default pool would clash with any other copy of the SPIRE protos loaded in the same process.
A consequence: `google.protobuf.*Value` wrapper fields (the ListEntries filter's `by_hint`,
`by_downstream`) are this pool's classes, so set them with a dict or by attribute
(`flt.by_hint.value = "x"`), not with an instance from `google.protobuf.wrappers_pb2`.
"""

from google.protobuf import descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
