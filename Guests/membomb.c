// A memory bomb: grows linear memory a page at a time and touches every page it gets.
#include "ferry.h"

FERRY_EXPORT("bomb") int bomb(int pages) {
    int grown = 0;
    for (int i = 0; i < pages; i++) {
        int previous = __builtin_wasm_memory_grow(0, 1);
        if (previous < 0) return grown;  // refused without a trap: report what we got
        volatile char *last = (volatile char *)(unsigned long)(previous * 65536 + 65535);
        *last = 1;
        grown++;
    }
    return grown;
}
