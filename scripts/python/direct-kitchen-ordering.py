"""direct-kitchen-ordering.py - the seed's management request: `main-direct-order`
span, published straight onto kitchen-orders, bypassing validation."""
import common

if __name__ == "__main__":
    common.run_ordering(
        "direct-kitchen-ordering", "direct", "main-direct-order", "direct-kitchen-ordering", "kitchen",
        lambda order_id: f"Placing a direct order for the kitchen: {order_id}",
        "The direct order has been placed successfully!")
