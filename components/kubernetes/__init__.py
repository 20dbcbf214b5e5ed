"""`platform: kubernetes`: SPIRE in Kubernetes clusters, from typed pulumi-kubernetes resources.

One module per part, one pulumi-kubernetes Provider per cluster (`cluster.py`); pure builders of
pod security and SPIRE configs (`security.py`, `spire_config.py`) so tests can check them without
an engine. The basic topology (`basic.py`) is the design's single cluster:

    spire-server   SPIRE server StatefulSet + its PostgreSQL (datastore), k8s_psat node attestation
    spire-system   agent DaemonSet (hostPID, socket /run/spire/sockets/agent.sock), SPIFFE CSI driver
    production     the sample workloads, which mount the Workload API through the CSI driver

Not a Helm chart: every object is a typed resource the program owns, so `pulumi preview` shows
each one, the tests assert on each pod spec, and the security rules are code, not values.
"""
