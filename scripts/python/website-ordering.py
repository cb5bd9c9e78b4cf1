"""website-ordering.py - places online orders on a timer: `main-website-order`
span, the seed's payload with an address, published to ituna-orders."""
import common

if __name__ == "__main__":
    common.run_ordering(
        "website-ordering", "website", "main-website-order", "website-ordering", "orders",
        lambda order_id: f"Placing an online order with id {order_id}",
        "The online order has been placed successfully!")
