-- website-ordering.lua - places online orders on a timer: `main-website-order`
-- span, the seed's payload with an address, published to ituna-orders.
-- common.lua sits next to this script, wherever it is run from
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

common.run_ordering {
    service = "website-ordering", source = "website", span = "main-website-order",
    delay = "website-ordering", topic = "orders",
    placing = function(id) return "Placing an online order with id " .. id end,
    placed = "The online order has been placed successfully!",
}
