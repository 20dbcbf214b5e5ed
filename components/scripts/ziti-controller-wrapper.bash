# The controller service's command: `bash -c THIS entrypoint run config.yml`. Puts the
# Pulumi-owned PKI root in place on an empty volume, reads the admin password from its Swarm
# secret into the process only, then hands over to the image's entrypoint with the arguments.
# The root directory is laid out as `ziti pki` lays out a CA it made (serial, crlnumber,
# index.txt, index.txt.attr, crls/): `ziti pki create intermediate` fails without index.txt.
set -euo pipefail
root="/ziti-controller/pki/root"
if [[ ! -s "$root/certs/root.cert" ]]; then
  mkdir -p "$root/certs" "$root/keys" "$root/crls"
  chmod 0700 "$root/keys" "$root/crls"
  cp /run/secrets/ziti-pki-root.cert "$root/certs/root.cert"
  cp /run/secrets/ziti-pki-root.key "$root/keys/root.key"
  chmod 0400 "$root/keys/root.key"
  printf "01\n" > "$root/serial"
  printf "01\n" > "$root/crlnumber"
  : > "$root/index.txt"
  printf "unique_subject = no\n" > "$root/index.txt.attr"
fi
ZITI_PWD="$(</run/secrets/ziti-admin-password)"
export ZITI_PWD
exec /entrypoint.bash "$@"
