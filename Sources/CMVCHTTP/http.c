// HTTP for S3 remotes: libcurl's easy interface, loaded with dlopen on first use (see mvc_http.h).
#define CURL_DISABLE_TYPECHECK 1
#include "mvc_http.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

// libcurl's functions, from dlsym.
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_reset)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char load_error[256];

static void load(void) {
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
    void *lib = NULL;
    char first[200] = "";
    const char *chosen = getenv("MVC_LIBCURL");   // a libcurl elsewhere
    if (chosen != NULL && chosen[0] != 0) {
        lib = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            snprintf(load_error, sizeof load_error, "cannot load %s (%s)", chosen, dlerror());
            return;
        }
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0] && lib == NULL; i++) {
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL && i == 0) snprintf(first, sizeof first, "%s", dlerror());
    }
    if (lib == NULL) {
        snprintf(load_error, sizeof load_error, "libcurl is not installed (%s)", first);
        return;
    }
#define BIND(field, symbol)                                                                    \
    do {                                                                                       \
        *(void **)(&curl.field) = dlsym(lib, symbol);                                          \
        if (curl.field == NULL) {                                                              \
            snprintf(load_error, sizeof load_error, "libcurl lacks %s", symbol);               \
            return;                                                                            \
        }                                                                                      \
    } while (0)
    BIND(global_init, "curl_global_init");
    BIND(easy_init, "curl_easy_init");
    BIND(easy_setopt, "curl_easy_setopt");
    BIND(easy_perform, "curl_easy_perform");
    BIND(easy_getinfo, "curl_easy_getinfo");
    BIND(easy_reset, "curl_easy_reset");
    BIND(easy_cleanup, "curl_easy_cleanup");
    BIND(easy_strerror, "curl_easy_strerror");
    BIND(slist_append, "curl_slist_append");
    BIND(slist_free_all, "curl_slist_free_all");
#undef BIND
    if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "libcurl did not initialise");
        return;
    }
    loaded = 1;
}

int mvc_http_load(char *error, size_t error_size) {
    pthread_once(&load_once, load);
    if (loaded) return 0;
    if (error != NULL && error_size > 0) snprintf(error, error_size, "%s", load_error);
    return -1;
}

// Idle easy handles, kept for their open connections (a handle keeps its connection cache).
#define POOL_SIZE 16
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static CURL *pool[POOL_SIZE];
static int pool_count = 0;

static CURL *take_handle(void) {
    CURL *h = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_count > 0) h = pool[--pool_count];
    pthread_mutex_unlock(&pool_lock);
    if (h != NULL) {
        curl.easy_reset(h);
        return h;
    }
    return curl.easy_init();
}

static void return_handle(CURL *h) {
    pthread_mutex_lock(&pool_lock);
    if (pool_count < POOL_SIZE) {
        pool[pool_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (h != NULL) curl.easy_cleanup(h);
}

// A growing byte buffer; `failed` once an allocation failed.
typedef struct {
    char *bytes;
    size_t len, cap;
    int failed;
    // For a body: the handle, to size the buffer from Content-Length before the first byte.
    CURL *handle;
} buffer;

static int append(buffer *b, const char *p, size_t n) {
    if (b->failed) return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->bytes, cap);
        if (grown == NULL) {
            b->failed = 1;
            return -1;
        }
        b->bytes = grown;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, p, n);
    b->len += n;
    b->bytes[b->len] = 0;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    buffer *b = (buffer *)user;
    if (b->cap == 0 && b->handle != NULL) {
        // One allocation of the announced size, not a doubling that ends up to twice as large.
        curl_off_t announced = -1;
        if (curl.easy_getinfo(b->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
            announced > 0 && announced < ((curl_off_t)1 << 40)) {
            b->bytes = malloc((size_t)announced + 1);
            if (b->bytes != NULL) b->cap = (size_t)announced + 1;
        }
    }
    return append(b, p, size * n) == 0 ? size * n : 0;
}

// Keeps the header lines of the last answer only: a "HTTP/..." status line starts a new one (after
// a 100 Continue, say).
static size_t on_header(char *p, size_t size, size_t n, void *user) {
    buffer *b = (buffer *)user;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        b->len = 0;
        if (b->bytes) b->bytes[0] = 0;
        return len;
    }
    if (len <= 2) return len;   // the empty line that ends the headers
    return append(b, p, len) == 0 ? len : 0;
}

// The request body: bytes in memory, or a file read with pread (so a rewind is a new offset).
// `failed`: the file could not be read to its announced length.
typedef struct {
    const unsigned char *bytes;
    int fd;
    unsigned long long len, offset;
    int failed, error;
} source;

static size_t on_read(char *p, size_t size, size_t n, void *user) {
    source *s = (source *)user;
    unsigned long long left = s->len - s->offset;
    size_t want = size * n < left ? size * n : (size_t)left;
    if (want == 0) return 0;
    if (s->fd < 0) {
        memcpy(p, s->bytes + s->offset, want);
        s->offset += want;
        return want;
    }
    for (;;) {
        ssize_t got = pread(s->fd, p, want, (off_t)s->offset);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {   // an error, or the file shrank
            s->failed = 1;
            s->error = got < 0 ? errno : 0;
            return CURL_READFUNC_ABORT;
        }
        s->offset += (unsigned long long)got;
        return (size_t)got;
    }
}

static int on_seek(void *user, curl_off_t offset, int origin) {
    source *s = (source *)user;
    if (origin != SEEK_SET || offset < 0 || (unsigned long long)offset > s->len) return CURL_SEEKFUNC_CANTSEEK;
    s->offset = (unsigned long long)offset;
    return CURL_SEEKFUNC_OK;
}

