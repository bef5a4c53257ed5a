-- The library's version, in one place: the User-Agent, the public module
-- and the rockspec all state this number.
return "0.1.0"
