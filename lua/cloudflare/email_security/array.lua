-- Is this Lua table a JSON array? Lua has one table for both, so the
-- module answers it here, and only here, in the two ways it is asked.

local null = require("cloudflare.email_security.core").null

local next, rawget, type = next, rawget, type

local array = {}

--- A table the caller made (fields, a desired list, a value at the
--- prompt) is an array when its keys are 1..n and nothing else: its length
--- n (0 when empty), else nil and the first key that is not in 1..n.
--- Read raw, as every read of a caller's table is.
function array.length(t)
  local n = 0
  for k in next, t do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return nil, k end
    n = n + 1
  end
  for i = 1, n do
    if rawget(t, i) == nil then
      -- a hole: n keys, all whole and positive, so one of them is past n
      for k in next, t do
        if k > n then return nil, k end
      end
    end
  end
  return n
end

--- The JSON kind of a value lua-cjson decoded (an answer, a JSON file),
--- or of one checked against a schema node already: "array", "object",
--- "empty", "null", "string", "number" or "boolean". Such a table has keys
--- 1..n or names only, so its first key tells which, at no cost for a long
--- list. "empty": lua-cjson decodes {} and [] to the same empty table, and
--- only a schema node (or the C decoder, for an answer's result) can say
--- which.
function array.kind(v)
  if v == null then return "null" end
  local t = type(v)
  if t ~= "table" then return t end
  local k = next(v)
  if k == nil then return "empty" end
  return type(k) == "number" and "array" or "object"
end

--- The keys of a table, sorted (for output that does not follow the hash
--- order): all strings, or all numbers.
function array.sorted_keys(t)
  local out = {}
  for k in next, t do out[#out + 1] = k end
  table.sort(out)
  return out
end

return array
