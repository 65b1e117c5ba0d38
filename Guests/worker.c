// A user-level thread for Ferry's guest scheduler: `work` computes in rounds and offers to yield
// after each; `wait_message` blocks in a host call until the host sends it a message.
#include "ferry.h"

FERRY_SCHEDULABLE(4096)

/// A hash over `rounds` rounds of `steps` steps, yielding after each round.
FERRY_EXPORT("work") int work(int rounds, int steps) {
    unsigned int hash = 2166136261u;
    for (int round = 0; round < rounds; round++) {
        for (int step = 0; step < steps; step++) hash = (hash ^ (unsigned int)(round * steps + step)) * 16777619u;
        ferry_yield();
    }
    return (int)(hash & 0x7fffffff);
}

/// Waits for one message; returns its length times 1000 plus its first byte.
FERRY_EXPORT("wait_message") int wait_message(void) {
    static unsigned char message[256];
    int length = ferry_receive_wait(message, sizeof message);
    if (length <= 0) return length;
    return length * 1000 + message[0];
}
