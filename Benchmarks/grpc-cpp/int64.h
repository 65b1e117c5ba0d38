// The payload both ways, as grpc-anchor's Counter.swift has it: one int64, 8 bytes big-endian,
// no protobuf around it.
#pragma once
#include <cstdint>

#include <grpcpp/support/byte_buffer.h>

// Returns false unless `bytes` is exactly 8 bytes.
inline bool decode_int64(const grpc::ByteBuffer& bytes, int64_t* value) {
    grpc::Slice slice;
    if (bytes.Length() != 8 || !bytes.DumpToSingleSlice(&slice).ok()) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) v = v << 8 | slice.begin()[i];
    *value = int64_t(v);
    return true;
}

inline grpc::ByteBuffer encode_int64(int64_t value) {
    uint8_t bytes[8];
    uint64_t v = uint64_t(value);
    for (int i = 7; i >= 0; i--, v >>= 8) bytes[i] = uint8_t(v);
    grpc::Slice slice(bytes, sizeof bytes);
    return grpc::ByteBuffer(&slice, 1);
}
