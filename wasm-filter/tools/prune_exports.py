#!/usr/bin/env python3
"""Removes proxy-wasm callbacks the filter does not implement from a module's
exports, in place.

Envoy (proxy-wasm-cpp-host) looks each `proxy_on_*` callback up by export
name and skips the call into the VM when it is not exported. The Rust SDK
exports every callback, so without this step Envoy calls into V8 for every
response body chunk (and `on_done`) of every request only to hear
"Continue". The functions stay in the module; only their exports go.

usage: prune_exports.py MODULE.wasm
"""
import sys

# Callbacks no usher role implements (default trait bodies only).
PRUNE = {
    "proxy_on_done",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_request_trailers",
    "proxy_on_response_trailers",
    "proxy_on_queue_ready",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_data",
    "proxy_on_upstream_connection_close",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
    "proxy_on_foreign_function",
}


def leb(data, pos):
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def enc(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def prune(data):
    if data[:8] != b"\0asm\x01\0\0\0":
        raise SystemExit("prune_exports: not a wasm module")
    out = bytearray(data[:8])
    pos = 8
    removed = []
    while pos < len(data):
        sid = data[pos]
        size, body = leb(data, pos + 1)
        end = body + size
        if sid == 7:
            count, p = leb(data, body)
            kept = []
            for _ in range(count):
                start = p
                n, p = leb(data, p)
                name = data[p : p + n].decode()
                p += n + 1  # name, kind
                _, p = leb(data, p)  # index
                if name in PRUNE:
                    removed.append(name)
                else:
                    kept.append(data[start:p])
            content = enc(len(kept)) + b"".join(kept)
            out += bytes([7]) + enc(len(content)) + content
        else:
            out += data[pos:end]
        pos = end
    return bytes(out), removed


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        data = f.read()
    new, removed = prune(data)
    with open(path, "wb") as f:
        f.write(new)
    print(f"prune_exports: {len(removed)} unused callbacks unexported from {path}")


if __name__ == "__main__":
    main()
