-- order-validation.lua - consumes ituna-orders; `main-order-validation` with the
-- children address_validation, name_validation, inventory_validation (each with its
-- delay and failure rate from the config); valid orders go to kitchen-orders with
-- validated = true, invalid ones to ituna-rejected with the reason.
-- common.lua sits next to this script, wherever it is run from
package.path = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local common = require "common"

local function check_address(order)
    if order.source == "website" and (type(order.address) ~= "string" or order.address == "") then
        return "a website order needs a delivery address"
    end
end

-- The seed's orders have no customer_name: only a present but blank one fails.
local function check_name(order)
    local name = order.customer_name
    if name ~= nil and not tostring(name):match("%S") then
        return "the order has a blank customer name"
    end
end

local function check_inventory(order)
    for _, dish in ipairs(common.dishes(order)) do
        local count = order.order_details[dish]
        if common.SOLD_OUT[dish] then return dish .. " is sold out" end
        if not common.ON_MENU[dish] then return dish .. " is not on the menu" end
        if math.type(count) ~= "integer" or count < 1 then return "bad quantity for " .. dish end
    end
end

-- span name, config key for delay and failure rate, real check, reason when injected
local STEPS = {
    { "address_validation", "order-validation-address", check_address, "the address could not be validated" },
    { "name_validation", "order-validation-name", check_name, "the customer name could not be validated" },
    { "inventory_validation", "order-validation-inventory", check_inventory, "an ingredient ran out" },
}

local function handle(svc, producer, order)
    local cfg, tracer, log = svc.config, svc.tracer, svc.log
    local id = order.order_id
    local attrs = common.order_attrs(order)
    tracer:span("main-order-validation", attrs, function(span)
        log:info("Received order " .. id .. " for validation", span)
        local failed_step, failed_reason
        for _, step in ipairs(STEPS) do
            local name, key, check, injected = step[1], step[2], step[3], step[4]
            tracer:span(name, attrs, function(child)
                common.work(cfg:delay_s(key))
                local reason = check(order)
                if not reason and common.fails(cfg:failure_rate(key)) then reason = injected end
                if reason then
                    common.mark_error(child, reason)
                    failed_step, failed_reason = name, reason
                end
            end)
            if failed_step then break end
        end
        if failed_step then
            common.mark_error(span, failed_step .. ": " .. failed_reason)
            local rejected = common.copy(order)
            rejected.validated = false
            rejected.rejected_by = failed_step
            rejected.reason = failed_reason
            producer:publish(cfg:topic("rejected"), rejected, { key = id, attributes = attrs })
            common.flush(log, producer, span)
            log:info("Rejected order " .. id .. ": " .. failed_reason, span)
            return
        end
        common.work(cfg:delay_s("order-validation-pub"))
        order.validated = true
        producer:publish(cfg:topic("kitchen"), order, { key = id, attributes = attrs })
        common.flush(log, producer, span)
        log:info("Validated and republished order for kitchen: " .. id, span)
    end)
end

common.run_consumer { service = "order-validation", topic = "orders", handle = handle }
