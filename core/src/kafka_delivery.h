/* kafka_delivery.h - the deliveries a consumed message owns: one slot per publish
 * made for it (ituna_message_out.owner, or the thread's message), completed by the
 * producer's delivery report and read by the consumer when it settles the message.
 * The producer and the consumer both build on this file and not on each other.
 * Private to core/. */
#ifndef ITUNA_KAFKA_DELIVERY_H
#define ITUNA_KAFKA_DELIVERY_H

#include "kafka_common.h"

/* A delivery report with its strings copied, so it outlives librdkafka's callback. */
typedef struct ituna_dr_copy {
    struct ituna_dr_copy *next;
    ituna_delivery_report r; /* strings point into the buffers below */
    char topic[256], errstr[200], error_name[64];
} ituna_dr_copy;

/* Fill a report copy from r. */
ITUNA_HIDDEN void ituna_dr_copy_set(ituna_dr_copy *c, const ituna_delivery_report *r);

enum { ITUNA_SLOT_IN_FLIGHT = 0, ITUNA_SLOT_DELIVERED = 1, ITUNA_SLOT_FAILED = 2 };

/* The delivery of one publish made for a consumed message. Shared by the publish
 * (until its report) and the message (until it is settled). */
struct ituna_delivery_slot {
    struct ituna_delivery_slot *next; /* the owner message's list */
    const void *producer;             /* the publishing producer, for take_failures */
    atomic_int refs;
    atomic_int state;    /* ITUNA_SLOT_*; rep is written before state leaves IN_FLIGHT */
    int taken;           /* handed out by ituna_delivery_take_failures(); under the slots' lock */
    int64_t deadline_ms; /* monotonic: the report is due by then (message.timeout.ms) */
    uint64_t ticket;     /* the publish's id */
    /* A failed delivery's report, NULL for a delivered one: a slot per publish stays
     * small (a copy is over 1 KB, past malloc's per-thread cache). */
    ituna_dr_copy *rep;
};

/* The report of a FAILED slot: its copy, or (no memory for the copy) a generic one. */
ITUNA_HIDDEN const ituna_dr_copy *ituna_delivery_slot_report(const ituna_delivery_slot *s);

/* A new slot in flight with two references: the publish's and the owner's. NULL on OOM. */
ITUNA_HIDDEN ituna_delivery_slot *ituna_delivery_slot_new(const void *producer, uint64_t ticket,
                                                          int64_t deadline_ms);
/* The publish's report arrived: record it, wake waiters, drop the publish's reference. */
ITUNA_HIDDEN void ituna_delivery_slot_complete(ituna_delivery_slot *s, const ituna_delivery_report *r);
/* Wait until the slot's report arrived or deadline_ms (monotonic) passed; returns its state. */
ITUNA_HIDDEN int ituna_delivery_slot_wait(ituna_delivery_slot *s, int64_t deadline_ms);
ITUNA_HIDDEN void ituna_delivery_slot_release(ituna_delivery_slot *s);
/* Count of slots completed so far, process-wide: a consumer skips a settle pass when
 * it has not moved. */
ITUNA_HIDDEN unsigned long ituna_delivery_epoch(void);

/* A consumed message (kafka_consumer.c makes and finishes it). Defined here because
 * its deliveries and the thread's message (attach/detach/current) are kept here. */
struct ituna_message {
    ituna_consumer *c;
    rd_kafka_message_t *rkm;
    ituna_span *span; /* NULL for a skip marker (a redelivered message already done here) */
    ituna_span_context ctx;
    int64_t timestamp_ms;
    int attempt;
    int finished;               /* finished by the consumer (poll, close): the host releases it */
    ituna_delivery_slot *slots; /* deliveries of the publishes made for it */
    ituna_message *next_zombie;
    /* Settling (kafka_consumer.c): finished as handled, waiting for its deliveries
     * and for the messages before it on its partition. */
    int settle;            /* 0 not queued, 1 deliveries in flight, 2 done (awaiting the prefix) */
    int rewound;           /* its partition was rewound below it: never store it, never seek for it */
    ituna_message *next_q; /* the partition's queue, by offset */
};

/* Add a delivery to the message's list (takes the caller's reference). */
ITUNA_HIDDEN void ituna_message_track(ituna_message *m, ituna_delivery_slot *s);
/* Settle m's deliveries: 1 when all were delivered, -1 when one failed or was not
 * reported by its deadline (why says which publish and how), 0 while some are still
 * in flight. Waits until wait_until_ms (monotonic; 0: does not wait). Once it
 * returns 1 or -1 the slots are released. */
ITUNA_HIDDEN int ituna_message_settle(ituna_message *m, int64_t wait_until_ms, char *why, size_t why_size);
/* Release m's slots without looking at them (a message finished as an error). */
ITUNA_HIDDEN void ituna_message_untrack(ituna_message *m);
/* Hand each failed, not yet taken delivery of owner's publishes by producer to fn. */
ITUNA_HIDDEN size_t ituna_delivery_take_failures(const ituna_message *owner, const void *producer,
                                                 ituna_delivery_fn fn, void *opaque);

#endif
