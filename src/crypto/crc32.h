/*
 * crc32.h — CRC-32 as zlib computes it (IEEE 802.3 polynomial, reflected,
 * initial and final value 0xFFFFFFFF).  Plain C.  PayPal webhook signatures
 * cover the decimal CRC-32 of the body.
 */
#ifndef PAY_CRC32_H
#define PAY_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 of len bytes, continuing from crc (0 to start); zlib's crc32(). */
extern uint32_t crc32_ieee(uint32_t crc, const uint8_t *buf, size_t len);

#endif							/* PAY_CRC32_H */
