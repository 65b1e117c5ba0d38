// Runaway guests: one spins without ever calling the host, one yields in its loop.
#include "ferry.h"

static volatile unsigned long long turns;

FERRY_EXPORT("spin") void spin(void) {
    for (;;) turns++;
}

FERRY_EXPORT("spin_yielding") void spin_yielding(void) {
    for (;;) {
        turns++;
        if ((turns & 0xffff) == 0) ferry_yield();
    }
}
