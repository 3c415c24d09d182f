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
# ReDoc's sidebar always loads its logo from cdn.redoc.ly: under the docs CSP that is a
# console error, and it is a request to a host other than the app. An empty inline SVG instead.
sed 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"#' \
  redoc/package/bundles/redoc.standalone.js >"$dest/redoc.standalone.js"
grep -q cdn.redoc.ly "$dest/redoc.standalone.js" && { echo "redoc still loads from its CDN" >&2; exit 1; }
cp redoc/package/LICENSE "$dest/LICENSE.redoc"
echo "updated $dest (swagger-ui-dist $SWAGGER_UI_VERSION, redoc $REDOC_VERSION); update its README.md"
