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

/// Waits for the host's next message and takes it into `buffer`: its length, or -2 when it does
/// not fit (it stays queued). Under a scheduler the guest is parked meanwhile and other guests run
/// on its kernel thread (guests built with FERRY_SCHEDULABLE); otherwise the thread waits.
FERRY_IMPORT("receive_wait") int ferry_receive_wait(void *buffer, int capacity);

/// A point where the host may capture the guest's whole execution state (memory, globals, call
/// stack) and later resume it, here or in another process. Only in guests built with Asyncify
/// (see build.sh); the call returns normally whether or not a checkpoint was taken.
FERRY_IMPORT("checkpoint") void ferry_checkpoint(void);

/// The name of the node the guest runs on, into `buffer`: its length, -1 off a node, -2 when it
/// does not fit.
FERRY_IMPORT("node_name") int ferry_node_name(char *buffer, int capacity);

/// Moves the guest, with its whole execution state, to `node`: the call returns 0 there (the
/// guest goes on right after it, on the other node), or -1 here when it could not go. Any module
/// Ferry runs on a node can call it as compiled: the node makes it movable.
FERRY_IMPORT("go") int ferry_go(const char *node, int length);

/// Moves the guest's code and data to `node`, where it starts again at its `ferry_arrive`
/// export with its memory; returns -1 here when it could not go (and never returns otherwise).
FERRY_IMPORT("go_weak") int ferry_go_weak(const char *node, int length);

/// A value of the node's own key space into `buffer`: its length, -1 when missing, -2 when it
/// does not fit. Bound by type: after a move, the new node's.
FERRY_IMPORT("local_get") int ferry_local_get(const char *key, int key_length, void *buffer, int capacity);

/// Stores a value in the node's own key space: 0, or -1 when refused.
FERRY_IMPORT("local_put") int ferry_local_put(const char *key, int key_length, const void *value, int length);

/// A key of the cluster's key-value service (found by name at the endpoint daemon, wherever the
/// guest is): its length, -1 when missing, -2 when it does not fit, -3 when unreachable.
FERRY_IMPORT("kv_get") int ferry_kv_get(const char *key, int key_length, void *buffer, int capacity);

/// Stores a key of the cluster's key-value service, durably: 0, or -3 when unreachable.
FERRY_IMPORT("kv_put") int ferry_kv_put(const char *key, int key_length, const void *value, int length);

/// Opens a TCP connection to "HOST:PORT": a handle, or -1. A move opens it again from the new
/// node (or is refused when the new node cannot reach the address).
FERRY_IMPORT("connect") int ferry_connect(const char *address, int length);
/// Sends bytes on a connection: how many went, or -1.
FERRY_IMPORT("conn_send") int ferry_conn_send(int handle, const void *bytes, int length);
/// Waits for bytes on a connection: how many, 0 at its end, -1 on an error.
FERRY_IMPORT("conn_recv") int ferry_conn_recv(int handle, void *buffer, int capacity);
/// Closes a connection.
FERRY_IMPORT("conn_close") void ferry_conn_close(int handle);

/// The input the process was started with (`ferry spawn --input FILE`, or what a coordinator
/// sends with remote evaluation) into `buffer`: its length, -2 when it does not fit.
FERRY_IMPORT("input") int ferry_input(void *buffer, int capacity);

/// Reads up to `capacity` bytes from `offset` of the node's data set `name` (`ferry data load`):
/// how many, 0 past its end, -1 when the node has no data set of that name. Bound by type: after a
/// move, the new node's data set of that name.
FERRY_IMPORT("data_read") int ferry_data_read(const char *name, int length, int offset, void *buffer, int capacity);

/// Reserves the buffer Asyncify saves the call stack into, and tells the host where it is.
#define FERRY_CHECKPOINT_BUFFER(bytes)                                                     \
    static int ferry_asyncify_data[(bytes) / 4];                                           \
    FERRY_EXPORT("ferry_asyncify_buffer") int ferry_asyncify_buffer(void) {                \
        return (int)(unsigned long)ferry_asyncify_data;                                    \
    }                                                                                      \
    FERRY_EXPORT("ferry_asyncify_buffer_size") int ferry_asyncify_buffer_size(void) {      \
        return (int)sizeof ferry_asyncify_data;                                            \
    }

/// Makes a guest a user-level thread for Ferry's scheduler: its time slice can end at any
/// ferry_yield and ferry_receive_wait can park it, by unwinding its stack with Asyncify (build it
/// with --pass-arg=asyncify-imports@ferry.yield,ferry.receive_wait,ferry.checkpoint; see build.sh).
#define FERRY_SCHEDULABLE(bytes)                                                           \
    FERRY_CHECKPOINT_BUFFER(bytes)                                                         \
    FERRY_EXPORT("ferry_schedulable") void ferry_schedulable(void) {}

static inline int ferry_strlen(const char *text) {
    int n = 0;
    while (text[n]) n++;
    return n;
}

#define FERRY_LOG(literal) ferry_log(literal, (int)sizeof(literal) - 1)

#endif
