-- The store's clock, prepended to every script (src/store/redis/scripts.rs). Twin: `Clock` in
-- src/clock.rs.
-- Every script takes the clock as ARGV[1]: '' (what the gateway passes) reads Redis TIME; a
-- number pins the instant (unix ms), which only the conformance test does, so that Redis and
-- the in-process store answer for the same instant. A script's own arguments start at ARGV[2].
-- Scripts replicate their effects (Redis 7), so TIME is allowed.
local function now_ms()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
