-- wrk script: a light, steady trickle. Each connection waits TRICKLE_DELAY_MS (default 20 ms)
-- before each request, so -c 20 gives about 1,000 requests/s whatever the server's speed.
-- The delay is not part of the latency wrk reports.
local ms = tonumber(os.getenv("TRICKLE_DELAY_MS") or "20")
wrk.path = os.getenv("TRICKLE_PATH") or "/128b"
function delay()
    return ms
end
