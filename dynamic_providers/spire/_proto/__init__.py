"""Generated SPIRE Entry API messages (see scripts/gen_protos.py), in a private descriptor pool.

The message and service names match spiffe/spire-api-sdk, so registering them in protobuf's
default pool would clash with any other copy of the SPIRE protos loaded in the same process.
"""

from google.protobuf import descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
