# The Keycloak service's command: `bash -c THIS kc.sh start`. Keycloak has no *_FILE variants
# (keycloak/keycloak#10816), so the passwords go from Swarm secret files into the process
# environment here. `$(<file)` is a bash builtin read: nothing beyond bash (the image is ubi-micro).
set -euo pipefail
KC_DB_PASSWORD="$(</run/secrets/keycloak-db-password)"
KC_BOOTSTRAP_ADMIN_PASSWORD="$(</run/secrets/keycloak-admin-password)"
export KC_DB_PASSWORD KC_BOOTSTRAP_ADMIN_PASSWORD
exec /opt/keycloak/bin/kc.sh "$@"
