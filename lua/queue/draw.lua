-- The pre-queue's draw (DESIGN §18): {seed (hex, '' when the event has no pre-queue), people in
-- the draw, opens_at, 'drawn'|'pending'}, or {} when the event is gone. Drawn: the event has
-- opened on the store's clock (then the caller may show the seed; before, only its commitment).
local m = load_meta()
if not m then
  return {}
end
local drawn = state_at(m, now_ms()) ~= 'scheduled'
return {m.draw_seed or '', redis.call('ZCARD', DRAW), tonumber(m.opens_at or '0'),
  drawn and 'drawn' or 'pending'}
