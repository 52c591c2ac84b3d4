/*
 * Sequence numbers on every app message and gap detection (the scheme and its
 * invariants: core/seq.c's top comment).
 *
 * State: this process's origin, its last seq and the last acknowledged seq
 * per topic (in struct pg_gw: origin, seq_next, seq_out), written by
 * core/publish.c through pg_seq_stamp/pg_seq_published; the receivers'
 * tables (struct pg_seq) belong to the channel or app that holds them
 * (core/channels.c, core/fanout.c) and are checked with pg_seq_check.
 */
#ifndef PG_CORE_SEQ_H
#define PG_CORE_SEQ_H

#include <stdint.h>
#include <stddef.h>

#include "pushgate_bridge.h"

struct pg_gw;

/* seq.c: sequence numbers on every app message, gap detection and the gap signal */
struct pg_seq;
struct pg_seq_stamp {
    uint64_t n;
    char seq[24], prev[24]; /* the `seq` and `prev` property values */
};
struct pg_seq_in { /* the sequence properties of a received message */
    const char *origin; /* borrowed from the message */
    uint64_t seq, prev;
};
/* Sets gw->origin; subscribes the broker's dropped counter. */
int pg_seq_init(struct pg_gw *gw);
void pg_seq_free(struct pg_gw *gw);
/* The seq and prev of the next publish on topic; pg_seq_published() once the broker acknowledged it. */
void pg_seq_stamp(struct pg_gw *gw, const char *topic, struct pg_seq_stamp *st);
void pg_seq_published(struct pg_gw *gw, const char *topic, const struct pg_seq_stamp *st);
/* 1 when props carry origin, seq and prev (in filled). */
int pg_seq_parse(const struct pg_bridge_prop *props, size_t nprops, struct pg_seq_in *in);
/* Records in in *table (key: origin, or origin and channel); 1 when messages before it were missed. */
int pg_seq_check(struct pg_gw *gw, struct pg_seq **table, const struct pg_seq_in *in, const char *channel);
void pg_seq_table_free(struct pg_seq **table);
/* A message on $SYS/broker/publish/messages/dropped: the broker's count of dropped messages. */
void pg_seq_on_dropped(struct pg_gw *gw, const void *payload, size_t len);

#endif