// The idle timeout: libcurl's LOW_SPEED_* options average over seconds, so a server that
// trickles a byte now and then (S3 does, while it completes a multipart upload) would count as
// stalled. This counts time since the last byte moved either way.
typedef struct {
    long idle_ms;
    curl_off_t down, up;
    struct timespec last;
    int fired;
} watchdog;

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal;
    (void)ultotal;
    watchdog *w = (watchdog *)user;
    if (dlnow != w->down || ulnow != w->up) {
        w->down = dlnow;
        w->up = ulnow;
        clock_gettime(CLOCK_MONOTONIC, &w->last);
        return 0;
    }
    if (elapsed_ms(&w->last) > w->idle_ms) {
        w->fired = 1;
        return 1;   // abort the transfer
    }
    return 0;
}

static void fail(mvc_http_response *out, int code, int not_sent, const char *message) {
    out->curl_code = code;
    out->not_sent = not_sent;
    snprintf(out->error, sizeof out->error, "%s", message);
}

int mvc_http_perform(const char *method, const char *url, const char *const *headers, int header_count,
                     const unsigned char *body_bytes, int body_fd, unsigned long long body_len,
                     long timeout_ms, long idle_timeout_ms, mvc_http_response *out) {
    memset(out, 0, sizeof *out);
    if (mvc_http_load(NULL, 0) != 0) return -1;

    source src = {body_bytes, body_fd, body_len, 0, 0, 0};
    int has_body = body_bytes != NULL || body_fd >= 0;
    CURL *h = take_handle();
    if (h == NULL) {
        fail(out, CURLE_OUT_OF_MEMORY, 1, "out of memory");
        return 0;
    }

    struct curl_slist *list = NULL;
    int has_content_type = 0, ok = 1;
    for (int i = 0; i < header_count && ok; i++) {
        if (strncasecmp(headers[i], "content-type:", 13) == 0) has_content_type = 1;
        struct curl_slist *next = curl.slist_append(list, headers[i]);
        if (next == NULL) ok = 0; else list = next;
    }
    // No "Expect: 100-continue" round trip, and no form content type on a POST nobody asked for.
    if (ok) { struct curl_slist *next = curl.slist_append(list, "Expect:"); if (next == NULL) ok = 0; else list = next; }
    if (ok && !has_content_type) { struct curl_slist *next = curl.slist_append(list, "Content-Type:"); if (next == NULL) ok = 0; else list = next; }
    if (!ok) {
        curl.slist_free_all(list);
        return_handle(h);
        fail(out, CURLE_OUT_OF_MEMORY, 1, "out of memory");
        return 0;
    }

    buffer body = {0}, head = {0};
    body.handle = h;
    watchdog dog = {idle_timeout_ms > 0 ? idle_timeout_ms : 1, -1, -1, {0, 0}, 0};
    clock_gettime(CLOCK_MONOTONIC, &dog.last);
    char error[CURL_ERROR_SIZE];
    error[0] = 0;
    curl.easy_setopt(h, CURLOPT_URL, url);
    curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl.easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl.easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl.easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl.easy_setopt(h, CURLOPT_HEADERDATA, &head);
    curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, idle_timeout_ms);
    curl.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl.easy_setopt(h, CURLOPT_XFERINFODATA, &dog);
    if (strcmp(method, "HEAD") == 0) {
        curl.easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl.easy_setopt(h, CURLOPT_POST, 1L);
        curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? body_len : 0));
        if (has_body) {
            curl.easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl.easy_setopt(h, CURLOPT_READDATA, &src);
        } else {
            curl.easy_setopt(h, CURLOPT_POSTFIELDS, "");
        }
    } else if (has_body) {
        curl.easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl.easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
        curl.easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl.easy_setopt(h, CURLOPT_READDATA, &src);
        if (strcmp(method, "PUT") != 0) curl.easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl.easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (has_body) {
        curl.easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl.easy_setopt(h, CURLOPT_SEEKDATA, &src);
    }

    CURLcode rc = curl.easy_perform(h);
    if (rc == CURLE_OK && (body.failed || head.failed)) rc = CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK) {
        curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        out->headers = head.bytes;
        out->headers_len = head.len;
        out->body = (unsigned char *)body.bytes;
        out->body_len = body.len;
        head.bytes = NULL;
        body.bytes = NULL;
    } else if (src.failed) {
        char message[200];
        if (src.error != 0) {
            snprintf(message, sizeof message, "reading the file to send failed: %s", strerror(src.error));
        } else {
            snprintf(message, sizeof message, "the file to send is shorter than its %llu bytes: it changed", body_len);
        }
        fail(out, (int)rc, 0, message);
        out->local_error = 1;
    } else if (dog.fired) {
        char message[120];
        snprintf(message, sizeof message, "no data sent or received for %ld s", dog.idle_ms / 1000);
        fail(out, CURLE_OPERATION_TIMEDOUT, 0, message);
    } else {
        int not_sent = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_CONNECT;
        fail(out, (int)rc, not_sent, error[0] ? error : curl.easy_strerror(rc));
    }
    free(head.bytes);
    free(body.bytes);
    curl.slist_free_all(list);
    if (rc == CURLE_OK) return_handle(h); else curl.easy_cleanup(h);
    return 0;
}

void mvc_http_response_free(mvc_http_response *response) {
    free(response->headers);
    free(response->body);
    response->headers = NULL;
    response->body = NULL;
}
