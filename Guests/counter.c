// A counter object: state in linear memory, methods as exports.
#include "ferry.h"

static int value;

FERRY_EXPORT("increment") int increment(int by) {
    value += by;
    return value;
}

FERRY_EXPORT("get") int get(void) { return value; }
