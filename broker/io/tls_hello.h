/* tls_hello: is a complete TLS ClientHello in these bytes? Read from the record headers only,
 * before any Mbed TLS work, so that a connection takes a handshake slot only once its peer has
 * said something that a TLS engine can act on. Pure: bytes in, a verdict out. */
#ifndef CERTMQ_TLS_HELLO_H
#define CERTMQ_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes a peer may send before its ClientHello is complete: one full TLS record (5-byte
 * header, 2^14 bytes of payload). Real ClientHellos are 0.2-2 KB; a hello fragmented over several
 * records must fit in the same bytes, headers included. */
#define TLS_HELLO_MAX (5 + 16384)

enum tls_hello {
    TLS_HELLO_NEED = 0,     /* a valid prefix: wait for more */
    TLS_HELLO_COMPLETE = 1, /* the whole ClientHello is there (and maybe more bytes after it) */
    TLS_HELLO_NOT_TLS = -1, /* not a TLS handshake record carrying a ClientHello */
    TLS_HELLO_TOO_LONG = -2 /* would need more than TLS_HELLO_MAX bytes */
};

/* The verdict on the first n bytes a peer sent. Looks at the records' headers (content type 22,
 * major version 3, length 1..2^14) and the handshake header inside them (type 1 = ClientHello,
 * 24-bit length); the hello may span records, every one of which must be a handshake record.
 * Only the bytes needed for the verdict are read, so n may exceed what the hello takes. */
enum tls_hello tls_hello_complete(const uint8_t *p, size_t n);

#endif
