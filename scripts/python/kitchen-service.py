"""kitchen-service.py - consumes kitchen-orders; `main-kitchen` with the cooking
steps cut-fish, roll and plate as children; cooked orders go to ituna-ready (a
spoiled one, by [failure-rates] kitchen-service, to ituna-rejected)."""
import time

import common

# Cooking steps and their share of the [simulated-delays] kitchen-service time.
STEPS = [("cut-fish", 0.4), ("roll", 0.4), ("plate", 0.2)]
SPOILED = "the kitchen spoiled the order"


def handle(svc, producer, order):
    cfg, tracer, log = svc.config, svc.tracer, svc.log
    order_id = order["order_id"]
    attrs = common.order_attrs(order)
    with tracer.span("main-kitchen", attributes=attrs) as span:
        log.info(f"Received order {order_id} for processing", span)
        total = cfg.delay_s("kitchen-service")
        for name, share in STEPS:
            with tracer.span(name, attributes=attrs):
                time.sleep(total * share)
        if common.fails(cfg.failure_rate("kitchen-service")):
            common.mark_error(span, SPOILED)
            rejected = dict(order, rejected_by="kitchen-service", reason=SPOILED)
            producer.publish(cfg.topic("rejected"), rejected, key=order_id, attributes=attrs)
            common.flush(log, producer, span)
            log.info(f"Rejected order {order_id}: {SPOILED}", span)
            return
        dish = common.first_dish(order)
        producer.publish(cfg.topic("ready"), dict(order, ready=True), key=order_id, attributes=attrs)
        common.flush(log, producer, span)
        log.info(f"Your order is ready. Please enjoy your {dish} and other food! - Order id = {order_id}", span)


if __name__ == "__main__":
    common.run_consumer("kitchen-service", "kitchen", handle)
