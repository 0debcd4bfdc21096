-- Shared by the reservation scripts, prepended (after lua/clock.lua) to each. Key names:
-- src/store/keys.rs. Every key carries the event's hash tag {ev:<id>} (one slot, Redis Cluster
-- safe); each script names the KEYS it takes:
--   vst:{ev:E}:meta            the event's valves (reserve only checks that the event exists)
--   vst:{ev:E}:rsv:work        stream: the event's work, read by the workers' consumer group
--   vst:{ev:E}:rsv:dead        stream: entries given up after too many deliveries
--   vst:{ev:E}:rsv:p:<person>  stream: the person's pending reservations, oldest first (their
--                              requests stay in order; a worker applies an entry only after every
--                              older one of the same person). Created at their first order, not
--                              at join: a stream costs ~4.7 KB.
--   vst:{ev:E}:rsv:r:<id>      hash: person, state (pending|confirmed|rejected|completed|released|
--                              expired), reason, items, at, hold_expires_at
--   vst:{ev:E}:rsv:k:<n>:<person>:<key>  string "id|body hash": the idempotency key (n is the
--                              person's length, so no two (person, key) pairs share a name)
-- Every key expires a retention period after its last write (semantics 5).

-- Removes reservation `id` from a person's stream (at most MAX_OPEN entries: read whole).
local function drop_from_person(person_stream, id)
  for _, e in ipairs(redis.call('XRANGE', person_stream, '-', '+')) do
    local f = e[2]
    for j = 1, #f, 2 do
      if f[j] == 'rid' and f[j + 1] == id then
        redis.call('XDEL', person_stream, e[1])
      end
    end
  end
end

-- Acknowledges a work entry and deletes it, so the stream holds only undone work.
local function done(work, group, wid)
  redis.call('XACK', work, group, wid)
  redis.call('XDEL', work, wid)
end
