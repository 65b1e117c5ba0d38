// grpc-cpp server: the gRPC C++ anchor's side of Ferry's object-call benchmark, the twin of
// `grpc-anchor serve`.
//
//   server --port 0
//       serves `/ferry.bench.Counter/Increment` (8 bytes in: a big-endian int64 `by`; 8 bytes
//       out: the counter's new value) over HTTP/2, plaintext, on 127.0.0.1, with the callback
//       API; prints `listening on 127.0.0.1:PORT` once, then serves until killed.
//
// gRPC picks its own threads, as an ordinary server's would.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "counter.grpc.pb.h"
#include "int64.h"

namespace {

// The raw method, so the bytes are grpc-anchor's own rather than a protobuf message's.
class Counter final : public ferry::bench::Counter::WithRawCallbackMethod_Increment<ferry::bench::Counter::Service> {
    std::atomic<int64_t> value_{0};

   public:
    grpc::ServerUnaryReactor* Increment(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override {
        auto* reactor = context->DefaultReactor();
        int64_t by;
        if (!decode_int64(*request, &by)) {
            reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected 8 bytes"));
            return reactor;
        }
        *response = encode_int64(value_.fetch_add(by, std::memory_order_relaxed) + by);
        reactor->Finish(grpc::Status::OK);
        return reactor;
    }
};

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && std::strcmp(argv[i], "--port") == 0) {
            port = std::atoi(argv[i + 1]);
        } else {
            std::fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
            return 2;
        }
    }
    Counter counter;
    int bound = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
    builder.RegisterService(&counter);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || bound == 0) {
        std::fprintf(stderr, "server: could not listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    // Flushed at once, so a script waiting on the file (lib.sh's listening_address) sees it.
    std::printf("listening on 127.0.0.1:%d\n", bound);
    std::fflush(stdout);
    server->Wait();
}
