#!/usr/bin/env bash
# Run the whole test suite against the real services. Starts the stack when
# it is not running and stops it afterwards only in that case, so a developer's
# running stack is left alone. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

started=0
if ! $PY scripts/stack.py status >/dev/null 2>&1; then
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then
    $PY scripts/stack.py down-services
  fi
}
trap cleanup EXIT

$PY scripts/stack.py up || exit 1
$PY scripts/stack.py install >/dev/null || exit 1

$PY -m pytest "$@"
status=$?
if [ "$status" = 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
