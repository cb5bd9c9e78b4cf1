-- kitchen-service.lua - consumes kitchen-orders; `main-kitchen` with the cooking
-- steps cut-fish, roll and plate as children; cooked orders go to ituna-ready (a
-- spoiled one, by [failure-rates] kitchen-service, to ituna-rejected).
-- common.lua sits next to this script, wherever it is run from
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

-- Cooking steps and their share of the [simulated-delays] kitchen-service time.
local STEPS = { { "cut-fish", 0.4 }, { "roll", 0.4 }, { "plate", 0.2 } }
local SPOILED = "the kitchen spoiled the order"

local function handle(svc, producer, order)
    local cfg, tracer, log = svc.config, svc.tracer, svc.log
    local id = order.order_id
    local attrs = common.order_attrs(order)
    tracer:span("main-kitchen", attrs, function(span)
        log:info("Received order " .. id .. " for processing", span)
        local total = cfg:delay_s("kitchen-service")
        for _, step in ipairs(STEPS) do
            tracer:span(step[1], attrs, function() common.work(total * step[2]) end)
        end
        if common.fails(cfg:failure_rate("kitchen-service")) then
            common.mark_error(span, SPOILED)
            local rejected = common.copy(order)
            rejected.rejected_by = "kitchen-service"
            rejected.reason = SPOILED
            producer:publish(cfg:topic("rejected"), rejected, { key = id, attributes = attrs })
            common.flush(log, producer, span)
            log:info("Rejected order " .. id .. ": " .. SPOILED, span)
            return
        end
        local dish = common.first_dish(order)
        local ready = common.copy(order)
        ready.ready = true
        producer:publish(cfg:topic("ready"), ready, { key = id, attributes = attrs })
        common.flush(log, producer, span)
        log:info(string.format("Your order is ready. Please enjoy your %s and other food! - Order id = %s", dish, id), span)
    end)
end

common.run_consumer { service = "kitchen-service", topic = "kitchen", handle = handle }
