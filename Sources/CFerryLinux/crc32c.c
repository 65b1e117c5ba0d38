// CRC-32C (Castagnoli) with the SSE 4.2 instruction: some 8 bytes a cycle, so a move can check
// gigabytes of memory as they stream without slowing the stream. A table fallback serves CPUs
// without it.
#include "CFerryLinux.h"

#include <stdint.h>
#include <string.h>

static uint32_t crc32c_table[256];

static void crc32c_init_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
        crc32c_table[i] = crc;
    }
}

static uint32_t crc32c_software(uint32_t crc, const unsigned char *bytes, size_t length) {
    if (crc32c_table[1] == 0) crc32c_init_table();
    while (length--) crc = (crc >> 8) ^ crc32c_table[(crc ^ *bytes++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hardware(uint32_t crc, const unsigned char *bytes, size_t length) {
    uint64_t value = crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        value = __builtin_ia32_crc32di(value, word);
        bytes += 8;
        length -= 8;
    }
    uint32_t small = (uint32_t)value;
    while (length--) small = __builtin_ia32_crc32qi(small, *bytes++);
    return small;
}
#endif

uint32_t ferry_crc32c(uint32_t crc, const void *data, size_t length) {
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return ~crc32c_hardware(crc, data, length);
#endif
    return ~crc32c_software(crc, data, length);
}
