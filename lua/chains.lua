-- The pending reservations of several people, each person's oldest first.
-- KEYS: the people's streams (vst:{ev:E}:rsv:p:<person>). ARGV[1] most entries per person.
-- Returns, per key, {{entry id, {field, value, ...}}, ...}.
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('XRANGE', key, '-', '+', 'COUNT', tonumber(ARGV[1]))
end
return out
