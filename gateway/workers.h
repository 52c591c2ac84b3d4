/*
 * Workers: the gateway as N processes on one listening port, supervised by
 * the parent that started them (workers.c says how and why).
 */
#ifndef PG_WORKERS_H
#define PG_WORKERS_H

struct pg_config;

/*
 * Run the gateway as cfg->workers says: with one worker, the server in this
 * process (pg_server_run, no fork); with more, fork them, restart those that
 * end, drain them all on SIGTERM or SIGINT. cfg is borrowed, loaded and
 * checked; nothing else may be opened before the call. Returns the process
 * exit code (in a worker too: its own server's).
 */
int pg_workers_run(struct pg_config *cfg);

#endif
