-- This process's memory from /proc/self/status, in KiB: "VmRSS" (now) or
-- "VmHWM" (its peak). For the benches that print their own figures.
return function(field)
  local f = assert(io.open("/proc/self/status"))
  local kib = tonumber(f:read("*a"):match(field .. ":%s*(%d+)"))
  f:close()
  return kib
end
