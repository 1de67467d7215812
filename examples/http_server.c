/* http_server.c - a small HTTP/1.1 server: keep-alive, pipelining, and
 * `GET /` answered with a short body. Requests are parsed by http-parser
 * (Debian's libhttp-parser-dev): request line, headers, bodies and the
 * keep-alive rules are its business, not ours.
 *
 *   build/examples/http_server PORT      listens on 127.0.0.1:PORT
 *                                        (0: a free port, printed)
 *
 * GET / -> 200 "Hello, world!\n"; another path -> 404; another method ->
 * 405; a malformed request -> 400 and the connection is closed. SIGINT or
 * SIGTERM stops it (serve.h).
 */
#include "serve.h"

#include <http_parser.h>

struct http {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    http_parser p;
    char url[256];
    size_t urllen;
    int done; /* a response ended the connection (close or error) */
    size_t nparsed, n;
    unsigned char buf[8192];
};

static void respond(struct http *f, const char *status, const char *body, int keep)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                     status, strlen(body), keep ? "" : "Connection: close\r\n");
    coro_stream_write(f->s, head, (size_t)n);
    coro_stream_write(f->s, body, strlen(body));
}

static int on_message_begin(http_parser *p)
{
    ((struct http *)p->data)->urllen = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http *f = (struct http *)p->data;
    size_t room = sizeof f->url - 1 - f->urllen;
    memcpy(f->url + f->urllen, at, n < room ? n : room); /* a long URL is cut: a 404 */
    f->urllen += n < room ? n : room;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http *f = (struct http *)p->data;
    int keep = http_should_keep_alive(p);
    f->url[f->urllen] = 0;
    if (p->method != HTTP_GET)
        respond(f, "405 Method Not Allowed", "only GET here\n", keep);
    else if (strcmp(f->url, "/") != 0)
        respond(f, "404 Not Found", "not found\n", keep);
    else
        respond(f, "200 OK", "Hello, world!\n", keep);
    if (!keep) {
        f->done = 1;
        return 1; /* stop parsing: the connection ends here */
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

static int http_fn(coro_ctx *c)
{
    struct http *f = CORO_SELF(c, struct http);
    CORO_BEGIN(c);
    http_parser_init(&f->p, HTTP_REQUEST);
    f->p.data = f;
    while (!f->done) {
        CORO_AWAIT(c, coro_stream_read(&f->op, f->s, f->buf, sizeof f->buf, sizeof f->buf));
        if (c->rc < 0) break; /* the connection was lost, or the server closes it */
        f->n = (size_t)c->rc;   /* 0: end of stream, which the parser must see too */
        f->nparsed = http_parser_execute(&f->p, &settings, (const char *)f->buf, f->n);
        if (!f->done && (f->p.http_errno != HPE_OK || f->nparsed != f->n)) {
            respond(f, "400 Bad Request", http_errno_name(HTTP_PARSER_ERRNO(&f->p)), 0);
            f->done = 1;
        }
        CORO_AWAIT(c, coro_stream_drain(&f->op, f->s));
        if (c->rc < 0 || f->n == 0) break;
    }
    CORO_RETURN(c, 0); /* the server sends what is queued, then closes */
    CORO_END(c);
}

static coro_frame *http(coro_conn *conn, void *mem, void *arg)
{
    struct http *f = (struct http *)mem;
    (void)arg;
    f->s = coro_conn_stream(conn);
    return coro_frame_init(&f->co, http_fn);
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "http_server", http, sizeof(struct http));
}
