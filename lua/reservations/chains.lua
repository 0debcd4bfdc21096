-- The pending reservations of several people, each person's oldest first.
-- KEYS: the people's streams. ARGV[2] most entries per person.
-- Returns, per key, {{entry id, {field, value, ...}}, ...}.
local most = tonumber(ARGV[2])
local out = {}
for i, person_stream in ipairs(KEYS) do
  out[i] = redis.call('XRANGE', person_stream, '-', '+', 'COUNT', most)
end
return out
