"""order-validation.py - consumes ituna-orders; `main-order-validation` with the
children address_validation, name_validation, inventory_validation (each with its
delay and failure rate from the config); valid orders go to kitchen-orders with
validated: true, invalid ones to ituna-rejected with the reason."""
import time

import common


def check_address(order):
    if order.get("source") == "website" and not order.get("address"):
        return "a website order needs a delivery address"
    return None


def check_name(order):
    # The seed's orders have no customer_name: only a present but blank one fails.
    name = order.get("customer_name")
    if name is not None and not str(name).strip():
        return "the order has a blank customer name"
    return None


def check_inventory(order):
    for dish, count in sorted(order["order_details"].items()):
        if dish in common.SOLD_OUT:
            return f"{dish} is sold out"
        if dish not in common.MENU:
            return f"{dish} is not on the menu"
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return f"bad quantity for {dish}"
    return None


# (span name, config key for delay and failure rate, real check, reason when injected)
STEPS = [
    ("address_validation", "order-validation-address", check_address, "the address could not be validated"),
    ("name_validation", "order-validation-name", check_name, "the customer name could not be validated"),
    ("inventory_validation", "order-validation-inventory", check_inventory, "an ingredient ran out"),
]


def handle(svc, producer, order):
    cfg, tracer, log = svc.config, svc.tracer, svc.log
    order_id = order["order_id"]
    attrs = common.order_attrs(order)
    with tracer.span("main-order-validation", attributes=attrs) as span:
        log.info(f"Received order {order_id} for validation", span)
        failed = None
        for name, key, check, injected in STEPS:
            with tracer.span(name, attributes=attrs) as step:
                time.sleep(cfg.delay_s(key))
                reason = check(order) or (injected if common.fails(cfg.failure_rate(key)) else None)
                if reason:
                    common.mark_error(step, reason)
                    failed = (name, reason)
            if failed:
                break
        if failed:
            name, reason = failed
            common.mark_error(span, f"{name}: {reason}")
            rejected = dict(order, validated=False, rejected_by=name, reason=reason)
            producer.publish(cfg.topic("rejected"), rejected, key=order_id, attributes=attrs)
            common.flush(log, producer, span)
            log.info(f"Rejected order {order_id}: {reason}", span)
            return
        time.sleep(cfg.delay_s("order-validation-pub"))
        order["validated"] = True
        producer.publish(cfg.topic("kitchen"), order, key=order_id, attributes=attrs)
        common.flush(log, producer, span)
        log.info(f"Validated and republished order for kitchen: {order_id}", span)


if __name__ == "__main__":
    common.run_consumer("order-validation", "orders", handle)
