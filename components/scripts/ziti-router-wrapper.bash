# The router service's command: `bash -c THIS entrypoint run config.yml`. Re-enrolls when the
# one-time token changed (the previous identity is moved aside), then hands over to the image's
# entrypoint. The token's hash is written before enrolling: if enrollment fails, the identity is
# still missing and the next start enrolls again with the same token.
set -euo pipefail
home="/ziti-router"
mark="$home/.enrollment-jwt.sha256"
sum="$(sha256sum < /run/secrets/ziti-router-enrollment.jwt)"
sum="${sum%% *}"
if [[ -s "$mark" && "$(<"$mark")" != "$sum" ]]; then
  old="$home/.replaced-$(date +%s)"
  mkdir "$old"
  shopt -s dotglob nullglob
  for f in "$home"/*; do
    [[ "${f##*/}" == .replaced-* ]] || mv "$f" "$old/"
  done
  echo "enrollment token changed: previous identity moved to $old; enrolling with the new token"
fi
printf "%s\n" "$sum" > "$mark"
exec /entrypoint.bash "$@"
