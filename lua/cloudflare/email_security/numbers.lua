-- A number as text, one way for the whole module: plan compares values by
-- it, and the CSV and JSON writers write with it. A JSON file decoded by
-- lua-cjson gives floats where the API's answers and CSV cells give
-- integers (on Lua 5.3 and later), and 3 must be 3.0 wherever they meet.

local numbers = {}

local math_type, floor, abs, format = math.type, math.floor, math.abs, string.format

--- v as text that is the same for 3 and 3.0: integers (and floats with
--- no fraction that a double holds exactly) without a point, the rest
--- with the 17 digits that read back as the same double.
function numbers.text(v)
  if math_type and math_type(v) == "integer" then return format("%d", v) end
  if v == floor(v) and abs(v) < 2 ^ 53 then return format("%.0f", v) end
  return format("%.17g", v)
end

return numbers
