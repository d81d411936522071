#!/usr/bin/env bash
# Refresh constraints.txt: resolve kseg's dependencies afresh in a new venv, run the README's test
# command there, and record the versions only if the suite passes.
#
#   tools/lock.sh [VENV]        default /tmp/kseg-lock-venv
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/kseg-lock-venv}
rm -rf "$VENV"
python3 -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip install -e '.[test]' && python -m pytest -q
{
  echo "# The versions the test suite last passed with on a fresh resolve (Python 3.11, Linux x86-64)."
  echo "# Reproduce that set: pip install -c constraints.txt -e '.[test]'"
  echo "# Refresh it after a green run in a new venv: tools/lock.sh"
  pip freeze --exclude-editable | grep -v '^#'
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
