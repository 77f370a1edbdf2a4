#!/usr/bin/env bash
# Builds usher's nginx dynamic module against Debian's nginx-dev and installs
# it as target/nginx/ngx_http_usher_module.so.
#
# 1. configure a copy of /usr/share/nginx/src in target/nginx-build with
#    Debian's own flags (once; cached until conf_flags changes);
# 2. cargo build --profile release -p usher-nginx-module with NGINX_BUILD_DIR;
# 3. install the .so by writing a temp file and renaming it (never overwrite a
#    library nginx may have loaded: that crashes it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${NGINX_DEV_SRC:-/usr/share/nginx/src}"
BUILD="$ROOT/target/nginx-build"
OUT="$ROOT/target/nginx"
export NGINX_BUILD_DIR="${NGINX_BUILD_DIR:-$BUILD/objs}"

if [ ! -f "$SRC/configure" ] || [ ! -f "$SRC/conf_flags" ]; then
    echo "build-nginx-module: $SRC/configure or conf_flags missing: apt-get install -y nginx-dev" >&2
    exit 1
fi

stamp="$BUILD/.usher-configured"
want="$(sha256sum "$SRC/conf_flags" | cut -d' ' -f1) $(nginx -v 2>&1 | tr -d '\n')"
if [ ! -f "$BUILD/objs/ngx_auto_config.h" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "build-nginx-module: configuring nginx-dev tree in $BUILD"
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    cp -a "$SRC/." "$BUILD/"
    (
        cd "$BUILD"
        # shellcheck disable=SC1091
        bash -c '. ./conf_flags; ./configure --with-cc-opt="-g -O2 -fPIC" --with-ld-opt="-fPIC" "${NGX_CONF_FLAGS[@]}"' \
            >"$BUILD/configure.log" 2>&1 || { tail -30 "$BUILD/configure.log" >&2; exit 1; }
    )
    echo "$want" >"$stamp"
fi

cd "$ROOT"
cargo build --profile release -p usher-nginx-module

mkdir -p "$OUT"
tmp="$(mktemp "$OUT/.ngx_http_usher_module.so.XXXXXX")"
cp "$ROOT/target/release/libngx_http_usher_module.so" "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$OUT/ngx_http_usher_module.so"
echo "build-nginx-module: installed $OUT/ngx_http_usher_module.so"
