/* test_delivery.c - the delivery slots a consumed message owns (kafka_delivery.c):
 * a failed publish is handed to its caller once, by its own ticket, even when no
 * memory was left to copy its report. */
#include <stdlib.h>
#include <string.h>

#include "kafka_delivery.h"
#include "testutil.h"

typedef struct seen {
    int n;
    uint64_t tickets[4];
    ituna_err errs[4];
    char errstr[4][128];
} seen;

static void collect(const ituna_delivery_report *r, void *opaque) {
    seen *s = opaque;
    if (s->n >= 4) return;
    s->tickets[s->n] = r->ticket;
    s->errs[s->n] = r->err;
    snprintf(s->errstr[s->n], sizeof s->errstr[0], "%s", r->errstr);
    s->n++;
}

static int test_failures_by_ticket(void) {
    static const int producer_a, producer_b;
    ituna_message m;
    memset(&m, 0, sizeof m);
    int64_t later = ituna_kafka_mono_ms() + 60000;
    ituna_delivery_slot *ok = ituna_delivery_slot_new(&producer_a, 7, later);
    ituna_delivery_slot *bad = ituna_delivery_slot_new(&producer_a, 8, later);
    ituna_delivery_slot *oom = ituna_delivery_slot_new(&producer_a, 9, later);
    ituna_delivery_slot *other = ituna_delivery_slot_new(&producer_b, 10, later);
    REQUIRE(ok && bad && oom && other);
    ituna_message_track(&m, ok);
    ituna_message_track(&m, bad);
    ituna_message_track(&m, oom);
    ituna_message_track(&m, other);

    ituna_delivery_report r = {
        .topic = "orders", .partition = 2, .offset = 41, .errstr = "", .error_name = ""
    };
    r.ticket = 7;
    ituna_delivery_slot_complete(ok, &r);
    r.ticket = 8, r.offset = -1, r.err = ITUNA_ERR_KAFKA, r.errstr = "Local: Message timed out";
    r.error_name = "_MSG_TIMED_OUT";
    ituna_delivery_slot_complete(bad, &r);
    r.ticket = 10;
    ituna_delivery_slot_complete(other, &r);
    /* The state a failed report reaches when its copy could not be allocated. */
    atomic_store(&oom->state, ITUNA_SLOT_FAILED);

    seen s = { 0 };
    CHECK(ituna_delivery_take_failures(&m, &producer_a, collect, &s) == 2);
    REQUIRE(s.n == 2);
    /* newest first (the list is pushed at its head); each failure names its own publish */
    CHECK(s.tickets[0] == 9 && s.errs[0] == ITUNA_ERR_NOMEM);
    CHECK(strstr(s.errstr[0], "out of memory") != NULL);
    CHECK(s.tickets[1] == 8 && s.errs[1] == ITUNA_ERR_KAFKA);
    CHECK_STR(s.errstr[1], "Local: Message timed out");
    /* handed out once; another producer's failure is its own */
    seen again = { 0 };
    CHECK(ituna_delivery_take_failures(&m, &producer_a, collect, &again) == 0);
    CHECK(ituna_delivery_take_failures(&m, &producer_b, collect, &again) == 1);
    CHECK(again.n == 1 && again.tickets[0] == 10);

    char why[256] = "";
    CHECK(ituna_message_settle(&m, 0, why, sizeof why) == -1);
    CHECK(strstr(why, "publish ") != NULL);
    CHECK(m.slots == NULL);
    ituna_delivery_slot_release(oom); /* the publish's reference: its report never came */
    return 0;
}

int main(void) {
    RUN(test_failures_by_ticket);
    TEST_MAIN_END();
}
