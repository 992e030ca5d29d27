-- test/bench/callbacks.lua — wrk script for test/bench/callbacks.sh: POST
-- pre-signed callbacks to pay-proxy, each exactly once, in file order.
--
--   wrk -t T -c C -d 10s -s callbacks.lua http://127.0.0.1:PORT -- FILE T START
--
-- FILE (made by callbacks_gen.py --wrk) holds per request a line
-- "<path>\t<header lines>\t<body bytes>\n", the header lines "Name: value\n",
-- the body and "\n".  Records are numbered from 1; thread i (0-based) of T
-- sends records START+i, START+i+T, START+i+2T...  When a
-- thread runs out it asks for /exhausted, which pay-proxy answers 404: wrk
-- then reports non-2xx responses and callbacks.sh refuses the figure.

local threads_made = 0

function setup(thread)
  thread:set("tid", threads_made)
  threads_made = threads_made + 1
end

local data, pos, index, nthreads, start

function init(args)
  local f = assert(io.open(args[1], "rb"))
  data = f:read("*a")
  f:close()
  pos, index = 1, 0
  nthreads = tonumber(args[2] or "1")
  start = tonumber(args[3] or "1")
  tid = tid or 0
end

-- The next record of the file: path, headers table, body; nil at the end.
local function next_record()
  if pos > #data then
    return nil
  end
  local nl = data:find("\n", pos, true)
  local path, nh, blen = data:sub(pos, nl - 1):match("^([^\t]+)\t(%d+)\t(%d+)$")
  local headers, p = {}, nl + 1
  for _ = 1, tonumber(nh) do
    local e = data:find("\n", p, true)
    local name, value = data:sub(p, e - 1):match("^([^:]+): (.*)$")
    headers[name] = value
    p = e + 1
  end
  blen = tonumber(blen)
  local body = data:sub(p, p + blen - 1)
  pos = p + blen + 1
  return path, headers, body
end

function request()
  while true do
    local path, headers, body = next_record()
    if path == nil then
      return wrk.format("GET", "/exhausted")
    end
    index = index + 1
    if index >= start and (index - start) % nthreads == tid then
      return wrk.format("POST", path, headers, body)
    end
  end
end
