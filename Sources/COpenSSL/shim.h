// OpenSSL 3 for Swift: what arrives as function-like macros or macro-built constants in the
// OpenSSL headers does not import into Swift, so it is wrapped here as static inline functions
// and static const copies (no .c file needed).
#ifndef SLUICE_COPENSSL_SHIM_H
#define SLUICE_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>
#include <openssl/rand.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <string.h>
#include <time.h>

static const uint64_t sluice_SSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
static const uint64_t sluice_SSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const uint64_t sluice_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t sluice_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const uint64_t sluice_SSL_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;
static const uint64_t sluice_SSL_OP_NO_TLSv1 = SSL_OP_NO_TLSv1;
static const uint64_t sluice_SSL_OP_NO_TLSv1_1 = SSL_OP_NO_TLSv1_1;

static inline long sluice_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline void sluice_SSL_CTX_read_ahead_on(SSL_CTX *ctx) { SSL_CTX_set_read_ahead(ctx, 1); }
static inline long sluice_SSL_set_mode(SSL *ssl, long mode) { return SSL_set_mode(ssl, mode); }
static inline long sluice_SSL_MODE_nonblocking_writes(void) {
    return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS;
}
static inline int sluice_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline int sluice_SSL_set_min_proto_version(SSL *ssl, int v) { return (int)SSL_set_min_proto_version(ssl, v); }
static inline int sluice_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
static inline long sluice_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
static inline long sluice_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long n) { return SSL_CTX_sess_set_cache_size(ctx, n); }
static inline long sluice_SSL_CTX_sess_hits(SSL_CTX *ctx) { return SSL_CTX_sess_hits(ctx); }
static inline int sluice_SSL_session_reused(const SSL *ssl) { return (int)SSL_session_reused(ssl); }
static inline long sluice_SSL_SESS_CACHE_SERVER(void) { return SSL_SESS_CACHE_SERVER; }
static inline long sluice_SSL_SESS_CACHE_CLIENT(void) { return SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE; }
static inline long sluice_SSL_SESS_CACHE_OFF(void) { return SSL_SESS_CACHE_OFF; }

/// The servername (SNI) callback and its argument.
typedef int (*sluice_servername_cb)(SSL *ssl, int *alert, void *arg);
static inline void sluice_SSL_CTX_set_servername_callback(SSL_CTX *ctx, sluice_servername_cb cb, void *arg) {
    SSL_CTX_set_tlsext_servername_callback(ctx, cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}
static const int sluice_SSL_TLSEXT_ERR_OK = SSL_TLSEXT_ERR_OK;
static const int sluice_SSL_TLSEXT_ERR_NOACK = SSL_TLSEXT_ERR_NOACK;
static const int sluice_SSL_TLSEXT_ERR_ALERT_FATAL = SSL_TLSEXT_ERR_ALERT_FATAL;

/// Adds a CA/intermediate to a certificate chain stack (sk_X509_push is a macro).
static inline STACK_OF(X509) *sluice_x509_stack_new(void) { return sk_X509_new_null(); }
static inline int sluice_x509_stack_push(STACK_OF(X509) *sk, X509 *x) { return sk_X509_push(sk, x); }
static inline int sluice_x509_stack_count(STACK_OF(X509) *sk) { return sk ? sk_X509_num(sk) : 0; }
static inline void sluice_x509_stack_free(STACK_OF(X509) *sk) { sk_X509_pop_free(sk, X509_free); }

/// The DNS names of a certificate's subjectAltName, as one buffer of NUL-separated names
/// (written into `out`, at most `cap` bytes). Returns the bytes used, or -1 when they did not fit.
static inline int sluice_x509_dns_names(X509 *x, char *out, int cap) {
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int used = 0;
    if (names == NULL) return 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
        if (n->type != GEN_DNS) continue;
        const unsigned char *p = ASN1_STRING_get0_data(n->d.dNSName);
        int len = ASN1_STRING_length(n->d.dNSName);
        if (len <= 0 || memchr(p, 0, (size_t)len) != NULL) continue;
        if (used + len + 1 > cap) { GENERAL_NAMES_free(names); return -1; }
        memcpy(out + used, p, (size_t)len);
        out[used + len] = 0;
        used += len + 1;
    }
    GENERAL_NAMES_free(names);
    return used;
}

/// A certificate's notAfter as seconds since the epoch (UTC), or -1 when it cannot be read.
static inline long long sluice_x509_not_after(X509 *x) {
    struct tm tm;
    const ASN1_TIME *t = X509_get0_notAfter(x);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return -1;
    return (long long)timegm(&tm);
}

/// A certificate's notBefore as seconds since the epoch (UTC), or -1.
static inline long long sluice_x509_not_before(X509 *x) {
    struct tm tm;
    const ASN1_TIME *t = X509_get0_notBefore(x);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return -1;
    return (long long)timegm(&tm);
}

/// The subject as one line (into `out`).
static inline void sluice_x509_subject(X509 *x, char *out, int cap) {
    X509_NAME_oneline(X509_get_subject_name(x), out, cap);
}

/// The oldest error on this thread's OpenSSL error queue as text, and clears the queue.
static inline void sluice_err_text(char *out, size_t cap) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0) { if (cap) out[0] = 0; }
    else { ERR_error_string_n(e, out, cap); }
    ERR_clear_error();
}

/// The reason part of the last error on the queue (no library prefix), and clears the queue.
static inline void sluice_err_reason(char *out, size_t cap) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (cap) {
        if (r) { strncpy(out, r, cap - 1); out[cap - 1] = 0; }
        else out[0] = 0;
    }
    ERR_clear_error();
}

/// Session ticket crypto set-up for the ticket key callback (AES-256-CBC + HMAC-SHA256, as
/// OpenSSL's own ticket keys): `enc` 1 draws a fresh IV into `iv`; 0 uses the ticket's IV.
/// Returns 1 on success, -1 on failure.
static inline int sluice_ticket_crypto_init(EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, const unsigned char *aes_key,
                                            const unsigned char *hmac_key, unsigned char *iv, int enc) {
    OSSL_PARAM params[2];
    if (enc && RAND_bytes(iv, 16) != 1) return -1;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(hctx, hmac_key, 32, params) != 1) return -1;
    if (enc) {
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes_key, iv) != 1) return -1;
    } else {
        if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes_key, iv) != 1) return -1;
    }
    return 1;
}

#endif
