-- direct-kitchen-ordering.lua - the seed's management request: `main-direct-order`
-- span, published straight onto kitchen-orders, bypassing validation.
-- common.lua sits next to this script, wherever it is run from
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

common.run_ordering {
    service = "direct-kitchen-ordering", source = "direct", span = "main-direct-order",
    delay = "direct-kitchen-ordering", topic = "kitchen",
    placing = function(id) return "Placing a direct order for the kitchen: " .. id end,
    placed = "The direct order has been placed successfully!",
}
