"""Python dynamic providers: keycloak/, ziti/, spire/ (client.py, models.py, provider.py each).

Importing any of them installs the fix in `_serialization` for the SDK's provider serialization,
which otherwise fails once a program holds about a thousand dynamic resources.
"""

from dynamic_providers import _serialization

_serialization.install()
