#include "CFerryWasmtime.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const ferry_wasmtime_api *ferry_wasmtime_open(const char *path, char *error, size_t error_size) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        snprintf(error, error_size, "%s", dlerror());
        return NULL;
    }
    ferry_wasmtime_api *api = calloc(1, sizeof(ferry_wasmtime_api));
    if (api == NULL) {
        snprintf(error, error_size, "out of memory");
        dlclose(library);
        return NULL;
    }
#define FERRY_WASMTIME_LOOKUP(result, name, parameters)                                              \
    api->name = (result(*) parameters)dlsym(library, #name);                                         \
    if (api->name == NULL) {                                                                         \
        snprintf(error, error_size, "it has no function %s: it is not Wasmtime %d's C API", #name,   \
                 FERRY_WASMTIME_MAJOR);                                                              \
        free(api);                                                                                   \
        dlclose(library);                                                                            \
        return NULL;                                                                                 \
    }
    FERRY_WASMTIME_FUNCTIONS(FERRY_WASMTIME_LOOKUP)
#undef FERRY_WASMTIME_LOOKUP
    return api;
}

ssize_t ferry_wasmtime_write_fd(void *fd, const unsigned char *bytes, size_t count) {
    size_t written = 0;
    while (written < count) {
        ssize_t n = write((int)(intptr_t)fd, bytes + written, count - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        written += (size_t)n;
    }
    return (ssize_t)count;
}
