#!/bin/sh
# Runs the conformance suite: every shipped scenario (also under ASan+UBSan)
# and N random scenarios from seed SEED through ref.py (CPython >= 3.13)
# and build/scenario. Usage: run.sh [N [SEED]]. Ends with the runner's
# "conformance: N passed, M failed" line (one per part).
N=${1:-1000}; SEED=${2:-1}
cd "$(dirname "$0")/../.."
PY=python3
if PYENV_VERSION=3.13.0 python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
    PY="env PYENV_VERSION=3.13.0 python3"
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
    echo "conformance: no CPython >= 3.13: the random part is skipped"
    N=0
fi
$PY test/conformance/run.py --c build/scenario-asan --random 0 || rc=1
if [ "$N" -gt 0 ]; then
    $PY test/conformance/run.py --c build/scenario --random "$N" --seed "$SEED" --jobs 2 || rc=1
fi
exit ${rc:-0}
