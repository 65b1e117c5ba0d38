// Ferry's host API for guests: the `ferry` import module (see Sources/FerryGuest/Docs.docc).
#ifndef FERRY_GUEST_H
#define FERRY_GUEST_H

#define FERRY_IMPORT(name) __attribute__((import_module("ferry"), import_name(name)))
#define FERRY_EXPORT(name) __attribute__((export_name(name)))

/// Writes a line to the host's log.
FERRY_IMPORT("log") void ferry_log(const char *text, int length);
/// Milliseconds on the host's monotonic clock.
FERRY_IMPORT("clock_ms") long long ferry_clock_ms(void);
/// Fills `buffer` with random bytes.
FERRY_IMPORT("random") void ferry_random(void *buffer, int length);
/// Gives the host a chance to run others, end a time slice or stop a guest past its deadline.
FERRY_IMPORT("yield") void ferry_yield(void);
/// Sends a message to the host; 0 when taken, -1 when too large.
FERRY_IMPORT("send") int ferry_send(const void *message, int length);
/// Takes the host's next message into `buffer`; its length, or -1 when none is waiting, or -2
/// when it does not fit (it stays queued).
FERRY_IMPORT("receive") int ferry_receive(void *buffer, int capacity);

static inline int ferry_strlen(const char *text) {
    int n = 0;
    while (text[n]) n++;
    return n;
}

#define FERRY_LOG(literal) ferry_log(literal, (int)sizeof(literal) - 1)

#endif
