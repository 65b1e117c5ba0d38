// grpc-cpp client: the gRPC C++ anchor's load generator, the twin of `grpc-anchor load`.
//
//   client --port P --concurrency C --duration S [--warmup S]
//       one channel (one HTTP/2 connection) to 127.0.0.1:P with C callers, each calling
//       Increment(by: 1) in a loop, one call outstanding per caller; calls started during the
//       warmup are not measured. Prints one line:
//       calls_per_second=<float> p50_us=<int> p99_us=<int> calls=<int>
//
// Callers are callback-API calls rather than threads, so one process on two cores drives 64 of
// them the way grpc-anchor's tasks do: each call's completion starts that caller's next call.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "int64.h"

namespace {

using Clock = std::chrono::steady_clock;

// grpc-anchor's method, called by name: the generic stub sends our 8 bytes as they are.
const std::string kIncrement = "/ferry.bench.Counter/Increment";

struct Run {
    grpc::GenericStub* stub;
    Clock::time_point measure_from, end;
    std::mutex mutex;
    std::condition_variable all_done;
    int running = 0;
    std::string error;

    void finished(const std::string& why = "") {
        std::lock_guard<std::mutex> lock(mutex);
        if (!why.empty() && error.empty()) error = why;
        if (--running == 0) all_done.notify_one();
    }
};

// One caller: its calls follow one another, so only one callback at a time touches its fields.
struct Caller {
    Run* run;
    grpc::ByteBuffer request = encode_int64(1);
    grpc::ByteBuffer response;
    std::unique_ptr<grpc::ClientContext> context;  // a ClientContext serves one call only
    Clock::time_point start;
    std::vector<int64_t> latencies;  // nanoseconds, measured calls only

    void call() {
        start = Clock::now();
        if (start >= run->end) return run->finished();
        context = std::make_unique<grpc::ClientContext>();
        run->stub->UnaryCall(context.get(), kIncrement, grpc::StubOptions(), &request, &response,
                             [this](grpc::Status status) { answered(status); });
    }

    void answered(const grpc::Status& status) {
        auto now = Clock::now();
        int64_t count;
        if (!status.ok()) return run->finished("call failed: " + status.error_message());
        if (!decode_int64(response, &count)) return run->finished("answer is not 8 bytes");
        if (start >= run->measure_from) latencies.push_back((now - start) / std::chrono::nanoseconds(1));
        call();
    }
};

bool option(int argc, char** argv, int* i, const char* name, double* value) {
    if (std::strcmp(argv[*i], name) != 0 || *i + 1 >= argc) return false;
    *value = std::atof(argv[++*i]);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    double port = 0, concurrency = 1, duration = 3, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (!option(argc, argv, &i, "--port", &port) && !option(argc, argv, &i, "--concurrency", &concurrency) &&
            !option(argc, argv, &i, "--duration", &duration) && !option(argc, argv, &i, "--warmup", &warmup)) {
            std::fprintf(stderr, "usage: %s --port P [--concurrency C] [--duration S] [--warmup S]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || concurrency < 1) {
        std::fprintf(stderr, "client: --port and --concurrency (at least 1) are needed\n");
        return 2;
    }

    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(int(port)), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    Run run;
    run.stub = &stub;
    auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
    run.measure_from = Clock::now() + seconds(warmup);
    run.end = run.measure_from + seconds(duration);

    std::vector<Caller> callers(static_cast<size_t>(concurrency));
    run.running = int(callers.size());
    for (auto& caller : callers) caller.run = &run;
    for (auto& caller : callers) caller.call();
    {
        std::unique_lock<std::mutex> lock(run.mutex);
        run.all_done.wait(lock, [&] { return run.running == 0; });
    }
    // From the end of the warmup until the last measured call finished.
    double measured = std::chrono::duration<double>(Clock::now() - run.measure_from).count();
    if (!run.error.empty()) {
        std::fprintf(stderr, "client: %s\n", run.error.c_str());
        return 1;
    }

    std::vector<int64_t> sorted;
    for (auto& caller : callers) sorted.insert(sorted.end(), caller.latencies.begin(), caller.latencies.end());
    std::sort(sorted.begin(), sorted.end());
    auto percentile_us = [&](double p) -> long long {
        if (sorted.empty()) return 0;
        long index = std::min(long(sorted.size()) - 1, long(std::ceil(sorted.size() * p)) - 1);
        return sorted[std::max(0L, index)] / 1000;
    };
    std::printf("calls_per_second=%.1f p50_us=%lld p99_us=%lld calls=%zu\n", sorted.size() / measured,
                percentile_us(0.50), percentile_us(0.99), sorted.size());
}
