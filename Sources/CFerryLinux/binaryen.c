// Binaryen (https://github.com/WebAssembly/binaryen) loaded at run time, so that Ferry builds and
// runs without it and only making a plain module movable needs it. The few C API entry points
// Ferry uses are declared here as Debian's binaryen 108 declares them in binaryen-c.h.
#define _GNU_SOURCE
#include "CFerryLinux.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *BModule;
typedef void *BFunction;
typedef uintptr_t BType;
typedef uint32_t BFeatures;
typedef struct {
    void *binary;
    size_t binaryBytes;
    char *sourceMap;
} BWriteResult;

static struct {
    BModule (*read)(char *, size_t);
    void (*dispose)(BModule);
    void (*set_features)(BModule, BFeatures);
    BFeatures (*feature_all)(void);
    BFunction (*function_by_index)(BModule, uint32_t);
    uint32_t (*function_count)(BModule);
    const char *(*function_name)(BFunction);
    void (*remove_function)(BModule, const char *);
    void (*add_function_import)(BModule, const char *, const char *, const char *, BType, BType);
    BType (*type_none)(void);
    void (*set_pass_argument)(const char *, const char *);
    void (*clear_pass_arguments)(void);
    void (*run_passes)(BModule, const char **, uint32_t);
    void (*set_optimize_level)(int);
    void (*set_shrink_level)(int);
    void (*set_debug_info)(bool);
    void (*optimize)(BModule);
    bool (*validate)(BModule);
    BWriteResult (*write)(BModule, const char *);
} binaryen;

static pthread_once_t binaryen_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t binaryen_lock = PTHREAD_MUTEX_INITIALIZER;
static char binaryen_error[256];
static int binaryen_loaded;

static void binaryen_load(void) {
    void *library = dlopen("libbinaryen.so", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(binaryen_error, sizeof binaryen_error, "%s", dlerror());
        return;
    }
#define LOAD(field, symbol)                                                                         \
    do {                                                                                            \
        *(void **)&binaryen.field = dlsym(library, symbol);                                         \
        if (!binaryen.field) {                                                                      \
            snprintf(binaryen_error, sizeof binaryen_error, "libbinaryen.so lacks %s", symbol);      \
            return;                                                                                 \
        }                                                                                           \
    } while (0)
    LOAD(read, "BinaryenModuleRead");
    LOAD(dispose, "BinaryenModuleDispose");
    LOAD(set_features, "BinaryenModuleSetFeatures");
    LOAD(feature_all, "BinaryenFeatureAll");
    LOAD(function_by_index, "BinaryenGetFunctionByIndex");
    LOAD(function_count, "BinaryenGetNumFunctions");
    LOAD(function_name, "BinaryenFunctionGetName");
    LOAD(remove_function, "BinaryenRemoveFunction");
    LOAD(add_function_import, "BinaryenAddFunctionImport");
    LOAD(type_none, "BinaryenTypeNone");
    LOAD(set_pass_argument, "BinaryenSetPassArgument");
    LOAD(clear_pass_arguments, "BinaryenClearPassArguments");
    LOAD(run_passes, "BinaryenModuleRunPasses");
    LOAD(set_optimize_level, "BinaryenSetOptimizeLevel");
    LOAD(set_shrink_level, "BinaryenSetShrinkLevel");
    LOAD(set_debug_info, "BinaryenSetDebugInfo");
    LOAD(optimize, "BinaryenModuleOptimize");
    LOAD(validate, "BinaryenModuleValidate");
    LOAD(write, "BinaryenModuleAllocateAndWrite");
#undef LOAD
    binaryen_loaded = 1;
}

int ferry_binaryen_available(char *reason, size_t size) {
    pthread_once(&binaryen_once, binaryen_load);
    if (!binaryen_loaded && reason && size) snprintf(reason, size, "%s", binaryen_error);
    return binaryen_loaded;
}

unsigned char *ferry_binaryen_asyncify(
    const unsigned char *module, size_t size, unsigned int stub_index, const char *unwind_imports,
    size_t *out_size, char *reason, size_t reason_size) {
    if (!ferry_binaryen_available(reason, reason_size)) return NULL;
    pthread_mutex_lock(&binaryen_lock);
    unsigned char *result = NULL;
    BModule read = binaryen.read((char *)module, size);
    binaryen.set_features(read, binaryen.feature_all());
    if (stub_index >= binaryen.function_count(read)) {
        snprintf(reason, reason_size, "Binaryen sees %u functions, not the stub at %u",
                 binaryen.function_count(read), stub_index);
        goto done;
    }
    // Calls name their callee, so an import under the stub's name takes over every call to it.
    const char *stub = binaryen.function_name(binaryen.function_by_index(read, stub_index));
    char *name = strdup(stub);
    binaryen.remove_function(read, name);
    binaryen.add_function_import(read, name, "ferry", "safepoint", binaryen.type_none(), binaryen.type_none());
    free(name);
    binaryen.clear_pass_arguments();
    binaryen.set_pass_argument("asyncify-imports", unwind_imports);
    const char *asyncify[] = {"asyncify"};
    binaryen.run_passes(read, asyncify, 1);
    binaryen.clear_pass_arguments();
    binaryen.set_optimize_level(2);
    binaryen.set_shrink_level(0);
    binaryen.set_debug_info(false);
    binaryen.optimize(read);
    if (!binaryen.validate(read)) {
        snprintf(reason, reason_size, "Binaryen's output did not validate");
        goto done;
    }
    BWriteResult written = binaryen.write(read, NULL);
    free(written.sourceMap);
    result = written.binary;
    *out_size = written.binaryBytes;
done:
    binaryen.dispose(read);
    pthread_mutex_unlock(&binaryen_lock);
    return result;
}
