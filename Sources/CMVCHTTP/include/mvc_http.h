#ifndef MVC_HTTP_H
#define MVC_HTTP_H
// HTTP requests for S3 remotes through libcurl, loaded with dlopen on first use.
//
// Why not link libcurl (or FoundationNetworking, which wraps it): libcurl pulls about 30 shared
// libraries into every start of mvc (TLS, Kerberos, LDAP, IDN, ...), 7 ms of a 10 ms start here,
// while only commands that reach an S3 remote need any of them.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What a request got: an HTTP answer (`curl_code` 0) or a transport failure.
typedef struct mvc_http_response {
    long status;
    /// The header lines of the final answer, "Name: value\r\n" each (the status line excluded).
    char *headers;
    size_t headers_len;
    unsigned char *body;
    size_t body_len;
    /// libcurl's result code; 0: an answer came.
    int curl_code;
    /// 1 when the request certainly never reached a server (no name resolution, no connection).
    int not_sent;
    /// 1 when the body could not be read here (the file shrank, or a read failed): not the
    /// network's doing, so not worth a retry.
    int local_error;
    char error[256];
} mvc_http_response;

/// Loads libcurl once. 0 on success; else -1 and a one-line reason in `error`.
int mvc_http_load(char *error, size_t error_size);

/// Sends one request and waits for its answer. `headers`: "Name: value" strings. The body is
/// `body_bytes` (`body_len` bytes) or, if `body_fd` >= 0, that open file's first `body_len` bytes
/// (read with pread, so the file's offset is untouched), or none. `timeout_ms`: the whole request;
/// `idle_timeout_ms`: no byte sent or received for that long.
/// Returns 0 when `out` holds an answer or a transport failure; -1 if libcurl is not loaded.
/// Free `out` with `mvc_http_response_free`. Safe to call from several threads at once.
int mvc_http_perform(const char *method, const char *url, const char *const *headers, int header_count,
                     const unsigned char *body_bytes, int body_fd, unsigned long long body_len,
                     long timeout_ms, long idle_timeout_ms, mvc_http_response *out);

void mvc_http_response_free(mvc_http_response *response);

#ifdef __cplusplus
}
#endif
#endif
