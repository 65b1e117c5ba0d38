// Deep recursion: every call keeps a frame (the store after it defeats tail-call elimination).
#include "ferry.h"

static volatile int sink;

__attribute__((noinline)) static int descend(int n) {
    if (n == 0) return 0;
    int below = descend(n - 1);
    sink = below;
    return below + 1;
}

FERRY_EXPORT("recurse") int recurse(int depth) { return descend(depth); }
