// Wasmtime's C API, the part Ferry uses, declared here so that nothing in the build needs
// Wasmtime: the library is opened at run time (ferry_wasmtime_open) and every function is
// reached through the table it fills. The layouts below are those of Wasmtime 50 (its wasm.h
// and wasmtime/*.h); ferry_wasmtime_open refuses a library that lacks any of the functions.
#ifndef CFERRYWASMTIME_H
#define CFERRYWASMTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// The Wasmtime release these declarations were taken from.
#define FERRY_WASMTIME_MAJOR 50

typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasmtime_error_t wasmtime_error_t;
typedef struct wasmtime_module_t wasmtime_module_t;
typedef struct wasmtime_store_t wasmtime_store_t;
typedef struct wasmtime_context_t wasmtime_context_t;
typedef struct wasmtime_linker_t wasmtime_linker_t;
typedef struct wasmtime_caller_t wasmtime_caller_t;
typedef struct wasi_config_t wasi_config_t;

typedef struct wasm_byte_vec_t {
    size_t size;
    char *data;
} wasm_byte_vec_t;

typedef struct wasm_valtype_vec_t {
    size_t size;
    wasm_valtype_t **data;
} wasm_valtype_vec_t;

enum { WASM_I32 = 0, WASM_I64 = 1, WASM_F32 = 2, WASM_F64 = 3, WASM_V128 = 4 };
enum { WASMTIME_I32 = 0, WASMTIME_I64 = 1, WASMTIME_F32 = 2, WASMTIME_F64 = 3, WASMTIME_V128 = 4 };
enum {
    WASMTIME_EXTERN_FUNC = 0,
    WASMTIME_EXTERN_GLOBAL = 1,
    WASMTIME_EXTERN_TABLE = 2,
    WASMTIME_EXTERN_MEMORY = 3
};
enum {
    WASMTIME_TRAP_CODE_STACK_OVERFLOW = 0,
    WASMTIME_TRAP_CODE_INTERRUPT = 10,
    WASMTIME_TRAP_CODE_OUT_OF_FUEL = 11
};

typedef struct wasmtime_func {
    uint64_t store_id;
    void *private_;
} wasmtime_func_t;

typedef struct wasmtime_memory {
    struct {
        uint64_t store_id;
        uint32_t private1;
    } anon;
    uint32_t private2;
} wasmtime_memory_t;

typedef struct wasmtime_global {
    uint64_t store_id;
    uint32_t private1;
    uint32_t private2;
    uint32_t private3;
} wasmtime_global_t;

typedef struct wasmtime_instance {
    uint64_t store_id;
    size_t private_;
} wasmtime_instance_t;

/// Any of the reference kinds (anyref, externref, exnref): Ferry passes none, but they set the size.
typedef struct wasmtime_ref_layout {
    uint64_t store_id;
    uint32_t private1;
    uint32_t private2;
    void *private3;
} wasmtime_ref_layout_t;

typedef union wasmtime_valunion {
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    wasmtime_ref_layout_t ref;
    wasmtime_func_t funcref;
    uint8_t v128[16];
} wasmtime_valunion_t;

typedef struct wasmtime_val {
    uint8_t kind;
    wasmtime_valunion_t of;
} wasmtime_val_t;

typedef union wasmtime_extern_union {
    wasmtime_func_t func;
    wasmtime_global_t global;
    wasmtime_memory_t memory;
    uint8_t layout[24];
} wasmtime_extern_union_t;

typedef struct wasmtime_extern {
    uint8_t kind;
    wasmtime_extern_union_t of;
} wasmtime_extern_t;

typedef wasm_trap_t *(*wasmtime_func_callback_t)(
    void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args, size_t nargs, wasmtime_val_t *results,
    size_t nresults);

