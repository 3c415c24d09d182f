#!/bin/sh
# Install uv into a private directory (default .tools/) with the system Python, from PyPI.
#
# Never into the system Python itself: Debian and Ubuntu refuse that (PEP 668,
# "externally-managed-environment"), and `pip install --user` too. A private virtual
# environment works wherever python3-venv is installed; without it, pip's --target does.
# The Makefile then runs .tools/bin/uv.
set -eu

dir=${1:-.tools}
python=${PYTHON:-python3}
pip_quiet="--quiet --disable-pip-version-check"

if "$python" -m venv "$dir" >/dev/null 2>&1 && "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install $pip_quiet uv
elif "$python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$dir"
  # shellcheck disable=SC2086
  "$python" -m pip install $pip_quiet --target "$dir/packages" uv
  mkdir -p "$dir/bin"
  ln -sf ../packages/bin/uv "$dir/bin/uv"
else
  rm -rf "$dir"
  echo "cannot install uv: $python has neither venv nor pip (Debian/Ubuntu: apt install python3-venv)" >&2
  exit 1
fi
"$dir/bin/uv" --version
