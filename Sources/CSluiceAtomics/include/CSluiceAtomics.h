// Relaxed atomic loads and stores on 64-bit words, for metrics shards: one worker thread
// writes its own shard, the admin thread reads all shards at scrape time. On x86-64 and
// arm64 these compile to plain loads and stores, so recording costs no more than a normal
// increment, and the concurrent read is not a data race under the C11 memory model.
#ifndef CSLUICEATOMICS_H
#define CSLUICEATOMICS_H
#include <stdint.h>

static inline uint64_t csluice_load_relaxed(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void csluice_store_relaxed(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
/// Single-writer increment: load + add + store, each relaxed (no lock prefix).
static inline void csluice_add_relaxed(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
// Shared read-modify-write words, several writers, so these are real atomic RMW operations (a
// `lock`-prefixed instruction on x86-64, contended cache lines across workers). `EndpointHealth`
// uses them only off the common path (a failure, an ejection); `UpstreamLoad` uses them on every
// request of a tracked group (a limit set, or `balance: least_request`): four per request on a
// pooled connection (the group's request count and the endpoint's in-flight count, each taken
// and given back), four more when a new connection is opened (connections and pending).
static inline uint64_t csluice_fetch_add(uint64_t *p, uint64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline uint64_t csluice_fetch_or(uint64_t *p, uint64_t v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
static inline uint64_t csluice_fetch_and(uint64_t *p, uint64_t v) {
    return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
}
#endif
