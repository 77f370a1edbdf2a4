#!/usr/bin/env bash
# Runs `nginx -t` on every configuration in nginx/ with the usher module
# loaded, each in its own temporary prefix. Exits non-zero if any fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${USHER_NGINX_MODULE:-$ROOT/target/nginx/ngx_http_usher_module.so}"
NGINX="${NGINX_BIN:-/usr/sbin/nginx}"

if [ ! -f "$MODULE" ]; then
    echo "validate-nginx-configs: $MODULE missing: run scripts/build-nginx-module.sh" >&2
    exit 1
fi

failed=0
for conf in "$ROOT"/nginx/*.conf; do
    name="$(basename "$conf")"
    prefix="$(mktemp -d)"
    mkdir -p "$prefix/logs" "$prefix/modules" "$prefix/conf" "$prefix/tmp"
    cp "$MODULE" "$prefix/modules/ngx_http_usher_module.so"
    cp "$ROOT"/nginx/* "$prefix/conf/"
    printf 'validate-%s\n' "$(date +%s%N)" >"$prefix/conf/usher.token"
    if out="$("$NGINX" -t -q -p "$prefix/" -c "conf/$name" -e "$prefix/logs/error.log" 2>&1)"; then
        echo "ok      nginx/$name"
    else
        echo "FAILED  nginx/$name"
        echo "$out" | sed 's/^/        /'
        failed=1
    fi
    rm -rf "$prefix"
done
exit "$failed"
