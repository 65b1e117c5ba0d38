// Talks to the host: logs, takes each message, answers it upper-cased, and says how many.
#include "ferry.h"

static char buffer[4096];

FERRY_EXPORT("serve") int serve(void) {
    FERRY_LOG("messages guest: serving");
    int answered = 0;
    for (;;) {
        int length = ferry_receive(buffer, sizeof buffer);
        if (length < 0) return answered;
        for (int i = 0; i < length; i++) {
            if (buffer[i] >= 'a' && buffer[i] <= 'z') buffer[i] -= 32;
        }
        if (ferry_send(buffer, length) != 0) return -1;
        answered++;
    }
}

FERRY_EXPORT("roll") int roll(void) {
    unsigned char byte;
    ferry_random(&byte, 1);
    return byte;
}

FERRY_EXPORT("uptime_ms") long long uptime_ms(void) { return ferry_clock_ms(); }
