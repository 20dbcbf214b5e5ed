# shellcheck shell=bash
# Sourced by scripts/up and scripts/test: create .venv if needed and install the pinned
# requirements when they changed since the last install (a stamp file holds their hash), then the
# project itself (editable: the `ops` console script).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv"
PY="${PYTHON:-python3}"
reqs="$1"
if [ ! -x "${VENV}/bin/python" ]; then
  echo "==> creating virtualenv ${VENV}"
  "${PY}" -m venv "${VENV}"
fi
stamp="${VENV}/.requirements-$(basename "${reqs}").sha256"
want="$(cat "${ROOT}"/requirements*.txt "${ROOT}/pyproject.toml" | sha256sum | cut -d' ' -f1)"
installed() { [ -f "$1" ] && [ "$(cat "$1")" = "${want}" ]; }
# requirements-dev.txt starts with `-r requirements.txt`: its install holds the runtime's too.
if ! installed "${stamp}" && ! { [ "${reqs}" = requirements.txt ] &&
    installed "${VENV}/.requirements-requirements-dev.txt.sha256"; }; then
  echo "==> installing ${reqs}"
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${ROOT}/${reqs}"
  # The project itself, editable and without dependencies: gives .venv/bin/ops (pyproject.toml).
  # (setuptools warns that an editable install follows the working tree: that is the point.)
  PYTHONWARNINGS="ignore:Editable installation" \
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "${ROOT}"
  echo "${want}" > "${stamp}"
fi
