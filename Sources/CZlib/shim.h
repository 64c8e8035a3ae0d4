// zlib for Swift: deflateInit2 is a macro (it passes the library version and the stream size),
// so it does not import; this static inline wrapper does.
#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
#include <zlib.h>

/// deflateInit2 for a gzip stream (windowBits 15 + 16) at `level`, memLevel 8, default strategy.
static inline int czlib_deflate_init_gzip(z_stream *strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
#endif
