-- The module's own copy of a caller's table (fields, list parameters,
-- options), read once and raw: `next`, as lua-cjson reads what it encodes,
-- so that no __index or __pairs can show the validator one table and the
-- request writer another. What is checked is then what is sent.

local next, type = next, type

local function copy(t, seen)
  local out = {}
  seen[t] = out
  for k, v in next, t do
    if type(v) == "table" then v = seen[v] or copy(v, seen) end
    out[k] = v
  end
  return out
end

--- t: a table. Nested tables are copied too; a table met twice (a cycle)
--- is copied once, so that the copy has the same shape and no walk loops.
return function(t)
  -- the common body: flat, a few scalar fields
  local out, nested = {}, false
  for k, v in next, t do
    if type(v) == "table" then
      nested = true
      break
    end
    out[k] = v
  end
  if not nested then return out end
  return copy(t, {})
end
