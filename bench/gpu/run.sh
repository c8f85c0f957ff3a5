#!/usr/bin/env bash
# The ResNet-50 study on a lent GPU, in one call (bench/gpu/README.md): from this machine,
#   python bench/gpu/prepare.py
#   run(command="bash bench/gpu/run.sh", carry=[".gpu"], timeout_s=600)
# The study keeps its own time box (BUDGET_S, default 550 s) inside the call's 600 s.
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that comes back}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".gpu/whl/*.whl" > /dev/null; then
  if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl; then
    echo "error: the wheels in .gpu/whl did not install; rebuild them with python bench/gpu/prepare.py" >&2
    exit 2
  fi
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
exec python3 bench/gpu/study.py --out "$OUT" --budget-s "${BUDGET_S:-550}" "$@"
