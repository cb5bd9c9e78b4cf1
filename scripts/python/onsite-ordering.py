"""onsite-ordering.py - places on-site (table) orders on a timer:
`main-onsite-order` span, the seed's payload with a table, published to ituna-orders."""
import common

if __name__ == "__main__":
    common.run_ordering(
        "onsite-ordering", "on-site", "main-onsite-order", "on-site-ordering", "orders",
        lambda order_id: f"Placing an on-site order with id {order_id}",
        "The on-site order has been placed successfully!")
