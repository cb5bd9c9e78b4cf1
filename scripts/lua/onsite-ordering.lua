-- onsite-ordering.lua - places on-site (table) orders on a timer:
-- `main-onsite-order` span, the seed's payload with a table, published to ituna-orders.
-- common.lua sits next to this script, wherever it is run from
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

common.run_ordering {
    service = "onsite-ordering", source = "on-site", span = "main-onsite-order",
    delay = "on-site-ordering", topic = "orders",
    placing = function(id) return "Placing an on-site order with id " .. id end,
    placed = "The on-site order has been placed successfully!",
}