/// Every function Ferry calls: (return type, name, parameters). One list makes both the table's
/// fields and the loader's look-ups.
#define FERRY_WASMTIME_FUNCTIONS(X) \
    X(wasm_config_t *, wasm_config_new, (void)) \
    X(wasm_engine_t *, wasm_engine_new_with_config, (wasm_config_t *)) \
    X(void, wasm_engine_delete, (wasm_engine_t *)) \
    X(void, wasmtime_config_consume_fuel_set, (wasm_config_t *, bool)) \
    X(void, wasmtime_config_epoch_interruption_set, (wasm_config_t *, bool)) \
    X(void, wasmtime_config_max_wasm_stack_set, (wasm_config_t *, size_t)) \
    X(void, wasmtime_config_parallel_compilation_set, (wasm_config_t *, bool)) \
    X(void, wasmtime_engine_increment_epoch, (wasm_engine_t *)) \
    X(wasmtime_error_t *, wasmtime_module_new, (wasm_engine_t *, const uint8_t *, size_t, wasmtime_module_t **)) \
    X(void, wasmtime_module_delete, (wasmtime_module_t *)) \
    X(wasmtime_store_t *, wasmtime_store_new, (wasm_engine_t *, void *, void (*)(void *))) \
    X(wasmtime_context_t *, wasmtime_store_context, (wasmtime_store_t *)) \
    X(void, wasmtime_store_delete, (wasmtime_store_t *)) \
    X(void, wasmtime_store_limiter, (wasmtime_store_t *, int64_t, int64_t, int64_t, int64_t, int64_t)) \
    X(wasmtime_error_t *, wasmtime_context_set_fuel, (wasmtime_context_t *, uint64_t)) \
    X(wasmtime_error_t *, wasmtime_context_get_fuel, (const wasmtime_context_t *, uint64_t *)) \
    X(void, wasmtime_context_set_epoch_deadline, (wasmtime_context_t *, uint64_t)) \
    X(wasmtime_error_t *, wasmtime_context_set_wasi, (wasmtime_context_t *, wasi_config_t *)) \
    X(wasmtime_linker_t *, wasmtime_linker_new, (wasm_engine_t *)) \
    X(void, wasmtime_linker_delete, (wasmtime_linker_t *)) \
    X(wasmtime_error_t *, wasmtime_linker_define_wasi, (wasmtime_linker_t *)) \
    X(wasmtime_error_t *, wasmtime_linker_define_func, \
      (wasmtime_linker_t *, const char *, size_t, const char *, size_t, const wasm_functype_t *, \
       wasmtime_func_callback_t, void *, void (*)(void *))) \
    X(wasmtime_error_t *, wasmtime_linker_instantiate, \
      (const wasmtime_linker_t *, wasmtime_context_t *, const wasmtime_module_t *, wasmtime_instance_t *, \
       wasm_trap_t **)) \
    X(bool, wasmtime_instance_export_get, \
      (wasmtime_context_t *, const wasmtime_instance_t *, const char *, size_t, wasmtime_extern_t *)) \
    X(wasmtime_error_t *, wasmtime_func_call, \
      (wasmtime_context_t *, const wasmtime_func_t *, const wasmtime_val_t *, size_t, wasmtime_val_t *, size_t, \
       wasm_trap_t **)) \
    X(wasm_functype_t *, wasmtime_func_type, (const wasmtime_context_t *, const wasmtime_func_t *)) \
    X(const wasm_valtype_vec_t *, wasm_functype_params, (const wasm_functype_t *)) \
    X(const wasm_valtype_vec_t *, wasm_functype_results, (const wasm_functype_t *)) \
    X(wasm_functype_t *, wasm_functype_new, (wasm_valtype_vec_t *, wasm_valtype_vec_t *)) \
    X(void, wasm_functype_delete, (wasm_functype_t *)) \
    X(void, wasm_valtype_vec_new, (wasm_valtype_vec_t *, size_t, wasm_valtype_t *const[])) \
    X(wasm_valtype_t *, wasm_valtype_new, (uint8_t)) \
    X(uint8_t, wasm_valtype_kind, (const wasm_valtype_t *)) \
    X(uint8_t *, wasmtime_memory_data, (const wasmtime_context_t *, const wasmtime_memory_t *)) \
    X(size_t, wasmtime_memory_data_size, (const wasmtime_context_t *, const wasmtime_memory_t *)) \
    X(wasmtime_error_t *, wasmtime_memory_grow, (wasmtime_context_t *, const wasmtime_memory_t *, uint64_t, uint64_t *)) \
    X(void, wasmtime_global_get, (wasmtime_context_t *, const wasmtime_global_t *, wasmtime_val_t *)) \
    X(wasmtime_error_t *, wasmtime_global_set, (wasmtime_context_t *, const wasmtime_global_t *, const wasmtime_val_t *)) \
    X(bool, wasmtime_caller_export_get, (wasmtime_caller_t *, const char *, size_t, wasmtime_extern_t *)) \
    X(wasmtime_context_t *, wasmtime_caller_context, (wasmtime_caller_t *)) \
    X(wasm_trap_t *, wasmtime_trap_new, (const char *, size_t)) \
    X(bool, wasmtime_trap_code, (const wasm_trap_t *, uint8_t *)) \
    X(void, wasm_trap_message, (const wasm_trap_t *, wasm_byte_vec_t *)) \
    X(void, wasm_trap_delete, (wasm_trap_t *)) \
    X(void, wasm_byte_vec_delete, (wasm_byte_vec_t *)) \
    X(void, wasmtime_error_message, (const wasmtime_error_t *, wasm_byte_vec_t *)) \
    X(void, wasmtime_error_delete, (wasmtime_error_t *)) \
    X(bool, wasmtime_error_exit_status, (const wasmtime_error_t *, int *)) \
    X(wasi_config_t *, wasi_config_new, (void)) \
    X(bool, wasi_config_set_argv, (wasi_config_t *, size_t, const char *const[])) \
    X(bool, wasi_config_set_env, (wasi_config_t *, size_t, const char *const[], const char *const[])) \
    X(bool, wasi_config_set_stdin_file, (wasi_config_t *, const char *)) \
    X(void, wasi_config_inherit_stdin, (wasi_config_t *)) \
    X(void, wasi_config_set_stdout_custom, \
      (wasi_config_t *, ssize_t (*)(void *, const unsigned char *, size_t), void *, void (*)(void *))) \
    X(void, wasi_config_set_stderr_custom, \
      (wasi_config_t *, ssize_t (*)(void *, const unsigned char *, size_t), void *, void (*)(void *))) \
    X(bool, wasi_config_preopen_dir, (wasi_config_t *, const char *, const char *, bool))

#define FERRY_WASMTIME_FIELD(result, name, parameters) result(*name) parameters;
typedef struct ferry_wasmtime_api {
    FERRY_WASMTIME_FUNCTIONS(FERRY_WASMTIME_FIELD)
} ferry_wasmtime_api;
#undef FERRY_WASMTIME_FIELD

/// Opens the library at `path` and looks up every function: the table (never freed: the library
/// stays loaded), or NULL with the reason in `error`.
const ferry_wasmtime_api *ferry_wasmtime_open(const char *path, char *error, size_t error_size);

/// A WASI output stream that writes to the file descriptor `(intptr_t)fd`, whole, retrying
/// interrupted writes: for wasi_config_set_stdout_custom and _stderr_custom.
ssize_t ferry_wasmtime_write_fd(void *fd, const unsigned char *bytes, size_t count);

#endif
