-- busted's usual terminal output, then one closing line that CI and people
-- read the same way: `N passed, N failed` (errors count as failures), with
-- `, N skipped` for pending tests.
return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)

  busted.subscribe({ "suite", "end" }, function()
    io.write(("%d passed, %d failed, %d skipped\n"):format(
      handler.successesCount, handler.failuresCount + handler.errorsCount,
      handler.pendingsCount))
    io.flush()
    return nil, true
  end, { priority = 2 })

  return handler
end
