-- How many API requests are in flight at once, counted by the server: a
-- request is in flight from the moment it has been read whole (request
-- line, headers, body) until its reply has been written whole, or its
-- connection was dropped. Control requests (/__emulator/) are not
-- counted. `max` is the most at once since the last reset, which sets it
-- back to `current` (requests still being served stay counted).

local in_flight = {}

local current, max = 0, 0

--- One more request read whole.
function in_flight.enter()
  current = current + 1
  if current > max then max = current end
end

--- One request done with: its reply written, or its connection gone.
function in_flight.leave()
  current = current - 1
end

--- { current = n, max = m }
function in_flight.get()
  return { current = current, max = max }
end

--- The maximum back to what is in flight now.
function in_flight.reset()
  max = current
end

return in_flight
