// The `wasm-counter` object of `ferry up`: the WIT interface in Interfaces/counter.wit, as a
// guest. Each method is an export of the same name; the state is the guest's linear memory,
// which Ferry saves when the object is deactivated and restores when it is activated again.
#include "ferry.h"

static long long value;

FERRY_EXPORT("increment") long long increment(long long by) {
    value += by;
    return value;
}

FERRY_EXPORT("get") long long get(void) { return value; }
