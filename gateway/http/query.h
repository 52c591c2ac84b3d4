/*
 * The query string of an HTTP request or WebSocket upgrade: the one reader of its parameters.
 *
 * lws URL-decodes the parameters and keeps them in the request's header store; pg_http_refusal()
 * (http/http.h) refuses a request with a parameter over max_query_bytes before any of these run, so a
 * parameter (at most PG_QUERY_ARG_MAX, config.h) is never read cut. Every handler that reads the query goes
 * through here, so there is one rule for exact names and oversized values. No state; loop thread only.
 */
#ifndef PG_HTTP_QUERY_H
#define PG_HTTP_QUERY_H

#include <stddef.h>
#include <libwebsockets.h>

/*
 * The one reader of the query string: calls fn with each parameter
 * "name=value" (URL-decoded by lws; writable, valid during the call) in
 * order, until fn returns non-zero (returned) or the parameters end (0). An
 * empty parameter ends them. pg_http_refusal() keeps each within
 * max_query_bytes, so none is ever cut.
 */
int pg_http_query_each(struct lws *wsi, int (*fn)(void *ud, char *param), void *ud);
/* A query argument by exact name (URL-decoded) into buf: its length, -1 when absent, -2 when longer than buf. */
int pg_http_query_arg(struct lws *wsi, const char *name, char *buf, size_t len);

#endif
