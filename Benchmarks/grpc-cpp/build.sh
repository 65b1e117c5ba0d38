#!/usr/bin/env bash
# Builds the gRPC C++ anchor into build/ (server, client), against Debian's libgrpc++-dev and
# protobuf-compiler-grpc; does nothing when both are newer than every source. Compiles at
# nice 10, since this runs beside other builds.
set -euo pipefail
cd "$(dirname "$0")"
sources=(counter.proto int64.h server.cc client.cc build.sh)
up_to_date() { local s; for s in "${sources[@]}"; do [ "$1" -nt "$s" ] || return 1; done; }
if up_to_date build/server && up_to_date build/client; then exit 0; fi

mkdir -p build
protoc -I . --cpp_out=build --grpc_out=build --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" counter.proto
read -ra flags <<<"$(pkg-config --cflags --libs grpc++ protobuf)"
cxx() { nice -n 10 g++ -std=c++17 -O2 -Wall -Ibuild "$@" "${flags[@]}"; }
cxx -o build/server server.cc build/counter.pb.cc build/counter.grpc.pb.cc
cxx -o build/client client.cc  # calls by name through the generic stub: no generated code
