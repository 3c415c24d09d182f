#!/usr/bin/env bash
# Refresh the pinned Swagger UI and ReDoc files served at /static/docs (needs npm).
set -euo pipefail
SWAGGER_UI_VERSION=5.35.0
REDOC_VERSION=2.5.4
dest="$(cd "$(dirname "$0")/.." && pwd)/src/app/static/docs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" "redoc@$REDOC_VERSION" >/dev/null
mkdir swagger redoc
tar xzf "swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C swagger
tar xzf "redoc-$REDOC_VERSION.tgz" -C redoc
cp swagger/package/swagger-ui-bundle.js swagger/package/swagger-ui.css "$dest/"
cp swagger/package/favicon-32x32.png "$dest/favicon.png"
cp swagger/package/LICENSE "$dest/LICENSE.swagger-ui"
cp redoc/package/bundles/redoc.standalone.js "$dest/"
cp redoc/package/LICENSE "$dest/LICENSE.redoc"
echo "updated $dest (swagger-ui-dist $SWAGGER_UI_VERSION, redoc $REDOC_VERSION); update its README.md"
