# Keycloak's healthcheck (`bash -c THIS ready PORT`): 200 from /health/ready on the management
# port PORT, or unhealthy. The image has no curl, so bash's /dev/tcp; the rest of the response is
# drained for an orderly close.
port="$1"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r status <&3
while IFS= read -r _; do :; done <&3
[[ "$status" =~ ^HTTP/1\.[01]\ 200\  ]]
