// libnghttp2 (Debian libnghttp2-dev) for HTTP/2 framing, HPACK, flow control and stream state.
// Sluice drives it through its callback API from the worker's epoll loop (Sources/SluiceProxy/HTTP2).
#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#endif
